// Checking a workspace's GitHub connection (workflows/github.ts): request and result.
export type { ConnectionState } from '../../activities/connections';

export interface GithubConnectionRequest {
  workspace: string;
  /** Given on connect; omitted to re-validate (reconnect/validate) the stored installation. */
  installationId?: number;
  actor: string;
}
