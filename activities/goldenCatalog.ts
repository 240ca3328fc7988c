// Catalog side of golden builds: the build config, the build record (incl. skipped), registration, host cache.
import { and, eq, gte, inArray, ne, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { goldenBuildConfigs, goldenBuilds, hostCache, hosts, snapshotEvents, snapshots, type GoldenBuildStatus } from '../db/schema';
import type { StorageConfig } from '../lib/config';
import type { GoldenConfig } from '../lib/goldenConfig';
import { SnapflowError, toNonRetryableFailure } from '../lib/errors';
import type { Runtime } from '../lib/presets';
import type { RunRef } from './catalog';

export interface GoldenCatalogDeps {
  db: Db;
  storage?: StorageConfig;
  /** Cached images a host keeps besides defaults, pins and live sessions (SNAPFLOW_HOST_CACHE_KEEP). */
  hostCacheKeep?: number;
}

export interface EvictionCandidate {
  storedRef: string;
  /** Every snapshot on this host that shares the image (one build registers one per target). */
  snapshotIds: string[];
}

/** What a build needs of the stored config: all of it but the schedule. */
export type BuildConfig = Omit<GoldenConfig, 'scheduleCron' | 'scheduleTimeZone' | 'enabled'>;

export const storageNotConfigured = (): SnapflowError =>
  new SnapflowError({ code: 'GOLDEN_STORAGE_NOT_CONFIGURED', message: 'golden snapshots are disabled because snapshot storage is not configured', hint: 'set SNAPFLOW_STORAGE_URL, SNAPFLOW_STORAGE_USERNAME and SNAPFLOW_STORAGE_PASSWORD' });

export function createGoldenCatalogActivities(deps: GoldenCatalogDeps) {
  const { db } = deps;
  const nonRetryable = (e: SnapflowError): never => {
    throw toNonRetryableFailure(e);
  };
  return {
    async loadBuildConfig(input: { scope: string }): Promise<BuildConfig> {
      if (!deps.storage) nonRetryable(storageNotConfigured());
      const [row] = await db.select().from(goldenBuildConfigs).where(eq(goldenBuildConfigs.scope, input.scope));
      if (!row) nonRetryable(new SnapflowError({ code: 'NOT_FOUND', message: `no golden build config for ${input.scope}`, hint: `set one: snapflow golden config set --workspace ${input.scope} --target small:codex` }));
      if (row!.targets.length === 0) nonRetryable(new SnapflowError({ code: 'VALIDATION_FAILED', field: 'targets', message: `the golden config of ${input.scope} has no target sizes`, hint: 'add --target small:codex' }));
      const { repos, embedSkills, skillsPath, prebuildDeps, depsFallbackCommand, targets } = row!;
      return { scope: input.scope, repos, embedSkills, skillsPath, prebuildDeps, depsFallbackCommand, targets };
    },

    async listOnlineHosts(): Promise<Array<{ hostId: string }>> {
      return (await db.select({ hostId: hosts.id }).from(hosts).where(eq(hosts.status, 'online')).orderBy(hosts.id)).map((h) => h);
    },

    /** Idempotent by build id, so a retried activity never records a build twice. */
    async startBuild(input: { buildId: string; scope: string; trigger: 'build-now' | 'schedule'; run: RunRef }): Promise<void> {
      await db.insert(goldenBuilds).values({ id: input.buildId, scope: input.scope, trigger: input.trigger, workflowId: input.run.workflowId, runId: input.run.runId }).onConflictDoNothing();
    },

    async finishBuild(input: { buildId: string; status: Exclude<GoldenBuildStatus, 'running'>; reason?: string; message?: string; figures?: Record<string, number | string>; snapshotId?: string }): Promise<void> {
      await db
        .update(goldenBuilds)
        .set({ status: input.status, reason: input.reason, message: input.message?.slice(0, 2000), figures: input.figures, snapshotId: input.snapshotId, finishedAt: new Date() })
        .where(eq(goldenBuilds.id, input.buildId));
    },

    /** A verified, stored golden image becomes an active snapshot for one size/profile (idempotent by id). */
    async registerGolden(input: { id: string; scope: string; name: string; storedRef: string; digest: string; runtime: Runtime; size: string; profileKey: string; origin: 'build-now' | 'schedule' | 'promote'; sandboxId?: string; parentSnapshotId?: string; run: RunRef }): Promise<{ snapshotId: string }> {
      await db.transaction(async (tx) => {
        const inserted = await tx
          .insert(snapshots)
          .values({ id: input.id, scope: input.scope, name: input.name, kind: 'golden', sourceImage: null, resolvedDigest: input.digest, storedRef: input.storedRef, runtime: input.runtime, size: input.size, profileKey: input.profileKey, status: 'active', origin: input.origin, sandboxId: input.sandboxId, parentSnapshotId: input.parentSnapshotId, workflowId: input.run.workflowId, runId: input.run.runId })
          .onConflictDoNothing({ target: snapshots.id })
          .returning({ id: snapshots.id });
        if (inserted.length) {
          await tx.insert(snapshotEvents).values({ snapshotId: input.id, type: 'registered', toStatus: 'active', message: `golden snapshot stored as ${input.storedRef}`, workflowId: input.run.workflowId, runId: input.run.runId });
        }
      });
      return { snapshotId: input.id };
    },

    /** The host that built or pulled an image holds it: record that, so placement can prefer it. */
    async recordHostCache(input: { hostId: string; snapshotIds: string[] }): Promise<void> {
      if (input.snapshotIds.length === 0) return;
      await db
        .insert(hostCache)
        .values(input.snapshotIds.map((snapshotId) => ({ hostId: input.hostId, snapshotId })))
        .onConflictDoUpdate({ target: [hostCache.hostId, hostCache.snapshotId], set: { lastUsedAt: new Date() } });
    },

    /** Online hosts, other than the builder, whose memory fits `minMemoryMiB`: they serve that size. */
    async hostsServing(input: { minMemoryMiB: number; exceptHostId?: string }): Promise<Array<{ hostId: string; memoryTotalMiB: number }>> {
      const rows = await db
        .select({ hostId: hosts.id, memoryTotalMiB: hosts.memoryTotalMib })
        .from(hosts)
        .where(and(eq(hosts.status, 'online'), gte(hosts.memoryTotalMib, input.minMemoryMiB), input.exceptHostId ? ne(hosts.id, input.exceptHostId) : undefined))
        .orderBy(hosts.id);
      return rows;
    },

    /**
     * Images on a host the cache may drop: never one behind a default, a pin or a sandbox's latest session;
     * of the rest, the `hostCacheKeep` most recently used stay. Grouped by image, since one build's image
     * backs a snapshot per target and must not be evicted while any of them is kept.
     */
    async evictionCandidates(input: { hostId: string }): Promise<EvictionCandidate[]> {
      const keep = deps.hostCacheKeep ?? 4;
      const rows = await db.execute<{ stored_ref: string; snapshot_ids: string[] }>(sql`
        with cached as (
          select s.stored_ref,
                 array_agg(s.id::text) as snapshot_ids,
                 max(hc.last_used_at) as last_used,
                 bool_or(exists (select 1 from default_pointers d where d.snapshot_id = s.id)
                      or exists (select 1 from issues i where i.pinned_snapshot_id = s.id)
                      or exists (select 1 from sandboxes b where b.latest_session_snapshot_id = s.id)) as in_use
          from host_cache hc join snapshots s on s.id = hc.snapshot_id
          where hc.host_id = ${input.hostId} and s.stored_ref is not null
          group by s.stored_ref
        )
        select stored_ref, snapshot_ids from cached where not in_use order by last_used desc offset ${keep}`);
      return rows.map((r) => ({ storedRef: r.stored_ref, snapshotIds: r.snapshot_ids }));
    },

    async forgetHostCache(input: { hostId: string; snapshotIds: string[] }): Promise<void> {
      if (input.snapshotIds.length === 0) return;
      await db.delete(hostCache).where(and(eq(hostCache.hostId, input.hostId), inArray(hostCache.snapshotId, input.snapshotIds)));
    },
  };
}

export type GoldenCatalogActivities = ReturnType<typeof createGoldenCatalogActivities>;
