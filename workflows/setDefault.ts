import { workflowInfo } from '@temporalio/workflow';
import type { DefaultState } from '../activities/defaults';
import { defaults } from './activities';

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
  return defaults.setDefault({ ...req, workflowId: workflowInfo().workflowId });
}
