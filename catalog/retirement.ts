// Retiring snapshots: who still uses one, the guarded move to `deleting`, the tombstone.
import { and, eq, inArray, ne, notExists, notInArray, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { agents } from '../db/access';
import { defaultPointers, hostCache, issues, sandboxes, snapshotEvents, snapshots } from '../db/schema';
import { SnapflowError } from '../lib/errors';
import type { RunRef } from './snapshots';

export interface Usage {
  defaults: Array<{ workspace: string; size: string; profileKey: string }>;
  pins: string[];
  sandboxes: string[];
  /** Forks made from it (a container fork starts from its fork point on every start). */
  forks: string[];
  /** Agents running on it. */
  agents: string[];
}

export const inUse = (u: Usage): boolean => u.defaults.length + u.pins.length + u.sandboxes.length + u.forks.length + u.agents.length > 0;

export function describeUsage(u: Usage): string {
  return [
    ...u.defaults.map((d) => `default for ${d.workspace} ${d.size} ${d.profileKey}`),
    ...u.pins.map((p) => `pinned on issue ${p}`),
    ...u.sandboxes.map((s) => `latest session of sandbox ${s}`),
    ...u.forks.map((s) => `fork point of sandbox ${s}`),
    ...u.agents.map((a) => `agent ${a}`),
  ].join('; ');
}

export async function usageOf(db: Pick<Db, 'select'>, snapshotId: string): Promise<Usage> {
  const [defaults, pins, boxes, forks, users] = await Promise.all([
    db
      .select({ workspace: defaultPointers.workspace, size: defaultPointers.size, profileKey: defaultPointers.profileKey })
      .from(defaultPointers)
      .where(eq(defaultPointers.snapshotId, snapshotId)),
    db.select({ key: issues.externalKey }).from(issues).where(eq(issues.pinnedSnapshotId, snapshotId)),
    // A stopped (or failed) sandbox resumes from its latest session: that session is in use as much as a running one's.
    db.select({ id: sandboxes.id }).from(sandboxes).where(eq(sandboxes.latestSessionSnapshotId, snapshotId)),
    db.select({ id: sandboxes.id }).from(sandboxes).where(eq(sandboxes.forkedFromSnapshotId, snapshotId)),
    db.select({ name: agents.name }).from(agents).where(eq(agents.snapshotId, snapshotId)),
  ]);
  return {
    defaults,
    pins: pins.map((p) => p.key),
    sandboxes: boxes.map((b) => b.id),
    forks: forks.map((f) => f.id),
    agents: users.map((a) => a.name),
  };
}

/** Snapshots in a workspace that nothing references and that have not changed for `days`: prune candidates. */
export async function unusedSnapshots(
  db: Db,
  input: { workspace: string; days: number },
): Promise<Array<{ id: string; name: string; status: string; updatedAt: Date }>> {
  return db
    .select({ id: snapshots.id, name: snapshots.name, status: snapshots.status, updatedAt: snapshots.updatedAt })
    .from(snapshots)
    .where(
      and(
        eq(snapshots.workspace, input.workspace),
        inArray(snapshots.status, ['active', 'failed']),
        sql`greatest(${snapshots.updatedAt}, coalesce((select max(${hostCache.lastUsedAt}) from ${hostCache} where ${hostCache.snapshotId} = ${snapshots.id}), ${snapshots.updatedAt})) < now() - make_interval(days => ${input.days})`,
        notExists(
          db
            .select({ one: sql`1` })
            .from(defaultPointers)
            .where(eq(defaultPointers.snapshotId, snapshots.id)),
        ),
        notExists(
          db
            .select({ one: sql`1` })
            .from(issues)
            .where(eq(issues.pinnedSnapshotId, snapshots.id)),
        ),
        notExists(
          db
            .select({ one: sql`1` })
            .from(sandboxes)
            .where(or(eq(sandboxes.latestSessionSnapshotId, snapshots.id), eq(sandboxes.forkedFromSnapshotId, snapshots.id))),
        ),
        notExists(
          db
            .select({ one: sql`1` })
            .from(agents)
            .where(eq(agents.snapshotId, snapshots.id)),
        ),
      ),
    )
    .orderBy(snapshots.updatedAt);
}

/**
 * Refuses while a default, a pin or a sandbox uses the snapshot, naming them; else moves it to `deleting`. The stored
 * image is returned for removal only when no other snapshot still stands on it: a golden build registers one snapshot
 * per target on one stored digest, and deleting one of them must not pull the image from under the others. A
 * snapshot already `deleting` counts as gone (its delete always finishes, see the reconciler).
 */
export async function markDeleting(
  db: Db,
  input: { id: string; actor: string; run: RunRef },
): Promise<{ storedRef: string | null; alreadyDeleted: boolean }> {
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(snapshots).where(eq(snapshots.id, input.id)).for('update');
    if (!row) throw new SnapflowError({ code: 'NOT_FOUND', message: `snapshot ${input.id} does not exist` });
    if (row.status === 'deleted') return { storedRef: row.storedRef, alreadyDeleted: true };
    if (row.status === 'pending') {
      throw new SnapflowError({
        code: 'CONFLICT',
        message: `snapshot ${row.name} is still being built`,
        hint: 'wait for it to become active or failed, or cancel its run',
      });
    }
    const usage = await usageOf(tx, input.id);
    if (inUse(usage)) {
      throw new SnapflowError({
        code: 'CONFLICT',
        message: `snapshot ${row.name} is in use: ${describeUsage(usage)}`,
        hint: 'set another default, unpin it, stop the sandbox, or roll its agents to another snapshot first',
      });
    }
    if (row.status !== 'deleting') {
      await tx.update(snapshots).set({ status: 'deleting' }).where(eq(snapshots.id, input.id));
      await tx.insert(snapshotEvents).values({
        snapshotId: input.id,
        type: 'deleting',
        fromStatus: row.status,
        toStatus: 'deleting',
        actor: input.actor,
        workflowId: input.run.workflowId,
        runId: input.run.runId,
      });
    }
    const shared = row.storedRef
      ? await tx
          .select({ id: snapshots.id })
          .from(snapshots)
          .where(
            and(eq(snapshots.storedRef, row.storedRef), ne(snapshots.id, input.id), notInArray(snapshots.status, ['deleting', 'deleted'])),
          )
          .limit(1)
      : [];
    return { storedRef: shared.length ? null : row.storedRef, alreadyDeleted: false };
  });
}

/** The tombstone: `deleting` becomes `deleted` and no host cache lists the snapshot any more (idempotent). */
export async function markDeleted(db: Db, input: { id: string; actor: string; run: RunRef }): Promise<void> {
  await db.transaction(async (tx) => {
    const done = await tx
      .update(snapshots)
      .set({ status: 'deleted', deletedAt: new Date() })
      .where(and(eq(snapshots.id, input.id), eq(snapshots.status, 'deleting')))
      .returning({ id: snapshots.id });
    if (!done.length) return;
    await tx.delete(hostCache).where(eq(hostCache.snapshotId, input.id));
    await tx.insert(snapshotEvents).values({
      snapshotId: input.id,
      type: 'deleted',
      fromStatus: 'deleting',
      toStatus: 'deleted',
      actor: input.actor,
      workflowId: input.run.workflowId,
      runId: input.run.runId,
    });
  });
}

/** Snapshots still live (active, or being stored) whose stored ref is in `registryHost`: what storage gc must keep. */
export async function liveStoredSnapshots(
  db: Pick<Db, 'select'>,
  registryHost: string,
): Promise<Array<{ id: string; workspace: string; name: string; storedRef: string }>> {
  const rows = await db
    .select({ id: snapshots.id, workspace: snapshots.workspace, name: snapshots.name, storedRef: snapshots.storedRef })
    .from(snapshots)
    .where(and(inArray(snapshots.status, ['active', 'pending']), sql`${snapshots.storedRef} like ${`${registryHost}/%`}`));
  return rows.flatMap((r) => (r.storedRef ? [{ ...r, storedRef: r.storedRef }] : []));
}
