// A host's end-to-end self-test (workflows/hostSelfTest.ts): request and result.
import type { ActorClaim } from '../../lib/actorClaim';

export interface HostSelfTestRequest {
  hostId: string;
  /** Also upload the committed image to snapshot storage. */
  push: boolean;
  /** Who asks: operators only. */
  actor?: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

export interface HostSelfTestResult {
  hostId: string;
  output: string;
  imageId: string;
  stored?: { ref: string; digest: string };
}
