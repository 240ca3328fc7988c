import { patched, workflowInfo } from '@temporalio/workflow';
import { access, defaults } from './activities';
import type { DefaultState, SetDefaultRequest } from './contracts/setDefault';
import { withWorkspace } from './compat';

/** set-default and rollback: one compare-and-set of the (workspace, size, profile) pointer, with history. */
export async function setDefaultSnapshot(req: SetDefaultRequest): Promise<DefaultState> {
  req = withWorkspace(req);
  const { workflowId, runId } = workflowInfo();
  if (patched('authz-v1'))
    await access.authorize({
      actor: req.actor,
      workspace: req.workspace,
      action: 'golden.set-default',
      target: req.snapshotId,
      run: { workflowId, runId },
    });
  return defaults.setDefault({ ...req, workflowId });
}
