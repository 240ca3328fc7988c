// Authorization against the catalog: the workspace (plan) and membership (role) behind each decision, shared by
// the workflows' first activity and the client. Each decision, allowed or denied, is an audit event. A catalog change
// with no workflow behind it is decided by `audited` inside the catalog function that makes it, whoever calls it.
import { and, eq } from 'drizzle-orm';
import type { Db, Queryable } from '../db/client';
import { members, workspaces } from '../db/access';
import { decideAccess, type AccessDecision, type Action } from '../lib/authz';
import { SnapflowError } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import { recordAudit } from './audit';
import type { RunRef } from './snapshots';

export interface Authorize {
  actor: string;
  workspace: string;
  action: Action;
  /** What is acted on (snapshot name, sandbox id …), for the audit trail. */
  target?: string;
  run?: RunRef;
}

/** Who asks, as the client knows it: the actor and the configured operators. */
export interface Caller {
  actor: string;
  operators: readonly string[];
}

const clip = (target: string | undefined): string | undefined => target?.slice(0, 300);

type Refusal = Extract<AccessDecision, { allowed: false }>;
const refused = (d: Refusal): SnapflowError => new SnapflowError({ code: d.code, field: 'actor', message: d.message, hint: d.hint });

/** The table's answer for this actor, from the catalog's workspace (plan) and membership (role). */
export async function decide(
  db: Pick<Queryable, 'select'>,
  operators: readonly string[],
  input: Pick<Authorize, 'actor' | 'workspace' | 'action'>,
): Promise<AccessDecision> {
  if (operators.includes(input.actor)) return { allowed: true, as: 'operator' };
  const [registered] = await db.select().from(workspaces).where(eq(workspaces.id, input.workspace));
  const [member] = registered
    ? await db
        .select()
        .from(members)
        .where(and(eq(members.workspace, input.workspace), eq(members.userId, input.actor)))
    : [];
  return decideAccess({
    actor: input.actor,
    workspace: input.workspace,
    action: input.action,
    operators,
    registered: registered ?? null,
    role: member?.role ?? null,
  });
}

/** Decides and records the decision; a refusal throws PERMISSION_DENIED / PLAN_REQUIRED. */
export async function authorizeActor(db: Db, operators: readonly string[], input: Authorize): Promise<{ as: string }> {
  const decision = await decide(db, operators, input);
  await recordAudit(db, {
    workspace: input.workspace,
    actor: input.actor.slice(0, 200),
    action: input.action,
    target: input.target?.slice(0, 300),
    decision: decision.allowed ? 'allowed' : 'denied',
    reason: decision.allowed ? `as ${decision.as}` : decision.message,
    workflowId: input.run?.workflowId,
    runId: input.run?.runId,
  });
  if (!decision.allowed) throw refused(decision);
  return { as: decision.as };
}

/**
 * Refuses with PERMISSION_DENIED / PLAN_REQUIRED, and a refusal is always audited. An allowed call is audited by
 * what it leads to: the workflow the caller starts next (with its run), or `audited` once a catalog change is made.
 */
export async function requireAccess(
  db: Db,
  caller: Caller,
  workspace: string,
  action: Action,
  options: { target?: string } = {},
): Promise<{ as: string }> {
  const decision = await decide(db, caller.operators, { actor: caller.actor, workspace, action });
  if (decision.allowed) return { as: decision.as };
  await recordAudit(db, {
    workspace,
    actor: caller.actor.slice(0, 200),
    action,
    target: clip(options.target),
    decision: 'denied',
    reason: decision.message,
  });
  throw refused(decision);
}

/**
 * A catalog change with no workflow behind it: decided, made and audited in one transaction, so a change that fails
 * is not recorded, a recorded one cannot go missing, and the decision reads the roles the change is made against.
 * A refusal commits only its audit row, then throws PERMISSION_DENIED / PLAN_REQUIRED.
 */
export async function audited<T>(
  db: Db,
  caller: Caller,
  workspace: string,
  action: Action,
  target: string,
  change: (tx: Queryable) => Promise<T>,
): Promise<T> {
  const entry = { workspace, actor: caller.actor.slice(0, 200), action, target: clip(target) };
  const outcome = await db.transaction(async (tx): Promise<{ done: true; result: T } | { done: false; refusal: Refusal }> => {
    const decision = await decide(tx, caller.operators, { actor: caller.actor, workspace, action });
    if (!decision.allowed) {
      await recordAudit(tx, { ...entry, decision: 'denied', reason: decision.message });
      return { done: false, refusal: decision };
    }
    const result = await change(tx);
    await recordAudit(tx, { ...entry, decision: 'allowed', reason: `as ${decision.as}` });
    return { done: true, result };
  });
  if (!outcome.done) throw refused(outcome.refusal);
  return outcome.result;
}

export type HostAction = 'host.refresh' | 'host.self-test';

/**
 * Host actions belong to the system scope: operators may do both; the host workers' service actor may only refresh
 * (announce) a host, never run work on one. Decided and audited like every other request.
 */
export async function authorizeHostAction(
  db: Db,
  who: { operators: readonly string[]; hostActor: string },
  input: { actor: string; hostId: string; action: HostAction; run?: RunRef },
): Promise<{ as: string }> {
  const as = who.operators.includes(input.actor)
    ? 'operator'
    : input.action === 'host.refresh' && input.actor === who.hostActor
      ? 'host worker'
      : undefined;
  await recordAudit(db, {
    workspace: SYSTEM_SCOPE,
    actor: input.actor.slice(0, 200),
    action: input.action,
    target: input.hostId.slice(0, 300),
    decision: as ? 'allowed' : 'denied',
    reason: as ? `as ${as}` : `${input.action} is for operators${input.action === 'host.refresh' ? ' and host workers' : ''}`,
    workflowId: input.run?.workflowId,
    runId: input.run?.runId,
  });
  if (!as)
    throw new SnapflowError({
      code: 'PERMISSION_DENIED',
      field: 'actor',
      message: `${input.actor.slice(0, 64)} may not ${input.action} host ${input.hostId.slice(0, 64)}: hosts belong to operators`,
      hint: 'ask an operator (SNAPFLOW_OPERATORS); host workers announce themselves as SNAPFLOW_HOST_ACTOR',
    });
  return { as };
}

/** NOT_FOUND (field `workspace`) unless the workspace is registered. */
export async function requireWorkspace(db: Pick<Queryable, 'select'>, workspace: string): Promise<void> {
  const [ws] = await db.select({ id: workspaces.id }).from(workspaces).where(eq(workspaces.id, workspace));
  if (!ws)
    throw new SnapflowError({
      code: 'NOT_FOUND',
      field: 'workspace',
      message: `no workspace ${workspace}`,
      hint: 'agents belong to a workspace; check the slug',
    });
}
