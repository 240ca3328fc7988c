// Refreshing what the catalog knows about a host, and draining or undraining it (workflows/hosts.ts): requests and results.
import type { ActorClaim } from '../../lib/actorClaim';
export type { HostFacts } from '../../activities/docker';

export interface RefreshHostRequest {
  hostId: string;
  /** Who asks: an operator, or the host workers' service actor (SNAPFLOW_HOST_ACTOR). */
  actor?: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

/** Whether new work is placed on a host: `draining` takes none (what runs there finishes), `online` takes it again. */
export interface HostPlacementRequest {
  hostId: string;
  status: 'online' | 'draining';
  /** Who asks: an operator. */
  actor?: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

export interface HostPlacementResult {
  hostId: string;
  status: 'online' | 'draining';
}
