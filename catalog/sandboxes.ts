// Catalog side of sandboxes: the row the entity workflow keeps in step with its state, session snapshots saved
// after successful jobs, and issue pins. Every write is idempotent, so a retried activity changes nothing twice; a pin
// is decided and audited here, whoever calls it.
import { and, eq } from 'drizzle-orm';
import type { Db, Queryable } from '../db/client';
import { hostCache, issues, sandboxes, snapshotEvents, snapshots, type Issue, type Sandbox } from '../db/schema';
import { SnapflowError } from '../lib/errors';
import type { Runtime } from '../lib/presets';
import type { SandboxClass, SandboxState } from '../lib/vocabulary';
import { audited, type Caller } from './access';
import { findUsableSnapshot, type RunRef } from './snapshots';

export type { Sandbox } from '../db/schema';

/** What a sandbox is registered with; the entity workflow's request (SandboxRequest) carries the same. */
export interface SandboxRow {
  id: string;
  workspace: string;
  class: SandboxClass;
  size: string;
  runtime: Runtime;
  profileKey: string;
  keepAlive: boolean;
  issueId?: string;
  /** The image snapshot it was created from; absent: the built-in base. */
  baseSnapshotId?: string;
  /** The agent it follows: each start uses that agent's snapshot as it is then. */
  agentId?: string;
  /** `sandbox fork`: the source's session snapshot it starts from (a vm fork: as its latest session). */
  forkedFromSnapshotId?: string;
}

export interface SessionSnapshot {
  id: string;
  sandboxId: string;
  workspace: string;
  runtime: Runtime;
  size: string;
  profileKey: string;
  /** The committed image on the host (what a cached copy is started by). */
  localRef: string;
  /** registry/repo@digest once uploaded; null when storage is not configured (host cache only). */
  storedRef: string | null;
  digest: string | null;
  /** A vm sandbox's session is a saved machine: the profile it restores onto (null: a committed image). */
  machineProfile?: string | null;
  hostId: string;
  sequence: number;
  run: RunRef;
  /**
   * A save for `sandbox fork` (the fork's id): named for it, and made the source's latest only for a vm (a container
   * sandbox keeps no latest session; the row is its fork's starting point).
   */
  forkId?: string;
}

export interface SandboxStateUpdate {
  id: string;
  state: SandboxState;
  hostId?: string | null;
  containerId?: string | null;
  /** The profile it runs since its last start (changes when its agent moved to another image). */
  profileKey?: string;
}

export async function insertSandbox(db: Db, input: SandboxRow): Promise<void> {
  await db
    .insert(sandboxes)
    // A vm fork's first start is its source's session, by the restore order's session step; a container keeps no
    // latest session (sandboxes_snapshot_only_vm) and starts from its fork point instead (lib/restoreOrder.ts).
    .values({
      ...input,
      state: 'provisioning',
      latestSessionSnapshotId: input.class === 'vm' ? (input.forkedFromSnapshotId ?? null) : null,
    })
    .onConflictDoNothing({ target: sandboxes.id });
}

/** Mirrors the workflow's state into the catalog (restore resolution and `sandbox list` read it). */
export async function setSandboxState(db: Db, input: SandboxStateUpdate): Promise<void> {
  await db
    .update(sandboxes)
    .set({
      state: input.state,
      ...(input.profileKey !== undefined ? { profileKey: input.profileKey } : {}),
      ...(input.hostId !== undefined ? { hostId: input.hostId } : {}),
      ...(input.containerId !== undefined ? { containerId: input.containerId } : {}),
      updatedAt: new Date(),
    })
    .where(eq(sandboxes.id, input.id));
}

/**
 * The session snapshot of a successful job: registered active, cached on its host, and made the sandbox's
 * latest; the previous latest is marked superseded (its image is evicted with the host cache).
 */
export async function insertSessionSnapshot(db: Db, input: SessionSnapshot): Promise<{ snapshotId: string; superseded: string | null }> {
  return db.transaction(async (tx) => {
    const [box] = await tx.select().from(sandboxes).where(eq(sandboxes.id, input.sandboxId)).for('update');
    if (!box) throw new SnapflowError({ code: 'NOT_FOUND', message: `sandbox ${input.sandboxId} is not in the catalog` });
    if (box.latestSessionSnapshotId === input.id) return { snapshotId: input.id, superseded: null }; // a retry
    const latest = !input.forkId || box.class === 'vm';
    if (!latest) {
      const [mine] = await tx.select({ id: snapshots.id }).from(snapshots).where(eq(snapshots.id, input.id));
      if (mine) return { snapshotId: input.id, superseded: null }; // a retry of a container's fork save
    }
    await tx.insert(snapshots).values({
      id: input.id,
      workspace: input.workspace,
      // Names are at most 63 characters: the fork's id is cut to its first 8 hex digits.
      name: input.forkId ? `session-${input.sandboxId}-fork-${input.forkId.slice(0, 8)}` : `session-${input.sandboxId}-${input.sequence}`,
      kind: 'session',
      sourceImage: input.localRef,
      resolvedDigest: input.digest,
      storedRef: input.storedRef,
      machineProfile: input.machineProfile ?? null,
      runtime: input.runtime,
      size: input.size,
      profileKey: input.profileKey,
      status: 'active',
      origin: 'job',
      sandboxId: input.sandboxId,
      parentSnapshotId: box.latestSessionSnapshotId ?? box.forkedFromSnapshotId,
      workflowId: input.run.workflowId,
      runId: input.run.runId,
    });
    await tx.insert(snapshotEvents).values({
      snapshotId: input.id,
      type: 'registered',
      toStatus: 'active',
      message: `session saved ${input.forkId ? `for fork ${input.forkId}` : `after job ${input.sequence}`}${input.storedRef ? `, stored as ${input.storedRef}` : ' (host cache only: no storage)'}`,
      workflowId: input.run.workflowId,
      runId: input.run.runId,
    });
    if (!latest) {
      await tx.insert(hostCache).values({ hostId: input.hostId, snapshotId: input.id }).onConflictDoNothing();
      return { snapshotId: input.id, superseded: null };
    }
    if (box.latestSessionSnapshotId) {
      await tx.insert(snapshotEvents).values({
        snapshotId: box.latestSessionSnapshotId,
        type: 'superseded',
        message: `superseded by ${input.id}`,
        workflowId: input.run.workflowId,
        runId: input.run.runId,
      });
    }
    await tx.update(sandboxes).set({ latestSessionSnapshotId: input.id, updatedAt: new Date() }).where(eq(sandboxes.id, input.sandboxId));
    await tx.insert(hostCache).values({ hostId: input.hostId, snapshotId: input.id }).onConflictDoNothing();
    return { snapshotId: input.id, superseded: box.latestSessionSnapshotId };
  });
}

/** The workspace's issue with that external key, created on first use (a sandbox for it, or a pin). */
export async function saveIssue(db: Pick<Queryable, 'insert'>, input: { workspace: string; issue: string }): Promise<Issue> {
  const [issue] = await db
    .insert(issues)
    .values({ workspace: input.workspace, externalKey: input.issue })
    .onConflictDoUpdate({ target: [issues.workspace, issues.externalKey], set: { updatedAt: new Date() } })
    .returning();
  return issue!;
}

export async function listSandboxes(db: Db, workspace: string): Promise<Sandbox[]> {
  return db.select().from(sandboxes).where(eq(sandboxes.workspace, workspace));
}

/** One sandbox's catalog row; undefined until its workflow has registered it. */
export async function findSandbox(db: Db, sandboxId: string): Promise<Sandbox | undefined> {
  const [row] = await db.select().from(sandboxes).where(eq(sandboxes.id, sandboxId));
  return row;
}

/** The workspace a sandbox belongs to; undefined until its workflow has registered the row. */
export async function sandboxScope(db: Db, sandboxId: string): Promise<string | undefined> {
  const [row] = await db.select({ workspace: sandboxes.workspace }).from(sandboxes).where(eq(sandboxes.id, sandboxId));
  return row?.workspace;
}

/**
 * Pins a golden snapshot on an issue (created on first pin); needs `issue.pin`, decided and audited here. Refused for
 * anything restore would skip anyway (see pinOnIssue).
 */
export async function pinSnapshot(
  db: Db,
  caller: Caller,
  input: { workspace: string; issue: string; snapshotName: string },
): Promise<{ issueId: string; snapshotId: string }> {
  return audited(db, caller, input.workspace, 'issue.pin', `${input.issue} → ${input.snapshotName}`, (tx) => pinOnIssue(tx, input));
}

/**
 * The pin itself, for a caller that has decided access already (the pin workflow): refused for anything restore would
 * skip anyway: not golden, not active, another workspace's (system ones are fine), or built for another profile than
 * the issue's sandboxes use.
 */
export async function pinOnIssue(
  tx: Queryable,
  input: { workspace: string; issue: string; snapshotName: string },
): Promise<{ issueId: string; snapshotId: string }> {
  const snap = await pinTarget(tx, input);
  const issue = await saveIssue(tx, { workspace: input.workspace, issue: input.issue });
  const users = await tx.select({ profileKey: sandboxes.profileKey }).from(sandboxes).where(eq(sandboxes.issueId, issue.id));
  const other = users.find((u) => u.profileKey !== snap.profileKey);
  if (other)
    refusePin(
      `"${snap.name}" was built for ${snap.profileKey}, but sandboxes of issue ${input.issue} use ${other.profileKey}`,
      'pin a golden snapshot built for that profile',
    );
  await tx.update(issues).set({ pinnedSnapshotId: snap.id, updatedAt: new Date() }).where(eq(issues.id, issue.id));
  return { issueId: issue.id, snapshotId: snap.id };
}

function refusePin(message: string, hint: string): never {
  throw new SnapflowError({ code: 'VALIDATION_FAILED', field: 'snapshot', message, hint });
}

/**
 * The snapshot a pin names, refused unless it is an active golden of the workspace or the system. Only reads, so
 * the client asks it before it starts the pin workflow: a pin of nothing writes nothing.
 */
export async function pinTarget(db: Queryable, input: { workspace: string; snapshotName: string }) {
  // The workspace's own golden snapshots, or the operators' (system) ones; the workspace's win a name clash.
  const snap = await findUsableSnapshot(db, { workspace: input.workspace, name: input.snapshotName });
  if (!snap)
    throw new SnapflowError({
      code: 'NOT_FOUND',
      field: 'snapshot',
      message: `no snapshot "${input.snapshotName}" in ${input.workspace}`,
      hint: 'list them with `snapflow snapshot list`',
    });
  if (snap.kind !== 'golden')
    refusePin(
      `"${snap.name}" is a ${snap.kind} snapshot; only golden snapshots can be pinned`,
      'pin a golden snapshot (`snapflow golden build`, or promote a sandbox)',
    );
  if (snap.status !== 'active')
    refusePin(`"${snap.name}" is ${snap.status}; only an active snapshot can be pinned`, 'wait for it to become active, or pin another');
  return snap;
}

/** Needs `issue.pin`, decided and audited here; an issue the workspace does not have is NOT_FOUND. */
export async function unpinSnapshot(db: Db, caller: Caller, input: { workspace: string; issue: string }): Promise<void> {
  await audited(db, caller, input.workspace, 'issue.pin', `${input.issue} unpinned`, (tx) => unpinOnIssue(tx, input));
}

/** The unpin itself, for a caller that has decided access already; an issue the workspace does not have is NOT_FOUND. */
export async function unpinOnIssue(tx: Queryable, input: { workspace: string; issue: string }): Promise<void> {
  const gone = await tx
    .update(issues)
    .set({ pinnedSnapshotId: null, updatedAt: new Date() })
    .where(and(eq(issues.workspace, input.workspace), eq(issues.externalKey, input.issue)))
    .returning({ id: issues.id });
  if (gone.length === 0) throw nothingPinned(input);
}

/** An unpin of an issue the workspace does not have: refused before the unpin workflow starts (only reads). */
export async function requireIssue(db: Queryable, input: { workspace: string; issue: string }): Promise<void> {
  const [found] = await db
    .select({ id: issues.id })
    .from(issues)
    .where(and(eq(issues.workspace, input.workspace), eq(issues.externalKey, input.issue)));
  if (!found) throw nothingPinned(input);
}

function nothingPinned(input: { workspace: string; issue: string }): SnapflowError {
  return new SnapflowError({ code: 'NOT_FOUND', field: 'issue', message: `issue ${input.issue} has nothing pinned in ${input.workspace}` });
}

/** A session snapshot as promotion of a stopped sandbox publishes it: where it is stored, and which hosts hold it. */
export interface StoredSession {
  id: string;
  name: string;
  storedRef: string | null;
  digest: string | null;
  machineProfile: string | null;
  cachedOn: string[];
}

/** One of `workspace`'s session snapshots (NOT_FOUND for another workspace's, so nothing is told across workspaces). */
export async function readSessionSnapshot(db: Db, input: { snapshotId: string; workspace: string }): Promise<StoredSession> {
  const [row] = await db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.id, input.snapshotId), eq(snapshots.workspace, input.workspace), eq(snapshots.kind, 'session')));
  if (!row || row.status !== 'active')
    throw new SnapflowError({
      code: 'NOT_FOUND',
      message: `session snapshot ${input.snapshotId} is not an active session of ${input.workspace}`,
    });
  const cached = await db.select({ hostId: hostCache.hostId }).from(hostCache).where(eq(hostCache.snapshotId, row.id));
  return {
    id: row.id,
    name: row.name,
    storedRef: row.storedRef,
    digest: row.resolvedDigest,
    machineProfile: row.machineProfile,
    cachedOn: cached.map((c) => c.hostId).sort(),
  };
}
