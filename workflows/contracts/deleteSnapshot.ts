// Deleting a snapshot (workflows/deleteSnapshot.ts): request and result.
import type { ActorClaim } from '../../lib/actorClaim';

export interface DeleteSnapshotRequest {
  snapshotId: string;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

export interface DeleteSnapshotResult {
  snapshotId: string;
  status: 'deleted';
}
