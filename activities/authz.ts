// Authorization against the catalog, as the first step of every workflow that changes something (and in the
// client for changes that are plain catalog writes). Each decision, allowed or denied, is an audit event.
import { authorizeActor, authorizeHostAction, type Authorize, type HostAction } from '../catalog/access';
import type { RunRef } from '../catalog/snapshots';
import { snapshotOwner } from '../catalog/snapshots';
import type { Db } from '../db/client';
import { boundary } from './boundary';

export type { Authorize } from '../catalog/access';

export function createAuthzActivities(deps: { db: Db; operators: readonly string[]; hostActor?: string }) {
  return {
    /** For requests that name a snapshot by id: access is decided on the workspace the snapshot belongs to. */
    async authorizeOnSnapshot(input: Omit<Authorize, 'workspace' | 'target'> & { snapshotId: string }): Promise<{ as: string }> {
      return boundary(async () => {
        const snapshot = await snapshotOwner(deps.db, input.snapshotId);
        return authorizeActor(deps.db, deps.operators, { ...input, workspace: snapshot.workspace, target: snapshot.name });
      });
    },

    async authorize(input: Authorize): Promise<{ as: string }> {
      return boundary(() => authorizeActor(deps.db, deps.operators, input));
    },

    /** refreshHost / hostSelfTest: operators, and the host workers' service actor for a refresh. */
    async authorizeHost(input: { actor: string; hostId: string; action: HostAction; run: RunRef }): Promise<{ as: string }> {
      return boundary(() => authorizeHostAction(deps.db, { operators: deps.operators, hostActor: deps.hostActor ?? 'host-worker' }, input));
    },
  };
}

export type AuthzActivities = ReturnType<typeof createAuthzActivities>;
