// Authorization against the catalog, as the first step of every workflow that changes something (and in the
// client for changes that are plain catalog writes). Each decision, allowed or denied, is an audit event.
import { authorizeActor, authorizeHostAction, type Authorize, type HostAction } from '../catalog/access';
import { once } from '../catalog/effects';
import type { RunRef } from '../catalog/snapshots';
import { snapshotOwner } from '../catalog/snapshots';
import type { Db } from '../db/client';
import { SnapflowError, type SnapflowErrorShape } from '../lib/errors';
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

export function createAuthzActivities(deps: { db: Db; operators: readonly string[]; hostActor?: string }) {
  return {
    /** For requests that name a snapshot by id: access is decided on the workspace the snapshot belongs to. */
    async authorizeOnSnapshot(input: Omit<Authorize, 'workspace' | 'target'> & { snapshotId: string }): Promise<{ as: string }> {
      return decideOnce(deps.db, async (tx) => {
        const snapshot = await snapshotOwner(tx, input.snapshotId);
        return authorizeActor(tx, deps.operators, { ...input, workspace: snapshot.workspace, target: snapshot.name });
      });
    },

    async authorize(input: Authorize): Promise<{ as: string }> {
      return decideOnce(deps.db, (tx) => authorizeActor(tx, deps.operators, input));
    },

    /** refreshHost / hostSelfTest: operators, and the host workers' service actor for a refresh. */
    async authorizeHost(input: { actor: string; hostId: string; action: HostAction; run: RunRef }): Promise<{ as: string }> {
      return decideOnce(deps.db, (tx) =>
        authorizeHostAction(tx, { operators: deps.operators, hostActor: deps.hostActor ?? 'host-worker' }, input),
      );
    },
  };
}

export type AuthzActivities = ReturnType<typeof createAuthzActivities>;
