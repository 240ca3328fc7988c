// set-default and rollback (workflows/setDefault.ts): request and result.
export type { DefaultState } from '../../activities/defaults';

export interface SetDefaultRequest {
  workspace: string;
  size: string;
  profileKey: string;
  snapshotId: string;
  /** Compare-and-set: the pointer version the caller saw (0 = none). */
  expectedVersion: number;
  actor: string;
  reason?: string;
}
