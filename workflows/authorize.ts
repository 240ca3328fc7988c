import { patched, workflowInfo } from '@temporalio/workflow';
import type { Authorize } from '../catalog/access';
import { access } from './activities';

/**
 * A workflow's first step: who asks must be allowed, decided and audited with this run. Runs recorded before
 * authorization existed replay without it (`authz-v1`).
 */
export async function authorizeRun(input: Omit<Authorize, 'run'>): Promise<void> {
  if (!patched('authz-v1')) return;
  const { workflowId, runId } = workflowInfo();
  await access.authorize({ ...input, run: { workflowId, runId } });
}
