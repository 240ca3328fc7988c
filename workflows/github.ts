import { patched, workflowInfo } from '@temporalio/workflow';
import { access, connections } from './activities';
import type { ConnectionState, GithubConnectionRequest } from './contracts/github';
import { withWorkspace } from './compat';

/** connect / reconnect / validate: asks GitHub through the App and records the verdict in the catalog. */
export async function validateGithubConnection(req: GithubConnectionRequest): Promise<ConnectionState> {
  req = withWorkspace(req);
  const { workflowId, runId } = workflowInfo();
  if (patched('authz-v1'))
    await access.authorize({
      actor: req.actor,
      workspace: req.workspace,
      action: 'github.connect',
      target: req.installationId === undefined ? 'revalidate' : `installation ${req.installationId}`,
      run: { workflowId, runId },
    });
  return connections.validateGithubConnection({ workspace: req.workspace, installationId: req.installationId });
}
