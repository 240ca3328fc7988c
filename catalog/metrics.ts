// What the control worker's metrics read from the catalog: counts by state now, and what finished since the
// last reading (durations of snapshots and golden builds, default changes).
import { and, count, gt, isNotNull, min, ne, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { defaultHistory, goldenBuildConfigs, goldenBuilds, sandboxes, snapshots } from '../db/schema';
import type { GoldenBuildStatus, SandboxState, SnapshotKind, SnapshotStatus } from '../lib/vocabulary';

export interface CatalogFigures {
  snapshots: Array<{ kind: SnapshotKind; status: SnapshotStatus; count: number }>;
  sandboxes: Array<{ state: SandboxState; count: number }>;
  /** Age of the oldest snapshot still pending, per kind. */
  oldestPendingSeconds: Array<{ kind: SnapshotKind; seconds: number }>;
  /** Snapshots that left `pending` (active or failed) after `since`: how long they were pending. */
  finishedSnapshots: Array<{ kind: SnapshotKind; status: SnapshotStatus; seconds: number }>;
  /** Golden builds that finished after `since`, and how long they ran. */
  finishedBuilds: Array<{ status: GoldenBuildStatus; seconds: number }>;
  defaultChanges: number;
  /**
   * Each enabled golden schedule: when it last started a build (or, before its first, when it was configured).
   * An on-call alert compares that with now: a daily schedule silent for more than a day is not firing.
   */
  schedules: Array<{ workspace: string; lastFiredAt: Date }>;
  /** The reading's own time: pass it as the next `since`. */
  at: Date;
}

const secondsBetween = (from: unknown, to: unknown): number =>
  (new Date(to as string).getTime() - new Date(from as string).getTime()) / 1000;

export async function readCatalogFigures(db: Db, input: { since: Date }): Promise<CatalogFigures> {
  const at = new Date();
  const window = (column: typeof snapshots.updatedAt | typeof goldenBuilds.finishedAt | typeof defaultHistory.createdAt) =>
    and(gt(column, input.since), sql`${column} <= ${at.toISOString()}`);
  const [bySnapshot, bySandbox, pending, finishedSnapshots, finishedBuilds, [changes], schedules] = await Promise.all([
    db.select({ kind: snapshots.kind, status: snapshots.status, count: count() }).from(snapshots).groupBy(snapshots.kind, snapshots.status),
    db.select({ state: sandboxes.state, count: count() }).from(sandboxes).groupBy(sandboxes.state),
    db
      .select({ kind: snapshots.kind, oldest: min(snapshots.createdAt) })
      .from(snapshots)
      .where(sql`${snapshots.status} = 'pending'`)
      .groupBy(snapshots.kind),
    db
      .select({ kind: snapshots.kind, status: snapshots.status, createdAt: snapshots.createdAt, updatedAt: snapshots.updatedAt })
      .from(snapshots)
      .where(and(sql`${snapshots.status} in ('active', 'failed')`, window(snapshots.updatedAt))),
    db
      .select({ status: goldenBuilds.status, startedAt: goldenBuilds.startedAt, finishedAt: goldenBuilds.finishedAt })
      .from(goldenBuilds)
      .where(and(isNotNull(goldenBuilds.finishedAt), ne(goldenBuilds.status, 'running'), window(goldenBuilds.finishedAt))),
    db.select({ n: count() }).from(defaultHistory).where(window(defaultHistory.createdAt)),
    db
      .select({
        workspace: goldenBuildConfigs.workspace,
        configuredAt: goldenBuildConfigs.updatedAt,
        lastRun: sql<string | null>`(select max(${goldenBuilds.startedAt}) from ${goldenBuilds}
          where ${goldenBuilds.workspace} = ${goldenBuildConfigs.workspace} and ${goldenBuilds.trigger} = 'schedule')`,
      })
      .from(goldenBuildConfigs)
      .where(and(sql`${goldenBuildConfigs.enabled}`, isNotNull(goldenBuildConfigs.scheduleCron))),
  ]);
  return {
    snapshots: bySnapshot,
    sandboxes: bySandbox,
    oldestPendingSeconds: pending.map((p) => ({ kind: p.kind, seconds: Math.max(0, secondsBetween(p.oldest, at)) })),
    finishedSnapshots: finishedSnapshots.map((s) => ({
      kind: s.kind,
      status: s.status,
      seconds: secondsBetween(s.createdAt, s.updatedAt),
    })),
    finishedBuilds: finishedBuilds.map((b) => ({ status: b.status, seconds: secondsBetween(b.startedAt, b.finishedAt) })),
    defaultChanges: changes?.n ?? 0,
    schedules: schedules.map((c) => {
      const configured = new Date(c.configuredAt as unknown as string);
      const last = c.lastRun ? new Date(c.lastRun) : undefined;
      return { workspace: c.workspace, lastFiredAt: last && last > configured ? last : configured };
    }),
    at,
  };
}
