import { workflowInfo } from '@temporalio/workflow';
import { defaults } from './activities';
import { authorizeRun } from './authorize';
import type { DefaultState, SetDefaultRequest } from './contracts/setDefault';
import { withWorkspace } from './compat';

/** set-default and rollback: one compare-and-set of the (workspace, size, profile) pointer, with history. */
export async function setDefaultSnapshot(req: SetDefaultRequest): Promise<DefaultState> {
  req = withWorkspace(req);
  await authorizeRun({
    claim: req.claim,
    actor: req.actor,
    workspace: req.workspace,
    action: 'golden.set-default',
    target: req.snapshotId,
  });
  return defaults.setDefault({ ...req, workflowId: workflowInfo().workflowId });
}
