import { patched, workflowInfo } from '@temporalio/workflow';
import { access, connections } from './activities';
import type { ConnectionState, GithubConnectionRequest } from './contracts/github';

/** connect / reconnect / validate: asks GitHub through the App and records the verdict in the catalog. */
export async function validateGithubConnection(req: GithubConnectionRequest): Promise<ConnectionState> {
  const { workflowId, runId } = workflowInfo();
  if (patched('authz-v1')) await access.authorize({ actor: req.actor, scope: req.scope, action: 'github.connect', target: req.installationId === undefined ? 'revalidate' : `installation ${req.installationId}`, run: { workflowId, runId } });
  return connections.validateGithubConnection({ scope: req.scope, installationId: req.installationId });
}
