// Pinning a golden snapshot on an issue, or unpinning it (workflows/issuePins.ts): request and result.
import type { ActorClaim } from '../../lib/actorClaim';

export interface IssuePinRequest {
  workspace: string;
  /** The issue's external key, e.g. ENG-42. */
  issue: string;
  /** The golden snapshot to pin, by name; absent: unpin what the issue has. */
  snapshot?: string;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

export interface IssuePinResult {
  issueId?: string;
  /** The pinned snapshot; absent after an unpin. */
  snapshotId?: string;
}
