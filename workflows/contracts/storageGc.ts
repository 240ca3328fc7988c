// Storage garbage collection (workflows/storageGc.ts): request and result.
import type { ActorClaim } from '../../lib/actorClaim';
import type { StorageCheck, StorageGcResult as Collected } from '../../activities/storageGc';

export interface StorageGcRequest {
  /** Without it nothing is removed: the result says what would be. */
  dryRun: boolean;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

/** What was (or would be) freed; after a real run, every live snapshot checked, and those left without a blob. */
export type StorageGcResult = Collected & { check?: StorageCheck };
