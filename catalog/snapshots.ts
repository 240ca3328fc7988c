// Snapshot rows and their events. Every status change is a guarded UPDATE (from the expected status) plus an event
// in the same transaction, so a retried caller changes nothing twice.
import { and, asc, desc, eq, inArray, ne, sql, type SQL } from 'drizzle-orm';
import type { Db, Queryable } from '../db/client';
import { agents } from '../db/access';
import {
  defaultHistory,
  defaultPointers,
  issues,
  snapshotEvents,
  snapshots,
  type NewSnapshot,
  type Snapshot,
  type SnapshotEvent,
} from '../db/schema';
import { SnapflowError, type ErrorCode } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import type { SnapshotStatus } from '../lib/vocabulary';

export type { Snapshot, SnapshotEvent } from '../db/schema';

/** What a workflow knows about the run that writes a row; recorded on the row and its events. */
export interface RunRef {
  workflowId: string;
  runId: string;
}

export type PendingSnapshot = Pick<
  NewSnapshot,
  | 'id'
  | 'workspace'
  | 'name'
  | 'kind'
  | 'sourceImage'
  | 'entrypoint'
  | 'runtime'
  | 'size'
  | 'profileKey'
  | 'origin'
  | 'parentSnapshotId'
  | 'sandboxId'
> & { id: string; run: RunRef; actor?: string };

/** The fields that decide replace-vs-reuse (see README, Image snapshots): image, runtime, entrypoint, capacity. */
export function sameSpec(
  a: Pick<Snapshot, 'sourceImage' | 'runtime' | 'entrypoint' | 'size'>,
  b: Pick<Snapshot, 'sourceImage' | 'runtime' | 'entrypoint' | 'size'>,
): boolean {
  return a.sourceImage === b.sourceImage && a.runtime === b.runtime && a.entrypoint === b.entrypoint && a.size === b.size;
}

const isUniqueViolation = (err: unknown): boolean => {
  for (let e: unknown = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++)
    if ((e as { code?: string }).code === '23505') return true;
  return false;
};

async function transition(
  db: Db,
  input: {
    id: string;
    from: SnapshotStatus[];
    to: SnapshotStatus;
    set?: Partial<NewSnapshot>;
    type: string;
    message?: string;
    run?: RunRef;
    actor?: string;
  },
): Promise<Snapshot | undefined> {
  return db.transaction(async (tx) => {
    const [before] = await tx.select({ status: snapshots.status }).from(snapshots).where(eq(snapshots.id, input.id)).for('update');
    if (!before || !input.from.includes(before.status)) return undefined; // already moved on: idempotent retry
    const [row] = await tx
      .update(snapshots)
      .set({ ...input.set, status: input.to })
      .where(eq(snapshots.id, input.id))
      .returning();
    await tx.insert(snapshotEvents).values({
      snapshotId: input.id,
      type: input.type,
      fromStatus: before.status,
      toStatus: input.to,
      message: input.message,
      actor: input.actor,
      workflowId: input.run?.workflowId,
      runId: input.run?.runId,
    });
    return row;
  });
}

/**
 * The workflow's first write. Idempotent by id (a retried activity finds its own row). A live row with the
 * same name and the same spec is reused; one with another spec is a CONFLICT.
 */
export async function insertPendingSnapshot(db: Db, input: PendingSnapshot): Promise<{ snapshotId: string; reused: boolean }> {
  const { run, actor, ...row } = input;
  try {
    await db.transaction(async (tx) => {
      // A failed attempt under this name is superseded by the new one (its events stay).
      const superseded = await tx
        .update(snapshots)
        .set({ status: 'deleted', deletedAt: new Date() })
        .where(
          and(
            eq(snapshots.workspace, row.workspace),
            eq(snapshots.name, row.name),
            eq(snapshots.status, 'failed'),
            ne(snapshots.id, row.id),
          ),
        )
        .returning({ id: snapshots.id });
      for (const s of superseded) {
        await tx.insert(snapshotEvents).values({
          snapshotId: s.id,
          type: 'superseded',
          fromStatus: 'failed',
          toStatus: 'deleted',
          message: `retried as ${row.id}`,
          actor,
          workflowId: run.workflowId,
          runId: run.runId,
        });
      }
      const inserted = await tx
        .insert(snapshots)
        .values({ ...row, status: 'pending', workflowId: run.workflowId, runId: run.runId })
        .onConflictDoNothing({ target: snapshots.id })
        .returning({ id: snapshots.id });
      if (inserted.length) {
        await tx.insert(snapshotEvents).values({
          snapshotId: row.id,
          type: 'created',
          toStatus: 'pending',
          message: `${row.kind} snapshot requested (${row.origin})`,
          actor,
          workflowId: run.workflowId,
          runId: run.runId,
        });
      }
    });
    return { snapshotId: row.id, reused: false };
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    const live = await findLiveSnapshot(db, { workspace: row.workspace, name: row.name });
    if (
      live &&
      sameSpec(live, {
        sourceImage: row.sourceImage ?? null,
        runtime: row.runtime,
        entrypoint: row.entrypoint ?? '/app/start.sh',
        size: row.size,
      })
    ) {
      return { snapshotId: live.id, reused: true };
    }
    throw new SnapflowError({
      code: 'CONFLICT',
      field: 'name',
      message: `snapshot "${row.name}" already exists in ${row.workspace} with a different image, runtime, entrypoint or size`,
      hint: 'choose a new versioned name, or pass --replace',
    });
  }
}

export async function activateSnapshot(
  db: Db,
  input: { id: string; resolvedDigest: string; storedRef: string; run: RunRef },
): Promise<void> {
  await transition(db, {
    id: input.id,
    from: ['pending'],
    to: 'active',
    set: { resolvedDigest: input.resolvedDigest, storedRef: input.storedRef, errorCode: null, errorMessage: null },
    type: 'activated',
    message: `stored as ${input.storedRef}`,
    run: input.run,
  });
}

export async function failSnapshot(db: Db, input: { id: string; code: ErrorCode; message: string; run?: RunRef }): Promise<void> {
  await transition(db, {
    id: input.id,
    from: ['pending'],
    to: 'failed',
    set: { errorCode: input.code, errorMessage: input.message.slice(0, 2000) },
    type: 'failed',
    message: `${input.code}: ${input.message}`.slice(0, 2000),
    run: input.run,
  });
}

/** `--replace` takes over defaults, pins and agents: only from a live image snapshot of the same workspace. */
export async function assertReplaceable(db: Db, input: { id: string; workspace: string }): Promise<void> {
  const [old] = await db
    .select({ workspace: snapshots.workspace, name: snapshots.name, kind: snapshots.kind, status: snapshots.status })
    .from(snapshots)
    .where(eq(snapshots.id, input.id));
  const refuse = (code: ErrorCode, message: string, hint: string): never => {
    throw new SnapflowError({ code, field: 'replaces', message, hint });
  };
  if (!old || old.status === 'deleted' || old.status === 'deleting')
    refuse('NOT_FOUND', `snapshot ${input.id} to replace does not exist (any more)`, 'create without --replace');
  if (old!.workspace !== input.workspace)
    refuse(
      'PERMISSION_DENIED',
      `snapshot ${old!.name} belongs to ${old!.workspace}, not ${input.workspace}`,
      'replace a snapshot of your own workspace',
    );
  if (old!.kind !== 'image')
    refuse(
      'CONFLICT',
      `${old!.name} is a ${old!.kind} snapshot; an image snapshot does not replace it`,
      'choose another name; golden defaults change with `snapflow golden set-default`',
    );
}

/** Progress that operators see in `snapshot get`; not a status change. */
export async function addSnapshotStep(db: Db, input: { id: string; step: string; message: string; run: RunRef }): Promise<void> {
  await db.insert(snapshotEvents).values({
    snapshotId: input.id,
    type: `step:${input.step}`,
    message: input.message,
    workflowId: input.run.workflowId,
    runId: input.run.runId,
  });
}

/**
 * `--replace`: move what pointed at the old snapshot (defaults, pins, and agents unless a rollout takes them)
 * to the new one, atomically, with a default-history entry per moved default. The old snapshot stays active for
 * rollback, and each moved agent remembers it as its previous snapshot.
 */
export async function moveReferences(
  db: Db,
  input: { fromId: string; toId: string; actor: string; run: RunRef; agents?: 'move' | 'keep' },
): Promise<{ defaults: number; pins: number; agents: number }> {
  return db.transaction(async (tx) => {
    const moved = await tx
      .update(defaultPointers)
      .set({ snapshotId: input.toId, version: sql`${defaultPointers.version} + 1` })
      .where(eq(defaultPointers.snapshotId, input.fromId))
      .returning();
    for (const p of moved) {
      await tx.insert(defaultHistory).values({
        workspace: p.workspace,
        size: p.size,
        profileKey: p.profileKey,
        snapshotId: input.toId,
        previousSnapshotId: input.fromId,
        actor: input.actor,
        reason: 'replaced',
        workflowId: input.run.workflowId,
      });
    }
    const pins = await tx
      .update(issues)
      .set({ pinnedSnapshotId: input.toId })
      .where(eq(issues.pinnedSnapshotId, input.fromId))
      .returning({ id: issues.id });
    const movedAgents =
      input.agents === 'keep'
        ? []
        : await tx
            .update(agents)
            .set({ snapshotId: input.toId, previousSnapshotId: input.fromId, updatedAt: new Date() })
            .where(eq(agents.snapshotId, input.fromId))
            .returning({ name: agents.name });
    const message = `replaced by ${input.toId}: ${moved.length} default(s), ${pins.length} pin(s), ${movedAgents.length} agent(s) moved${input.agents === 'keep' ? ' (agents: by rollout)' : ''}`;
    await tx.insert(snapshotEvents).values([
      { snapshotId: input.fromId, type: 'replaced', message, actor: input.actor, workflowId: input.run.workflowId, runId: input.run.runId },
      {
        snapshotId: input.toId,
        type: 'replaces',
        message: `replaces ${input.fromId}`,
        actor: input.actor,
        workflowId: input.run.workflowId,
        runId: input.run.runId,
      },
    ]);
    return { defaults: moved.length, pins: pins.length, agents: movedAgents.length };
  });
}

/** Pending rows whose run may be gone; the reconciler checks each against Temporal. */
export async function unsettledSnapshots(
  db: Db,
  input: { olderThanSeconds: number },
): Promise<Array<{ id: string; workflowId: string | null; runId: string | null }>> {
  return db
    .select({ id: snapshots.id, workflowId: snapshots.workflowId, runId: snapshots.runId })
    .from(snapshots)
    .where(
      and(
        inArray(snapshots.status, ['pending', 'deleting']),
        sql`${snapshots.updatedAt} < now() - make_interval(secs => ${input.olderThanSeconds})`,
      ),
    )
    .limit(500);
}

/**
 * `deleting` rows whose move to `deleting` is older than `olderThanSeconds`, with who asked for the delete: the
 * reconciler starts their delete again when its run is gone.
 */
export async function interruptedDeletes(db: Db, input: { olderThanSeconds: number }): Promise<Array<{ id: string; actor: string }>> {
  const rows = await db
    .selectDistinctOn([snapshots.id], { id: snapshots.id, actor: snapshotEvents.actor })
    .from(snapshots)
    .innerJoin(snapshotEvents, and(eq(snapshotEvents.snapshotId, snapshots.id), eq(snapshotEvents.type, 'deleting')))
    .where(
      and(eq(snapshots.status, 'deleting'), sql`${snapshotEvents.createdAt} < now() - make_interval(secs => ${input.olderThanSeconds})`),
    )
    .orderBy(snapshots.id, desc(snapshotEvents.createdAt))
    .limit(500);
  return rows.map((r) => ({ id: r.id, actor: r.actor ?? 'system' }));
}

/** The workspace a snapshot belongs to, and its name; NOT_FOUND when there is no such snapshot. */
export async function snapshotOwner(db: Db, snapshotId: string): Promise<{ workspace: string; name: string }> {
  const [snapshot] = await db
    .select({ workspace: snapshots.workspace, name: snapshots.name })
    .from(snapshots)
    .where(eq(snapshots.id, snapshotId));
  if (!snapshot) throw new SnapflowError({ code: 'NOT_FOUND', field: 'snapshot', message: `snapshot ${snapshotId} does not exist` });
  return snapshot;
}

/** The live (not deleted) snapshot of that name in the workspace; at most one exists. */
export async function findLiveSnapshot(
  db: Pick<Queryable, 'select'>,
  input: { workspace: string; name: string },
): Promise<Snapshot | undefined> {
  const [row] = await db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.workspace, input.workspace), eq(snapshots.name, input.name), ne(snapshots.status, 'deleted')));
  return row;
}

/**
 * A live snapshot the workspace may use: its own or a system one (its own wins a name clash), by id or by name.
 */
export async function findUsableSnapshot(
  db: Pick<Queryable, 'select'>,
  input: { workspace: string } & ({ snapshotId: string } | { name: string }),
): Promise<Snapshot | undefined> {
  const which = 'snapshotId' in input ? eq(snapshots.id, input.snapshotId) : eq(snapshots.name, input.name);
  const [snap] = await db
    .select()
    .from(snapshots)
    .where(and(which, ne(snapshots.status, 'deleted'), inArray(snapshots.workspace, [input.workspace, SYSTEM_SCOPE])))
    .orderBy(sql`${snapshots.workspace} = ${SYSTEM_SCOPE}`)
    .limit(1);
  return snap;
}

/** Every name the workspace has used, deleted snapshots included (the next versioned name skips them all). */
export async function snapshotNames(db: Db, workspace: string): Promise<string[]> {
  return (await db.select({ name: snapshots.name }).from(snapshots).where(eq(snapshots.workspace, workspace))).map((r) => r.name);
}

/** Filters of `snapshot list`, already checked against the catalog's values. */
export interface SnapshotFilter {
  workspace: string;
  status?: string;
  runtime?: string;
  size?: string;
  kind?: string;
}

function snapshotFilters(input: SnapshotFilter): SQL[] {
  const filters: SQL[] = [eq(snapshots.workspace, input.workspace), ne(snapshots.status, 'deleted')];
  if (input.status) filters.push(sql`${snapshots.status}::text = ${input.status}`);
  if (input.runtime) filters.push(sql`${snapshots.runtime}::text = ${input.runtime}`);
  if (input.size) filters.push(eq(snapshots.size, input.size));
  if (input.kind) filters.push(sql`${snapshots.kind}::text = ${input.kind}`);
  return filters;
}

/** The workspace's live snapshots, newest first: the first `limit` of them, or every one without a limit. */
export async function listSnapshots(db: Db, input: SnapshotFilter & { limit?: number }): Promise<Snapshot[]> {
  const query = db
    .select()
    .from(snapshots)
    .where(and(...snapshotFilters(input)))
    .orderBy(desc(snapshots.createdAt), desc(snapshots.id));
  return input.limit === undefined ? query : query.limit(input.limit);
}

/** How many live snapshots match the filter (what a limited list leaves out). */
export async function countSnapshots(db: Db, input: SnapshotFilter): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(snapshots)
    .where(and(...snapshotFilters(input)));
  return row?.n ?? 0;
}

/** A snapshot's events, oldest first. */
export async function listSnapshotEvents(db: Db, snapshotId: string): Promise<SnapshotEvent[]> {
  return db.select().from(snapshotEvents).where(eq(snapshotEvents.snapshotId, snapshotId)).orderBy(asc(snapshotEvents.id));
}

/** Only the progress steps (`step:<name>`) of a snapshot's run, oldest first. */
export async function listSnapshotSteps(db: Db, snapshotId: string): Promise<SnapshotEvent[]> {
  return db
    .select()
    .from(snapshotEvents)
    .where(and(eq(snapshotEvents.snapshotId, snapshotId), sql`${snapshotEvents.type} like 'step:%'`))
    .orderBy(asc(snapshotEvents.id));
}
