import { connections } from './activities';
import type { ConnectionState } from '../activities/connections';

export interface GithubConnectionRequest {
  scope: string;
  /** Given on connect; omitted to re-validate (reconnect/validate) the stored installation. */
  installationId?: number;
}

/** connect / reconnect / validate: asks GitHub through the App and records the verdict in the catalog. */
export async function validateGithubConnection(req: GithubConnectionRequest): Promise<ConnectionState> {
  return connections.validateGithubConnection(req);
}
