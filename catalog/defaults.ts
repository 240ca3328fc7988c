// The one default per (workspace, size, profile): changed only by compare-and-set, every change appended to history.
import { and, desc, eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { defaultHistory, defaultPointers, snapshots, type DefaultPointer } from '../db/schema';
import { SnapflowError } from '../lib/errors';

export interface SetDefault {
  workspace: string;
  size: string;
  profileKey: string;
  snapshotId: string;
  /** The pointer version the caller saw (0 = no default yet); a different current version is a CONFLICT. */
  expectedVersion?: number;
  actor: string;
  reason?: string;
  workflowId?: string;
}

export interface DefaultState {
  workspace: string;
  size: string;
  profileKey: string;
  snapshotId: string;
  /** The snapshot's name, shown beside its id. */
  name?: string;
  version: number;
}

const conflict = (message: string, hint?: string): never => {
  throw new SnapflowError({ code: 'CONFLICT', message, hint });
};

/** Shared by the activity (workflows) and the client (CLI reads): one place decides what may be a default. */
export async function compareAndSetDefault(db: Db, input: SetDefault): Promise<DefaultState> {
  return db.transaction(async (tx) => {
    const [snapshot] = await tx.select().from(snapshots).where(eq(snapshots.id, input.snapshotId));
    if (!snapshot)
      throw new SnapflowError({ code: 'NOT_FOUND', field: 'snapshot', message: `snapshot ${input.snapshotId} does not exist` });
    if (snapshot.kind !== 'golden') conflict(`${snapshot.name} is a ${snapshot.kind} snapshot; only golden snapshots can be defaults`);
    if (snapshot.status !== 'active') conflict(`${snapshot.name} is ${snapshot.status}; only an active snapshot can be a default`);
    if (snapshot.workspace !== input.workspace) conflict(`${snapshot.name} belongs to ${snapshot.workspace}, not ${input.workspace}`);
    if (snapshot.size !== input.size || snapshot.profileKey !== input.profileKey) {
      conflict(`${snapshot.name} is built for ${snapshot.size} ${snapshot.profileKey}, not ${input.size} ${input.profileKey}`);
    }
    const where = and(
      eq(defaultPointers.workspace, input.workspace),
      eq(defaultPointers.size, input.size),
      eq(defaultPointers.profileKey, input.profileKey),
    );
    const [current] = await tx.select().from(defaultPointers).where(where).for('update');
    const seen = current?.version ?? 0;
    if (input.expectedVersion !== undefined && input.expectedVersion !== seen) {
      conflict(
        `the default for ${input.workspace} ${input.size} ${input.profileKey} changed meanwhile (version ${seen}, expected ${input.expectedVersion})`,
        'look at the new default, then try again',
      );
    }
    let row;
    if (!current) {
      [row] = await tx
        .insert(defaultPointers)
        .values({ workspace: input.workspace, size: input.size, profileKey: input.profileKey, snapshotId: input.snapshotId, version: 1 })
        .onConflictDoNothing()
        .returning();
    } else {
      [row] = await tx
        .update(defaultPointers)
        .set({ snapshotId: input.snapshotId, version: seen + 1 })
        .where(and(where, eq(defaultPointers.version, seen)))
        .returning();
    }
    if (!row) conflict(`the default for ${input.workspace} ${input.size} ${input.profileKey} changed meanwhile`, 'try again');
    await tx.insert(defaultHistory).values({
      workspace: input.workspace,
      size: input.size,
      profileKey: input.profileKey,
      snapshotId: input.snapshotId,
      previousSnapshotId: current?.snapshotId ?? null,
      actor: input.actor,
      reason: input.reason,
      workflowId: input.workflowId,
    });
    return {
      workspace: row!.workspace,
      size: row!.size,
      profileKey: row!.profileKey,
      snapshotId: row!.snapshotId,
      name: snapshot.name,
      version: row!.version,
    };
  });
}

/** The default pointer for (workspace, size, profile); undefined while there is none. */
export async function findDefault(
  db: Db,
  input: { workspace: string; size: string; profileKey: string },
): Promise<DefaultPointer | undefined> {
  const [current] = await db
    .select()
    .from(defaultPointers)
    .where(
      and(
        eq(defaultPointers.workspace, input.workspace),
        eq(defaultPointers.size, input.size),
        eq(defaultPointers.profileKey, input.profileKey),
      ),
    );
  return current;
}

/** Rollback = set-default to the snapshot the current default replaced (the history's previous entry). */
export async function previousDefault(
  db: Db,
  input: { workspace: string; size: string; profileKey: string },
): Promise<{ snapshotId: string; version: number }> {
  const current = await findDefault(db, input);
  if (!current)
    throw new SnapflowError({
      code: 'NOT_FOUND',
      field: 'size',
      message: `no default for ${input.workspace} ${input.size} ${input.profileKey} to roll back`,
    });
  const [last] = await db
    .select()
    .from(defaultHistory)
    .where(
      and(
        eq(defaultHistory.workspace, input.workspace),
        eq(defaultHistory.size, input.size),
        eq(defaultHistory.profileKey, input.profileKey),
        eq(defaultHistory.snapshotId, current.snapshotId),
      ),
    )
    .orderBy(desc(defaultHistory.id))
    .limit(1);
  if (!last?.previousSnapshotId)
    throw new SnapflowError({
      code: 'NOT_FOUND',
      field: 'size',
      message: `the default for ${input.workspace} ${input.size} ${input.profileKey} has no earlier snapshot`,
    });
  return { snapshotId: last.previousSnapshotId, version: current.version };
}

export interface DefaultWithHistory extends DefaultState {
  updatedAt: string;
  /** Newest first, at most `historyLimit` entries: each change, who made it, why, and what it replaced. */
  history: Array<{
    snapshotId: string;
    name?: string;
    previousSnapshotId: string | null;
    actor: string;
    reason: string | null;
    at: string;
  }>;
}

/** Every default of the workspace (one per size/profile) with its recent history, for a console or `golden defaults`. */
export async function listDefaults(db: Db, input: { workspace: string; historyLimit?: number }): Promise<DefaultWithHistory[]> {
  const pointers = await db
    .select({ pointer: defaultPointers, name: snapshots.name })
    .from(defaultPointers)
    .leftJoin(snapshots, eq(snapshots.id, defaultPointers.snapshotId))
    .where(eq(defaultPointers.workspace, input.workspace))
    .orderBy(defaultPointers.size, defaultPointers.profileKey);
  const out: DefaultWithHistory[] = [];
  for (const { pointer, name } of pointers) {
    const history = await db
      .select({ entry: defaultHistory, name: snapshots.name })
      .from(defaultHistory)
      .leftJoin(snapshots, eq(snapshots.id, defaultHistory.snapshotId))
      .where(
        and(
          eq(defaultHistory.workspace, pointer.workspace),
          eq(defaultHistory.size, pointer.size),
          eq(defaultHistory.profileKey, pointer.profileKey),
        ),
      )
      .orderBy(desc(defaultHistory.id))
      .limit(Math.min(Math.max(1, input.historyLimit ?? 20), 200));
    out.push({
      workspace: pointer.workspace,
      size: pointer.size,
      profileKey: pointer.profileKey,
      snapshotId: pointer.snapshotId,
      name: name ?? undefined,
      version: pointer.version,
      updatedAt: pointer.updatedAt.toISOString(),
      history: history.map(({ entry, name: n }) => ({
        snapshotId: entry.snapshotId,
        name: n ?? undefined,
        previousSnapshotId: entry.previousSnapshotId,
        actor: entry.actor,
        reason: entry.reason,
        at: entry.createdAt.toISOString(),
      })),
    });
  }
  return out;
}
