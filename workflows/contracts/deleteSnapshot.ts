// Deleting a snapshot (workflows/deleteSnapshot.ts): request and result.

export interface DeleteSnapshotRequest {
  snapshotId: string;
  actor: string;
}

export interface DeleteSnapshotResult {
  snapshotId: string;
  status: 'deleted';
}
