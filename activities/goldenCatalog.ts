// Catalog side of golden builds: the build config, the build record (incl. skipped), registration, host cache.
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { goldenBuildConfigs, goldenBuilds, hostCache, hosts, snapshotEvents, snapshots, type GoldenBuildStatus, type GoldenTarget } from '../db/schema';
import type { StorageConfig } from '../lib/config';
import { SnapflowError, toNonRetryableFailure } from '../lib/errors';
import type { Runtime } from '../lib/presets';
import type { RunRef } from './catalog';

export interface GoldenCatalogDeps {
  db: Db;
  storage?: StorageConfig;
}

export interface BuildConfig {
  scope: string;
  repos: string[];
  embedSkills: boolean;
  skillsPath: string | null;
  prebuildDeps: boolean;
  depsFallbackCommand: string | null;
  targets: GoldenTarget[];
}

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
  };
}

export type GoldenCatalogActivities = ReturnType<typeof createGoldenCatalogActivities>;
