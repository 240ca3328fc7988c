import { connections } from './activities';
import { authorizeRun } from './authorize';
import type { ConnectionState, GithubConnectionRequest } from './contracts/github';
import { withWorkspace } from './compat';

/** connect / reconnect / validate: asks GitHub through the App and records the verdict in the catalog. */
export async function validateGithubConnection(req: GithubConnectionRequest): Promise<ConnectionState> {
  req = withWorkspace(req);
  const target = req.installationId === undefined ? 'revalidate' : `installation ${req.installationId}`;
  await authorizeRun({ claim: req.claim, actor: req.actor, workspace: req.workspace, action: 'github.connect', target });
  return connections.validateGithubConnection({ workspace: req.workspace, installationId: req.installationId });
}
