// Authorization against the catalog, as the first step of every workflow that changes something (and in the
// client for changes that are plain catalog writes). Each decision, allowed or denied, is an audit event.
// With an actor key configured, the actor must come with a claim signed for this run (lib/actorClaim.ts): a
// Temporal client without the key cannot name an actor. The run's id is the one Temporal gives this activity.
import { Context } from '@temporalio/activity';
import { authorizeActor, authorizeHostAction, type Authorize, type HostAction } from '../catalog/access';
import { once } from '../catalog/effects';
import type { RunRef } from '../catalog/snapshots';
import { snapshotOwner } from '../catalog/snapshots';
import type { Db } from '../db/client';
import { verifyClaim, type ActorClaim } from '../lib/actorClaim';
import { SnapflowError, type SnapflowErrorShape } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import { attemptKey, boundary } from './boundary';

export type { Authorize } from '../catalog/access';

/**
 * One decision per activity call: a retry gets the first attempt's decision (and its one audit event). A refusal
 * is an answer too, so it is recorded with its audit event and thrown once the transaction has committed.
 */
function decideOnce(db: Db, decide: (tx: Db) => Promise<{ as: string }>): Promise<{ as: string }> {
  return boundary(async () => {
    const outcome = await once<{ as: string } | { refused: SnapflowErrorShape }>(db, attemptKey(), async (tx) => {
      try {
        return { as: (await decide(tx)).as };
      } catch (err) {
        if (err instanceof SnapflowError) return { refused: err.toJSON() };
        throw err;
      }
    });
    if ('refused' in outcome) throw new SnapflowError(outcome.refused);
    return outcome;
  });
}

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
      return decideOnce(deps.db, async (tx) => {
        const snapshot = await snapshotOwner(tx, input.snapshotId);
        believe(input, snapshot.workspace);
        const { snapshotId: _id, ...rest } = strip(input);
        return authorizeActor(tx, deps.operators, { ...rest, workspace: snapshot.workspace, target: snapshot.name });
      });
    },

    async authorize(input: AuthorizeCall): Promise<{ as: string }> {
      return decideOnce(deps.db, async (tx) => {
        believe(input, input.workspace);
        return authorizeActor(tx, deps.operators, strip(input));
      });
    },

    /** refreshHost / hostSelfTest: operators, and the host workers' service actor for a refresh. */
    async authorizeHost(input: { actor: string; hostId: string; action: HostAction; run: RunRef } & Vouched): Promise<{ as: string }> {
      return decideOnce(deps.db, async (tx) => {
        believe(input, SYSTEM_SCOPE);
        return authorizeHostAction(tx, { operators: deps.operators, hostActor: deps.hostActor ?? 'host-worker' }, strip(input));
      });
    },
  };
}

export type AuthzActivities = ReturnType<typeof createAuthzActivities>;
