// The client's side of authorization: the same table (lib/authz.ts) the workflows apply, checked before a
// request is sent so a refusal is immediate; catalog-only changes are decided and audited here.
import type { Client } from '@temporalio/client';
import type { Db, Queryable } from '../db/client';
import { decide } from '../activities/authz';
import { auditEvents } from '../db/access';
import type { Action } from '../lib/authz';
import type { Config } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { searchAttributes } from './searchAttributes';

const clip = (target: string | undefined): string | undefined => target?.slice(0, 300);

/**
 * Refuses with PERMISSION_DENIED / PLAN_REQUIRED, and a refusal is always audited. An allowed call is audited by
 * what it leads to: the workflow the caller starts next (with its run), or `audited` once a catalog change is made.
 */
export async function requireAccess(db: Db, config: Config, scope: string, action: Action, options: { target?: string } = {}): Promise<{ as: string }> {
  const decision = await decide(db, config.operators, { actor: config.actor, scope, action });
  if (decision.allowed) return { as: decision.as };
  await db.insert(auditEvents).values({ scope, actor: config.actor.slice(0, 200), action, target: clip(options.target), decision: 'denied', reason: decision.message });
  throw new SnapflowError({ code: decision.code, field: 'actor', message: decision.message, hint: decision.hint });
}

/**
 * Reading a run (its result, its progress) is reading its workspace: the run's WorkspaceId search attribute says
 * which. A run without one, or none at all, is NOT_FOUND, so nothing about other workspaces' runs leaks.
 */
export async function requireRunAccess(temporal: Client, db: Db, config: Config, workflowId: string): Promise<void> {
  const scope = await temporal.workflow
    .getHandle(workflowId)
    .describe()
    .then((d) => d.typedSearchAttributes.get(searchAttributes.WorkspaceId), () => undefined);
  if (!scope) throw new SnapflowError({ code: 'NOT_FOUND', field: 'workflowId', message: `no run ${workflowId.slice(0, 200)}`, hint: 'use the workflow id the create or build returned' });
  await requireAccess(db, config, scope, 'snapshot.read');
}

/**
 * A catalog change with no workflow behind it: decided first, then made and audited in one transaction, so a change
 * that fails is not recorded and a recorded one cannot go missing.
 */
export async function audited<T>(db: Db, config: Config, scope: string, action: Action, target: string, change: (tx: Queryable) => Promise<T>): Promise<T> {
  const { as } = await requireAccess(db, config, scope, action, { target });
  return db.transaction(async (tx) => {
    const result = await change(tx);
    await tx.insert(auditEvents).values({ scope, actor: config.actor.slice(0, 200), action, target: clip(target), decision: 'allowed', reason: `as ${as}` });
    return result;
  });
}
