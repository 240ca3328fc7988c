// Refreshing what the catalog knows about a host (workflows/hosts.ts): request and result.
export type { HostFacts } from '../../activities/docker';

export interface RefreshHostRequest {
  hostId: string;
  /** Who asks: an operator, or the host workers' service actor (SNAPFLOW_HOST_ACTOR). */
  actor?: string;
}
