// Agents and the catalog side of a rollout: which agents a rollout covers, moving them onto a snapshot and back.
// Every move is idempotent, so a retried activity (or a replayed compensation) never moves an agent twice.
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { Db, Queryable } from '../db/client';
import { agents, type Agent } from '../db/access';
import { snapshots, type Snapshot } from '../db/schema';
import { SnapflowError } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import { audited, requireWorkspace, type Caller } from './access';
import { recordAudit } from './audit';
import { findUsableSnapshot, type RunRef } from './snapshots';

export type { Agent } from '../db/access';

/** An agent as a rollout sees it: its name, the snapshot it runs on now, and what its canary runs to prove it healthy. */
export interface RolloutAgent {
  name: string;
  snapshotId: string;
  healthCommand?: string[] | null;
}

/** An agent as a person reads it: the snapshots by name beside their ids. */
export type AgentView = Agent & { snapshotName: string; previousSnapshotName: string | null };

/** What a rollout needs to know about the snapshot it rolls out (and what `--auto` boots to check health). */
export interface RolloutSnapshot {
  snapshotId: string;
  name: string;
  workspace: string;
  kind: Snapshot['kind'];
  /** registry/repo@sha256:…; null for a snapshot kept only in a host cache. */
  storedRef: string | null;
  size: string;
  entrypoint: string;
}

/**
 * A live snapshot of the workspace or the system workspace (the workspace's own wins a name clash), in whatever status
 * it is now: what a running rollout is found by. By id or by name; NOT_FOUND names the field `snapshot`.
 */
export async function findLiveAgentSnapshot(
  db: Pick<Queryable, 'select'>,
  input: { workspace: string } & ({ snapshotId: string } | { name: string }),
): Promise<Snapshot> {
  const snap = await findUsableSnapshot(db, input);
  const label = 'snapshotId' in input ? input.snapshotId : input.name;
  if (!snap)
    throw new SnapflowError({
      code: 'NOT_FOUND',
      field: 'snapshot',
      message: `no snapshot "${label}" in ${input.workspace} or ${SYSTEM_SCOPE}`,
      hint: 'list them with `snapflow snapshot list`',
    });
  return snap;
}

/**
 * A snapshot agents (and sandbox or golden bases) may run on: found as by findLiveAgentSnapshot, active, and an image. Rollouts look it up by id, the client
 * by name. VALIDATION_FAILED names the field `snapshot`.
 */
export async function findAgentSnapshot(
  db: Pick<Queryable, 'select'>,
  input: { workspace: string } & ({ snapshotId: string } | { name: string }),
): Promise<Snapshot> {
  const snap = await findLiveAgentSnapshot(db, input);
  if (snap.status !== 'active')
    throw new SnapflowError({
      code: 'VALIDATION_FAILED',
      field: 'snapshot',
      message: `snapshot "${snap.name}" is ${snap.status}; agents run only on an active snapshot`,
      hint: 'wait for it to become active, or choose another',
    });
  // An agent's sandbox boots its image and starts the entrypoint afresh; a saved machine continues one sandbox's processes.
  if (snap.machineProfile)
    throw new SnapflowError({
      code: 'VALIDATION_FAILED',
      field: 'snapshot',
      message: `snapshot "${snap.name}" is a saved vm machine (a promoted sandbox), not an image; agents and bases run on images`,
      hint: 'use an image snapshot (`snapflow snapshot create --image …`) or a golden build; a saved machine is a default or pin for sandboxes',
    });
  return snap;
}

/**
 * A new agent on an active snapshot of its workspace (or a system one): `agent.manage`, decided and audited here.
 * CONFLICT when the name is taken.
 */
export async function createAgent(
  db: Db,
  caller: Caller,
  input: { workspace: string; name: string; snapshotName: string; healthCommand?: string[] },
): Promise<Agent> {
  return audited(db, caller, input.workspace, 'agent.manage', `${input.name} → ${input.snapshotName}`, async (tx) => {
    await requireWorkspace(tx, input.workspace);
    const snap = await findAgentSnapshot(tx, { workspace: input.workspace, name: input.snapshotName });
    const [row] = await tx
      .insert(agents)
      .values({ workspace: input.workspace, name: input.name, snapshotId: snap.id, healthCommand: input.healthCommand ?? null })
      .onConflictDoNothing()
      .returning();
    if (!row)
      throw new SnapflowError({
        code: 'CONFLICT',
        field: 'name',
        message: `agent ${input.name} already exists in ${input.workspace}`,
        hint: 'choose another name, or roll the existing agent out to the snapshot',
      });
    return row;
  });
}

/** One agent of a workspace by name; NOT_FOUND names the field `agent`. */
export async function findAgent(db: Pick<Queryable, 'select'>, input: { workspace: string; name: string }): Promise<Agent> {
  const [agent] = await db
    .select()
    .from(agents)
    .where(and(eq(agents.workspace, input.workspace), eq(agents.name, input.name)));
  if (!agent)
    throw new SnapflowError({
      code: 'NOT_FOUND',
      field: 'agent',
      message: `no agent ${input.name} in ${input.workspace}`,
      hint: 'list them with `snapflow agent list`',
    });
  return agent;
}

export async function listAgents(db: Db, workspace: string): Promise<AgentView[]> {
  const nameOf = (id: typeof agents.snapshotId | typeof agents.previousSnapshotId) =>
    sql<string | null>`(select s.name from snapshots s where s.id = ${id})`;
  const rows = await db
    .select({ agent: agents, snapshotName: nameOf(agents.snapshotId), previousSnapshotName: nameOf(agents.previousSnapshotId) })
    .from(agents)
    .where(eq(agents.workspace, workspace))
    .orderBy(asc(agents.name));
  return rows.map((r) => ({ ...r.agent, snapshotName: r.snapshotName ?? '', previousSnapshotName: r.previousSnapshotName }));
}

/** One canary or batch of a rollout: who moves which agents onto (or back from) which snapshot, from which run. */
export interface AgentMove {
  workspace: string;
  /** Each agent with the snapshot it was on when the rollout began. */
  agents: Array<{ name: string; from: string }>;
  snapshotId: string;
  actor: string;
  run: RunRef;
}

function byOrigin(list: AgentMove['agents']): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const a of list) groups.set(a.from, [...(groups.get(a.from) ?? []), a.name]);
  return groups;
}

async function onSnapshot(tx: Pick<Db, 'select'>, move: AgentMove): Promise<string[]> {
  const names = move.agents.map((a) => a.name);
  if (names.length === 0) return [];
  const rows = await tx
    .select({ name: agents.name })
    .from(agents)
    .where(and(eq(agents.workspace, move.workspace), inArray(agents.name, names), eq(agents.snapshotId, move.snapshotId)));
  return rows.map((r) => r.name);
}

/** The audit trail of a move, in the move's transaction; a retry that moved nobody adds nothing. */
async function auditMove(tx: Pick<Db, 'insert'>, move: AgentMove, names: string[], verb: string): Promise<void> {
  if (names.length === 0) return;
  await recordAudit(tx, {
    workspace: move.workspace,
    actor: move.actor,
    action: 'agent.rollout',
    target: `${names.join(', ')} ${verb} ${move.snapshotId}`.slice(0, 300),
    decision: 'allowed',
    reason: `${verb.split(' ')[0]} by the rollout`,
    workflowId: move.run.workflowId,
    runId: move.run.runId,
  });
}

/** The snapshot a rollout moves agents to: active, in the workspace or system workspace, with what `--auto` boots. */
export async function rolloutSnapshot(db: Db, input: { workspace: string; snapshotId: string }): Promise<RolloutSnapshot> {
  const snap = await findAgentSnapshot(db, input);
  return {
    snapshotId: snap.id,
    name: snap.name,
    workspace: snap.workspace,
    kind: snap.kind,
    storedRef: snap.storedRef,
    size: snap.size,
    entrypoint: snap.entrypoint,
  };
}

/** The named agents in the order given (or all of the workspace's, by name); NOT_FOUND names every unknown one. */
export async function rolloutAgents(db: Db, input: { workspace: string; agents: string[] | 'all' }): Promise<RolloutAgent[]> {
  const names = input.agents;
  const where =
    names === 'all'
      ? eq(agents.workspace, input.workspace)
      : and(eq(agents.workspace, input.workspace), inArray(agents.name, names.length ? names : ['']));
  const rows = await db
    .select({ name: agents.name, snapshotId: agents.snapshotId, healthCommand: agents.healthCommand })
    .from(agents)
    .where(where)
    .orderBy(asc(agents.name));
  if (names === 'all') return rows;
  const unknown = names.filter((n) => !rows.some((r) => r.name === n));
  if (unknown.length) {
    throw new SnapflowError({
      code: 'NOT_FOUND',
      field: 'agents',
      message: `no agent ${unknown.join(', ')} in ${input.workspace}`,
      hint: 'list them with `snapflow agent list`',
    });
  }
  // In the order asked for: the first named agents are the canary.
  return names.map((n) => rows.find((r) => r.name === n)!);
}

/** Names of the workspace's agents running on a snapshot (those a `--replace --rollout` hands over). */
export async function agentNamesOn(db: Db, input: { workspace: string; snapshotId: string }): Promise<string[]> {
  const rows = await db
    .select({ name: agents.name })
    .from(agents)
    .where(and(eq(agents.workspace, input.workspace), eq(agents.snapshotId, input.snapshotId)))
    .orderBy(asc(agents.name));
  return rows.map((r) => r.name);
}

/**
 * Moves each agent from the snapshot it was on when the rollout began onto the new one, remembering where it came
 * from. `elsewhere`: agents someone else moved meanwhile (neither on their origin nor on the new snapshot), left
 * alone. A retry after a commit finds them already on the new snapshot and moves nobody twice.
 */
export async function moveAgentsOnto(db: Db, input: AgentMove): Promise<{ moved: string[]; elsewhere: string[] }> {
  return db.transaction(async (tx) => {
    const moved: string[] = [];
    for (const [fromId, names] of byOrigin(input.agents)) {
      const rows = await tx
        .update(agents)
        .set({ previousSnapshotId: fromId, snapshotId: input.snapshotId, updatedAt: new Date() })
        .where(and(eq(agents.workspace, input.workspace), inArray(agents.name, names), eq(agents.snapshotId, fromId)))
        .returning({ name: agents.name });
      moved.push(...rows.map((r) => r.name));
    }
    await auditMove(tx, input, moved, 'moved to');
    const on = await onSnapshot(tx, input);
    return { moved, elsewhere: input.agents.map((a) => a.name).filter((n) => !on.includes(n)) };
  });
}

/**
 * Moves agents still on the new snapshot back to exactly the snapshot each came from. `stranded`: agents whose
 * origin is no longer active (deleted meanwhile), so they stay. Agents no longer on the new snapshot are left alone.
 */
export async function moveAgentsHome(db: Db, input: AgentMove): Promise<{ movedBack: string[]; stranded: string[] }> {
  return db.transaction(async (tx) => {
    const movedBack: string[] = [];
    const stranded: string[] = [];
    for (const [fromId, names] of byOrigin(input.agents)) {
      const [origin] = await tx.select({ status: snapshots.status }).from(snapshots).where(eq(snapshots.id, fromId));
      const here = and(eq(agents.workspace, input.workspace), inArray(agents.name, names), eq(agents.snapshotId, input.snapshotId));
      if (origin?.status !== 'active') {
        stranded.push(...(await tx.select({ name: agents.name }).from(agents).where(here)).map((r) => r.name));
        continue;
      }
      const rows = await tx
        .update(agents)
        .set({ snapshotId: fromId, previousSnapshotId: input.snapshotId, updatedAt: new Date() })
        .where(here)
        .returning({ name: agents.name });
      movedBack.push(...rows.map((r) => r.name));
    }
    await auditMove(tx, input, movedBack, 'moved back from');
    return { movedBack, stranded };
  });
}
