import { patched, workflowInfo } from '@temporalio/workflow';
import type { DefaultState } from '../activities/defaults';
import { access, defaults } from './activities';

export interface SetDefaultRequest {
  scope: string;
  size: string;
  profileKey: string;
  snapshotId: string;
  /** Compare-and-set: the pointer version the caller saw (0 = none). */
  expectedVersion: number;
  actor: string;
  reason?: string;
}

/** set-default and rollback: one compare-and-set of the (scope, size, profile) pointer, with history. */
export async function setDefaultSnapshot(req: SetDefaultRequest): Promise<DefaultState> {
  const { workflowId, runId } = workflowInfo();
  if (patched('authz-v1')) await access.authorize({ actor: req.actor, scope: req.scope, action: 'golden.set-default', target: req.snapshotId, run: { workflowId, runId } });
  return defaults.setDefault({ ...req, workflowId });
}
