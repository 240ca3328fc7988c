import { workflowInfo } from '@temporalio/workflow';
import type { ActorClaim } from '../lib/actorClaim';
import type { Action } from '../lib/authz';
import type { AuthorizeCall } from '../activities/authz';
import type { HostAction } from '../catalog/access';
import type { RunRef } from '../catalog/snapshots';
import { access } from './activities';
import { since } from './legacy';

/** Who asks: the actor, its signed claim (lib/actorClaim.ts), and the caller's own record of this run when it has one. */
interface Asker {
  actor: string;
  claim?: ActorClaim;
  run?: RunRef;
}

/**
 * What is asked for, by the kind of thing it acts on: something of a workspace (`target` names it for the audit), a
 * snapshot by id (decided on the workspace the snapshot belongs to), or a host (the system's, for operators).
 */
export type AuthorizeRequest = Asker &
  (
    { workspace: string; action: Action; target?: string } | { snapshotId: string; action: Action } | { hostId: string; action: HostAction }
  );

/**
 * What the authorization step needs to believe the actor: the request's signed claim, and the parent run when there
 * is one (Temporal sets it, no caller can; a parent is our own workflow, which checked its caller before it started
 * this run with that actor).
 */
function vouch(claim: ActorClaim | undefined): Pick<AuthorizeCall, 'claim' | 'parentWorkflowId'> {
  return { claim, parentWorkflowId: workflowInfo().parent?.workflowId };
}

/**
 * Who asks must be allowed, decided and audited with this run. The one way workflows call the authorization
 * activities: each kind of subject has its own (their names are in recorded histories).
 */
export async function authorize(input: AuthorizeRequest): Promise<void> {
  const { workflowId, runId } = workflowInfo();
  const asked = { actor: input.actor, ...vouch(input.claim), run: input.run ?? { workflowId, runId } };
  if ('snapshotId' in input) await access.authorizeOnSnapshot({ ...asked, action: input.action, snapshotId: input.snapshotId });
  else if ('hostId' in input) await access.authorizeHost({ ...asked, action: input.action, hostId: input.hostId });
  else await access.authorize({ ...asked, workspace: input.workspace, action: input.action, target: input.target });
}

/**
 * A workflow's first step: who asks must be allowed, decided and audited with this run. Runs recorded before
 * authorization existed replay without it (`authz-v1`).
 */
export async function authorizeRun(input: AuthorizeRequest): Promise<void> {
  if (!since.authorization()) return;
  await authorize(input);
}
