// Placing and starting something on a host, the one way every workflow does it: pick a host with room for the size
// (unless one is already chosen), bring a stored image into that host's cache (a no-op when it is there; first, or
// only when the start finds it missing), then start. What is started (a sandbox, a canary, a build's scratch
// container, a boot check) and what is awaited after is the caller's.
import { catalog, hostCacheActivities } from './activities';

/** The host to run on: `chosen` (a restore decision's, say), else the catalog's pick for `size` (NO_HOST when none). */
export async function pickHostFor(size: string, chosen?: string): Promise<string> {
  return chosen ?? (await catalog.pickHost({ size })).hostId;
}

export interface StoredImage {
  /** A stored ref in snapshot storage; absent: the built-in base, which every host has. */
  storedRef?: string;
  workspace: string;
  /** Start first and fetch the image only when the start reports it missing (the start calls `cache` then). */
  onMiss?: boolean;
}

/** `start` on `hostId` once `image` is in its cache (or, `onMiss`, with the fetch handed to `start`). */
export async function startOn<T>(hostId: string, image: StoredImage, start: (cache: () => Promise<unknown>) => Promise<T>): Promise<T> {
  const { storedRef, workspace } = image;
  const cache = () => hostCacheActivities(hostId).cacheSnapshot({ storedRef: storedRef!, workspace }); // no-op when cached
  if (storedRef && !image.onMiss) await cache();
  return start(cache);
}

/** Both: a host picked for `size`, then `start` there as startOn does. */
export async function placeAndStart<T>(
  size: string,
  image: StoredImage,
  start: (hostId: string, cache: () => Promise<unknown>) => Promise<T>,
): Promise<{ hostId: string; started: T }> {
  const hostId = await pickHostFor(size);
  return { hostId, started: await startOn(hostId, image, (cache) => start(hostId, cache)) };
}
