// Authorization against the catalog, as the first step of every workflow that changes something (and in the
// client for changes that are plain catalog writes). Each decision, allowed or denied, is an audit event.
// With an actor key configured, the actor must come with a claim signed for this run (lib/actorClaim.ts): a
// Temporal client without the key cannot name an actor. The run's id is the one Temporal gives this activity.
import { Context } from '@temporalio/activity';
import { authorizeActor, authorizeHostAction, type Authorize, type HostAction } from '../catalog/access';
import type { RunRef } from '../catalog/snapshots';
import { snapshotOwner } from '../catalog/snapshots';
import type { Db } from '../db/client';
import { verifyClaim, type ActorClaim } from '../lib/actorClaim';
import { SYSTEM_SCOPE } from '../lib/ids';
import { boundary } from './boundary';

export type { Authorize } from '../catalog/access';

/** What a workflow sends: the request, and what vouches for its actor (workflows/authorize.ts `vouch`). */
export interface Vouched {
  claim?: ActorClaim;
  /** Set from Temporal's own record of the parent run (workflowInfo().parent). */
  parentWorkflowId?: string;
}
export type AuthorizeCall = Authorize & Vouched;

export function createAuthzActivities(deps: { db: Db; operators: readonly string[]; hostActor?: string; actorKey?: Buffer }) {
  /** The run this activity belongs to, as Temporal says; outside an activity (a test), the one the request names. */
  const thisRun = (run: RunRef | undefined): string => {
    try {
      return Context.current().info.workflowExecution?.workflowId ?? run?.workflowId ?? '';
    } catch {
      return run?.workflowId ?? '';
    }
  };
  const believe = (input: Vouched & { actor: string; run?: RunRef }, workspace: string): void => {
    if (!deps.actorKey) return; // no key configured (a dev stack): the actor is taken as named, and doctor says so
    verifyClaim(deps.actorKey, input.claim, {
      actor: input.actor,
      workspace,
      workflowId: thisRun(input.run),
      parentWorkflowId: input.parentWorkflowId,
    });
  };
  const strip = <T extends Vouched>(input: T): Omit<T, keyof Vouched> => {
    const { claim: _claim, parentWorkflowId: _parent, ...rest } = input;
    return rest;
  };

  return {
    /** For requests that name a snapshot by id: access is decided on the workspace the snapshot belongs to. */
    async authorizeOnSnapshot(input: Omit<Authorize, 'workspace' | 'target'> & Vouched & { snapshotId: string }): Promise<{ as: string }> {
      return boundary(async () => {
        const snapshot = await snapshotOwner(deps.db, input.snapshotId);
        believe(input, snapshot.workspace);
        const { snapshotId: _id, ...rest } = strip(input);
        return authorizeActor(deps.db, deps.operators, { ...rest, workspace: snapshot.workspace, target: snapshot.name });
      });
    },

    async authorize(input: AuthorizeCall): Promise<{ as: string }> {
      return boundary(async () => {
        believe(input, input.workspace);
        return authorizeActor(deps.db, deps.operators, strip(input));
      });
    },

    /** refreshHost / hostSelfTest: operators, and the host workers' service actor for a refresh. */
    async authorizeHost(input: { actor: string; hostId: string; action: HostAction; run: RunRef } & Vouched): Promise<{ as: string }> {
      return boundary(async () => {
        believe(input, SYSTEM_SCOPE);
        return authorizeHostAction(deps.db, { operators: deps.operators, hostActor: deps.hostActor ?? 'host-worker' }, strip(input));
      });
    },
  };
}

export type AuthzActivities = ReturnType<typeof createAuthzActivities>;
