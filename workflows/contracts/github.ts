// Checking a workspace's GitHub connection (workflows/github.ts): request and result.
import type { ActorClaim } from '../../lib/actorClaim';
export type { ConnectionState } from '../../activities/connections';

export interface GithubConnectionRequest {
  workspace: string;
  /** Given on connect; omitted to re-validate (reconnect/validate) the stored installation. */
  installationId?: number;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}
