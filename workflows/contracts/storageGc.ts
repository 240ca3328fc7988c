// Storage garbage collection (workflows/storageGc.ts): request and result.
import type { ActorClaim } from '../../lib/actorClaim';
import type { StorageGcResult } from '../../activities/storageGc';

export interface StorageGcRequest {
  /** Without it nothing is removed: the result says what would be. */
  dryRun: boolean;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

export type { StorageGcResult };
