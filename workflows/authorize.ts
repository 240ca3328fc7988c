import { workflowInfo } from '@temporalio/workflow';
import type { ActorClaim } from '../lib/actorClaim';
import type { AuthorizeCall } from '../activities/authz';
import { access } from './activities';
import { since } from './legacy';

/**
 * What the authorization step needs to believe the actor: the request's signed claim, and the parent run when there
 * is one (Temporal sets it, no caller can; a parent is our own workflow, which checked its caller before it started
 * this run with that actor).
 */
export function vouch(claim: ActorClaim | undefined): Pick<AuthorizeCall, 'claim' | 'parentWorkflowId'> {
  return { claim, parentWorkflowId: workflowInfo().parent?.workflowId };
}

/**
 * Who asks must be allowed, decided and audited with this run (`run`: the caller's own record of it). The one way
 * workflows call the authorization activity.
 */
export async function authorize(input: Omit<AuthorizeCall, 'run' | 'parentWorkflowId'> & { run?: AuthorizeCall['run'] }): Promise<void> {
  const { workflowId, runId } = workflowInfo();
  await access.authorize({ ...input, ...vouch(input.claim), run: input.run ?? { workflowId, runId } });
}

/**
 * A workflow's first step: who asks must be allowed, decided and audited with this run. Runs recorded before
 * authorization existed replay without it (`authz-v1`).
 */
export async function authorizeRun(input: Omit<AuthorizeCall, 'run' | 'parentWorkflowId'>): Promise<void> {
  if (!since.authorization()) return;
  await authorize(input);
}
