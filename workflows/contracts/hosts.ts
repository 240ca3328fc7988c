// Refreshing what the catalog knows about a host (workflows/hosts.ts): request and result.
import type { ActorClaim } from '../../lib/actorClaim';
export type { HostFacts } from '../../activities/docker';

export interface RefreshHostRequest {
  hostId: string;
  /** Who asks: an operator, or the host workers' service actor (SNAPFLOW_HOST_ACTOR). */
  actor?: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}
