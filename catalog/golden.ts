// Golden builds in the catalog: the build config, the build record (incl. skipped), and registering the result.
import { desc, eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { goldenBuildConfigs, goldenBuilds, snapshotEvents, snapshots, type GoldenBuildConfig } from '../db/schema';
import type { GoldenConfig } from '../lib/goldenConfig';
import { SnapflowError } from '../lib/errors';
import type { Runtime } from '../lib/presets';
import type { GoldenBuildStatus, GoldenBuildTrigger } from '../lib/vocabulary';
import { audited, type Caller } from './access';
import { findAgentSnapshot } from './agents';
import type { RunRef } from './snapshots';

export type { GoldenBuildConfig } from '../db/schema';
export type GoldenBuild = typeof goldenBuilds.$inferSelect;

/** The image snapshot a build starts from, resolved from the targets' `base` name when the build starts. */
export interface BuildBase {
  snapshotId: string;
  name: string;
  /** registry/repo@sha256:… in snapshot storage: the build host pulls it, and its digest is in the profile key. */
  storedRef: string;
  entrypoint: string;
}

/** What a build needs of the stored config: all of it but the schedule; `base` absent: the built-in base. */
export type BuildConfig = Omit<GoldenConfig, 'scheduleCron' | 'scheduleTimeZone' | 'enabled'> & { base?: BuildBase };

/** A golden base: an active snapshot of the workspace or the system workspace, in snapshot storage. */
export async function findBuildBase(db: Pick<Db, 'select'>, input: { workspace: string; name: string }): Promise<BuildBase> {
  const snap = await findAgentSnapshot(db, input);
  if (!snap.storedRef)
    throw new SnapflowError({
      code: 'VALIDATION_FAILED',
      field: 'base',
      message: `snapshot ${snap.name} is not in snapshot storage, so a build cannot start from it`,
      hint: 'name an image snapshot (`snapflow snapshot create`)',
    });
  return { snapshotId: snap.id, name: snap.name, storedRef: snap.storedRef, entrypoint: snap.entrypoint };
}

export async function findBuildConfig(db: Db, workspace: string): Promise<GoldenBuildConfig | undefined> {
  const [row] = await db.select().from(goldenBuildConfigs).where(eq(goldenBuildConfigs.workspace, workspace));
  return row;
}

/**
 * The workspace's admins on the paid plan: creates or replaces its config, decided and audited here. `inTransaction`
 * runs with the written row before the commit (the client syncs the Temporal Schedule there), so if it throws the
 * config is not changed either. A base snapshot the targets name must exist and be in snapshot storage.
 */
export async function saveBuildConfig(
  db: Db,
  caller: Caller,
  config: GoldenConfig,
  inTransaction: (written: GoldenBuildConfig) => Promise<void> = async () => {},
): Promise<GoldenBuildConfig> {
  return audited(db, caller, config.workspace, 'golden.config', 'golden config', async (tx) => {
    const baseName = config.targets.find((t) => t.base)?.base;
    if (baseName) await findBuildBase(tx, { workspace: config.workspace, name: baseName }); // NOT_FOUND / not stored: refused now
    const row = { ...config, updatedAt: new Date() };
    const [written] = await tx
      .insert(goldenBuildConfigs)
      .values(row)
      .onConflictDoUpdate({ target: goldenBuildConfigs.workspace, set: row })
      .returning();
    await inTransaction(written!);
    return written!;
  });
}

export async function readBuildConfig(db: Db, input: { workspace: string }): Promise<BuildConfig> {
  const row = await findBuildConfig(db, input.workspace);
  if (!row)
    throw new SnapflowError({
      code: 'NOT_FOUND',
      message: `no golden build config for ${input.workspace}`,
      hint: `set one: snapflow golden config set --workspace ${input.workspace} --target small:codex`,
    });
  if (row.targets.length === 0)
    throw new SnapflowError({
      code: 'VALIDATION_FAILED',
      field: 'targets',
      message: `the golden config of ${input.workspace} has no target sizes`,
      hint: 'add --target small:codex',
    });
  const { repos, embedSkills, skillsPath, prebuildDeps, depsFallbackCommand, targets } = row;
  const baseName = targets.find((t) => t.base)?.base;
  const base = baseName ? await findBuildBase(db, { workspace: input.workspace, name: baseName }) : undefined;
  return {
    workspace: input.workspace,
    repos,
    embedSkills,
    skillsPath,
    prebuildDeps,
    depsFallbackCommand,
    targets,
    ...(base ? { base } : {}),
  };
}

/** Idempotent by build id, so a retried activity never records a build twice. */
export async function recordBuildStart(
  db: Db,
  input: { buildId: string; workspace: string; trigger: GoldenBuildTrigger; run: RunRef },
): Promise<void> {
  await db
    .insert(goldenBuilds)
    .values({
      id: input.buildId,
      workspace: input.workspace,
      trigger: input.trigger,
      workflowId: input.run.workflowId,
      runId: input.run.runId,
    })
    .onConflictDoNothing();
}

/** How a golden build ended: built, skipped (with the reason and figures) or failed. */
export interface BuildEnd {
  buildId: string;
  status: Exclude<GoldenBuildStatus, 'running'>;
  reason?: string;
  message?: string;
  figures?: Record<string, number | string>;
  snapshotId?: string;
}

export async function recordBuildEnd(db: Db, input: BuildEnd): Promise<void> {
  await db
    .update(goldenBuilds)
    .set({
      status: input.status,
      reason: input.reason,
      message: input.message?.slice(0, 2000),
      figures: input.figures,
      snapshotId: input.snapshotId,
      finishedAt: new Date(),
    })
    .where(eq(goldenBuilds.id, input.buildId));
}

/** The workspace's builds, newest first. */
export async function listBuilds(db: Db, input: { workspace: string; limit: number }): Promise<GoldenBuild[]> {
  return db
    .select()
    .from(goldenBuilds)
    .where(eq(goldenBuilds.workspace, input.workspace))
    .orderBy(desc(goldenBuilds.startedAt))
    .limit(input.limit);
}

/** The id of the newest build recorded by a workflow id; undefined before its run has recorded one. */
export async function latestBuildId(db: Db, workflowId: string): Promise<string | undefined> {
  const [row] = await db
    .select({ id: goldenBuilds.id })
    .from(goldenBuilds)
    .where(eq(goldenBuilds.workflowId, workflowId))
    .orderBy(desc(goldenBuilds.startedAt))
    .limit(1);
  return row?.id;
}

export interface GoldenRegistration {
  id: string;
  workspace: string;
  name: string;
  storedRef: string;
  digest: string;
  runtime: Runtime;
  size: string;
  profileKey: string;
  /** A promoted vm sandbox saves its machine: the profile it restores onto (absent: an image). */
  machineProfile?: string;
  origin: 'build-now' | 'schedule' | 'promote';
  sandboxId?: string;
  parentSnapshotId?: string;
  run: RunRef;
}

/** A verified, stored golden image becomes an active snapshot for one size/profile (idempotent by id). */
export async function insertGoldenSnapshot(db: Db, input: GoldenRegistration): Promise<{ snapshotId: string }> {
  await db.transaction(async (tx) => {
    const inserted = await tx
      .insert(snapshots)
      .values({
        id: input.id,
        workspace: input.workspace,
        name: input.name,
        kind: 'golden',
        sourceImage: null,
        resolvedDigest: input.digest,
        storedRef: input.storedRef,
        machineProfile: input.machineProfile ?? null,
        runtime: input.runtime,
        size: input.size,
        profileKey: input.profileKey,
        status: 'active',
        origin: input.origin,
        sandboxId: input.sandboxId,
        parentSnapshotId: input.parentSnapshotId,
        workflowId: input.run.workflowId,
        runId: input.run.runId,
      })
      .onConflictDoNothing({ target: snapshots.id })
      .returning({ id: snapshots.id });
    if (inserted.length) {
      await tx.insert(snapshotEvents).values({
        snapshotId: input.id,
        type: 'registered',
        toStatus: 'active',
        message: `golden snapshot stored as ${input.storedRef}`,
        workflowId: input.run.workflowId,
        runId: input.run.runId,
      });
    }
  });
  return { snapshotId: input.id };
}
