// Authorization against the catalog, as the first step of every workflow that changes something (and in the
// client for changes that are plain catalog writes). Each decision, allowed or denied, is an audit event.
import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { auditEvents, members, workspaces } from '../db/access';
import { snapshots } from '../db/schema';
import { decideAccess, type AccessDecision, type Action } from '../lib/authz';
import { SnapflowError, toNonRetryableFailure } from '../lib/errors';
import type { RunRef } from './catalog';

export interface Authorize {
  actor: string;
  scope: string;
  action: Action;
  /** What is acted on (snapshot name, sandbox id …), for the audit trail. */
  target?: string;
  run?: RunRef;
}

/** The table's answer for this actor, from the catalog's workspace (plan) and membership (role). */
export async function decide(db: Db, operators: readonly string[], input: Pick<Authorize, 'actor' | 'scope' | 'action'>): Promise<AccessDecision> {
  if (operators.includes(input.actor)) return { allowed: true, as: 'operator' };
  const [workspace] = await db.select().from(workspaces).where(eq(workspaces.id, input.scope));
  const [member] = workspace ? await db.select().from(members).where(and(eq(members.workspaceId, input.scope), eq(members.userId, input.actor))) : [];
  return decideAccess({ actor: input.actor, scope: input.scope, action: input.action, operators, workspace: workspace ?? null, role: member?.role ?? null });
}

export async function authorize(db: Db, operators: readonly string[], input: Authorize): Promise<{ as: string }> {
  const decision = await decide(db, operators, input);
  await db.insert(auditEvents).values({
    scope: input.scope,
    actor: input.actor.slice(0, 200),
    action: input.action,
    target: input.target?.slice(0, 300),
    decision: decision.allowed ? 'allowed' : 'denied',
    reason: decision.allowed ? `as ${decision.as}` : decision.message,
    workflowId: input.run?.workflowId,
    runId: input.run?.runId,
  });
  if (!decision.allowed) throw new SnapflowError({ code: decision.code, field: 'actor', message: decision.message, hint: decision.hint });
  return { as: decision.as };
}

export function createAuthzActivities(deps: { db: Db; operators: readonly string[] }) {
  return {
    /** For requests that name a snapshot by id: access is decided on the workspace the snapshot belongs to. */
    async authorizeOnSnapshot(input: Omit<Authorize, 'scope' | 'target'> & { snapshotId: string }): Promise<{ as: string }> {
      const [snapshot] = await deps.db.select({ scope: snapshots.scope, name: snapshots.name }).from(snapshots).where(eq(snapshots.id, input.snapshotId));
      if (!snapshot) throw toNonRetryableFailure(new SnapflowError({ code: 'NOT_FOUND', field: 'snapshot', message: `snapshot ${input.snapshotId} does not exist` }));
      try {
        return await authorize(deps.db, deps.operators, { ...input, scope: snapshot.scope, target: snapshot.name });
      } catch (err) {
        throw err instanceof SnapflowError ? toNonRetryableFailure(err) : err;
      }
    },

    async authorize(input: Authorize): Promise<{ as: string }> {
      try {
        return await authorize(deps.db, deps.operators, input);
      } catch (err) {
        throw err instanceof SnapflowError ? toNonRetryableFailure(err) : err;
      }
    },
  };
}

export type AuthzActivities = ReturnType<typeof createAuthzActivities>;
