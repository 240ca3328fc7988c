// Host side of the snapshot cache: pull a stored snapshot into this host's engine ahead of need (pre-warm),
// and evict one that the catalog no longer wants here. The catalog side is in goldenCatalog.ts.
import { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { StorageConfig } from '../lib/config';
import { SYSTEM_SCOPE, storageOwner } from '../lib/ids';
import { fail } from './boundary';
import { withHeartbeat } from './heartbeats';
import { followProgress } from './progress';
import { storageNotConfigured, toNonRetryableFailure } from '../lib/errors';

export interface HostCacheDeps {
  docker: Docker;
  hostId: string;
  storage?: StorageConfig;
  /** Saved machines (vm sandboxes' snapshots) are cached as files beside the engine's images. */
  vmStates?: {
    cache(input: { storedRef: string }): Promise<{ vmState: boolean; pulled: boolean }>;
    evict(input: { storedRef: string }): Promise<{ evicted: boolean }>;
  };
}

/**
 * The one rule for what a host fetches or restores for a workspace: a snapshot of that workspace's repositories or of
 * the system's (by the stored reference's path, `snapflow/<workspace>/…`, `snapflow/golden/<workspace>`, …).
 */
export function requireOwnSnapshot(ref: string, workspace: string | undefined): void {
  const owner = storageOwner(ref);
  if (!workspace || (owner !== workspace && owner !== SYSTEM_SCOPE))
    fail(
      'PERMISSION_DENIED',
      `${ref.slice(0, 200)} does not belong to workspace ${String(workspace).slice(0, 64)}`,
      "a sandbox or check starts only from its own workspace's snapshots or the system's",
    );
}

type Cached = { imageId: string; pulled: boolean };

/** What a pull's attempt heartbeats once it has the image: a retry of the same call reads it back. */
interface CacheProgress {
  step: 'cache';
  answer?: Cached;
}

/** The activity's context, or none outside an activity (a test calling the function directly). */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

export function createHostCacheActivities(deps: HostCacheDeps) {
  const { docker } = deps;
  /**
   * A retry after an attempt that pulled finds the image present: it answers what that attempt did (pulled), kept in
   * the attempt's last heartbeat, which Temporal hands to the next attempt of the same call.
   */
  const answered = (answer: Cached): Cached => {
    const ctx = activityContext();
    const earlier = (ctx?.info.heartbeatDetails as CacheProgress | undefined)?.answer;
    if (earlier?.imageId === answer.imageId) return earlier;
    if (answer.pulled) ctx?.heartbeat({ step: 'cache', answer } satisfies CacheProgress);
    return answer;
  };
  return {
    /**
     * Pulls `storedRef` (registry/repo@sha256:…) from snapshot storage unless this engine already has it. Only a
     * repository of `workspace` or of the system is read, for whoever asks, and storage's password goes nowhere else.
     */
    async cacheSnapshot(input: { storedRef: string; workspace: string }): Promise<{ imageId: string; pulled: boolean }> {
      requireOwnSnapshot(input.storedRef, input.workspace);
      if (deps.storage && !input.storedRef.startsWith(`${deps.storage.registryHost}/`))
        fail('PERMISSION_DENIED', `${input.storedRef.slice(0, 200)} is not in snapshot storage`, 'only stored snapshots are cached');
      const present = await docker
        .getImage(input.storedRef)
        .inspect()
        .catch(() => undefined);
      if (present) return answered({ imageId: present.Id, pulled: false });
      const state = deps.storage && deps.vmStates ? await deps.vmStates.cache(input) : undefined;
      if (state?.vmState) return answered({ imageId: input.storedRef, pulled: state.pulled });
      const storage = deps.storage;
      if (!storage) {
        throw toNonRetryableFailure(storageNotConfigured({ hostId: deps.hostId, what: `caching ${input.storedRef.slice(0, 200)}` }));
      }
      await withHeartbeat('cache', async () => {
        const auth = { username: storage.username, password: storage.password, serveraddress: storage.registryHost };
        // Errors arrive inside the 200 stream; followProgress scans for them. Retried by the transfer profile.
        await followProgress(docker, await docker.pull(input.storedRef, { authconfig: auth }));
      });
      return answered({ imageId: (await docker.getImage(input.storedRef).inspect()).Id, pulled: true });
    },

    /**
     * Removes the cached image behind `storedRef` with all its local names. An image a container still uses
     * stays (the next eviction tries again); one already gone counts as evicted.
     */
    async evictSnapshot(input: { storedRef: string }): Promise<{ evicted: boolean; reason?: string }> {
      await deps.vmStates?.evict(input);
      const image = await docker
        .getImage(input.storedRef)
        .inspect()
        .catch(() => undefined);
      if (!image) return { evicted: true };
      const users = await docker.listContainers({ all: true, filters: { ancestor: [image.Id] } });
      if (users.length > 0) return { evicted: false, reason: `used by container ${users[0]!.Names[0] ?? users[0]!.Id}` };
      try {
        await docker.getImage(image.Id).remove({ force: true });
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status === 404) return { evicted: true };
        if (status === 409) return { evicted: false, reason: (err as Error).message };
        throw err;
      }
      return { evicted: true };
    },
  };
}

export type HostCacheActivities = ReturnType<typeof createHostCacheActivities>;
