import { describeFailure } from '../lib/errors';
import { findPreset } from '../lib/presets';
import { golden, hostCacheActivities } from './activities';
import type { CachedSnapshot, HostCacheOutcome } from './contracts/hostCache';

/**
 * After a golden build: the builder already holds the image; every other online host that serves one of the
 * sizes pulls it now, so the first sandbox there starts from cache. Then each of these hosts drops what the
 * catalog no longer needs (never a default, pin or live session). Best effort: a host that fails here only
 * loses a cache hit, the build itself has succeeded.
 */
export async function warmHostCaches(input: {
  builtOn: string;
  workspace: string;
  storedRef: string;
  snapshots: CachedSnapshot[];
}): Promise<HostCacheOutcome> {
  const memoryOf = (size: string): number => findPreset(size)?.memoryMiB ?? Number.MAX_SAFE_INTEGER;
  await golden.recordHostCache({ hostId: input.builtOn, snapshotIds: input.snapshots.map((s) => s.snapshotId) });
  const outcome: HostCacheOutcome = { cachedOn: [input.builtOn], warmFailed: [], evicted: [] };

  const smallest = Math.min(...input.snapshots.map((s) => memoryOf(s.size)));
  const others = await golden.hostsServing({ minMemoryMiB: smallest, exceptHostId: input.builtOn });
  await Promise.all(
    others.map(async ({ hostId, memoryTotalMiB }) => {
      try {
        await hostCacheActivities(hostId).cacheSnapshot({ storedRef: input.storedRef, workspace: input.workspace });
        const served = input.snapshots.filter((s) => !s.machineProfile && memoryOf(s.size) <= memoryTotalMiB).map((s) => s.snapshotId);
        await golden.recordHostCache({ hostId, snapshotIds: served });
        outcome.cachedOn.push(hostId);
      } catch (err) {
        outcome.warmFailed.push({ hostId, reason: `${describeFailure(err).code}: ${describeFailure(err).message}` });
      }
    }),
  );

  for (const hostId of outcome.cachedOn) {
    try {
      for (const candidate of await golden.evictionCandidates({ hostId })) {
        const { evicted } = await hostCacheActivities(hostId).evictSnapshot({ storedRef: candidate.storedRef });
        if (!evicted) continue; // still used by a container: the next build tries again
        await golden.forgetHostCache({ hostId, snapshotIds: candidate.snapshotIds });
        outcome.evicted.push({ hostId, storedRef: candidate.storedRef });
      }
    } catch {
      // An eviction that fails now is retried after the next build; it never fails this one.
    }
  }
  return outcome;
}
