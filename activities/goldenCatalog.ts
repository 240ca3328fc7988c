// Catalog side of golden builds: the build config, the build record (incl. skipped), registration, host cache.
import { appendLog, closeLog, goldenLogRef, openLog } from '../catalog/logs';
import {
  insertGoldenSnapshot,
  readBuildConfig,
  recordBuildEnd,
  recordBuildStart,
  type BuildConfig,
  type BuildEnd,
  type GoldenRegistration,
} from '../catalog/golden';
import { evictableImages, hostsWithMemory, markCached, onlineHosts, unmarkCached, type EvictionCandidate } from '../catalog/hosts';
import type { RunRef } from '../catalog/snapshots';
import type { Db } from '../db/client';
import type { StorageConfig } from '../lib/config';
import { boundary, writeOnce } from './boundary';
import { storageNotConfigured } from '../lib/errors';

export type { BuildConfig } from '../catalog/golden';
export type { EvictionCandidate } from '../catalog/hosts';

export interface GoldenCatalogDeps {
  db: Db;
  storage?: StorageConfig;
  /** Cached images a host keeps besides defaults, pins and live sessions (SNAPFLOW_HOST_CACHE_KEEP). */
  hostCacheKeep?: number;
}

export function createGoldenCatalogActivities(deps: GoldenCatalogDeps) {
  const { db } = deps;
  return {
    async loadBuildConfig(input: { workspace: string }): Promise<BuildConfig> {
      return boundary(async () => {
        if (!deps.storage) throw storageNotConfigured();
        return readBuildConfig(db, input);
      });
    },

    async listOnlineHosts(): Promise<Array<{ hostId: string }>> {
      return boundary(() => onlineHosts(db));
    },

    /** Idempotent by build id, so a retried activity never records a build twice. */
    async startBuild(input: { buildId: string; workspace: string; trigger: 'build-now' | 'schedule'; run: RunRef }): Promise<void> {
      return writeOnce(db, (tx) => recordBuildStart(tx, input));
    },

    async finishBuild(input: BuildEnd): Promise<void> {
      await writeOnce(db, (tx) => recordBuildEnd(tx, input));
      // The build log's last line: how it ended (a skipped build never preloaded: it gets this line only).
      const ref = goldenLogRef(input.buildId, 'end');
      const line = `${input.status}${input.reason ? `: ${input.reason}` : ''}${input.message ? `: ${input.message}` : ''}\n`;
      await openLog(db, ref);
      await appendLog(db, ref.id, [{ seq: ref.seqBase!, stream: 'note', data: Buffer.from(line) }]);
      await closeLog(db, ref.id, { outcome: input.status, bytes: 0, dropped: 0 });
    },

    /**
     * A line of the build's own in its log, for a step the workflow drives across hosts and activities (a vm target's
     * boot and save): its start, then how it went. Each line has its place (`at` in the segment), so a retry is a no-op.
     */
    async noteGoldenLog(input: { buildId: string; segment: 'vm'; at: number; line: string }): Promise<void> {
      return boundary(async () => {
        const ref = goldenLogRef(input.buildId, input.segment);
        await openLog(db, ref);
        await appendLog(db, ref.id, [
          { seq: ref.seqBase! + input.at, stream: 'note', data: Buffer.from(`${input.line.slice(0, 2000)}\n`) },
        ]);
      });
    },

    /** A verified, stored golden image becomes an active snapshot for one size/profile (idempotent by id). */
    async registerGolden(input: GoldenRegistration): Promise<{ snapshotId: string }> {
      return writeOnce(db, (tx) => insertGoldenSnapshot(tx, input));
    },

    /** The host that built or pulled an image holds it: record that, so placement can prefer it. */
    async recordHostCache(input: { hostId: string; snapshotIds: string[] }): Promise<void> {
      return writeOnce(db, (tx) => markCached(tx, input));
    },

    /** Online hosts, other than the builder, whose memory fits `minMemoryMiB`: they serve that size. */
    async hostsServing(input: { minMemoryMiB: number; exceptHostId?: string }): Promise<Array<{ hostId: string; memoryTotalMiB: number }>> {
      return boundary(() => hostsWithMemory(db, input));
    },

    /**
     * Images on a host the cache may drop: never one behind a default, a pin or a sandbox's latest session;
     * of the rest, the `hostCacheKeep` most recently used stay.
     */
    async evictionCandidates(input: { hostId: string }): Promise<EvictionCandidate[]> {
      return boundary(() => evictableImages(db, { hostId: input.hostId, keep: deps.hostCacheKeep ?? 4 }));
    },

    async forgetHostCache(input: { hostId: string; snapshotIds: string[] }): Promise<void> {
      return writeOnce(db, (tx) => unmarkCached(tx, input));
    },
  };
}

export type GoldenCatalogActivities = ReturnType<typeof createGoldenCatalogActivities>;
