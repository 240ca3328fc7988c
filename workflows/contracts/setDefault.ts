// set-default and rollback (workflows/setDefault.ts): request and result.
import type { ActorClaim } from '../../lib/actorClaim';
export type { DefaultState } from '../../activities/defaults';

export interface SetDefaultRequest {
  workspace: string;
  size: string;
  profileKey: string;
  snapshotId: string;
  /** Compare-and-set: the pointer version the caller saw (0 = none). */
  expectedVersion: number;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
  reason?: string;
}
