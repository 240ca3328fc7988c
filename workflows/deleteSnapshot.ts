import { workflowInfo } from '@temporalio/workflow';
import { retirement } from './activities';
import type { DeleteSnapshotRequest, DeleteSnapshotResult } from './contracts/deleteSnapshot';
import { authorizeRun } from './authorize';

/** Refuses while anything uses the snapshot; else `deleting` → registry delete → `deleted` (tombstone). */
export async function deleteSnapshot(req: DeleteSnapshotRequest): Promise<DeleteSnapshotResult> {
  const { workflowId, runId } = workflowInfo();
  const run = { workflowId, runId };
  await authorizeRun({ claim: req.claim, actor: req.actor, action: 'snapshot.delete', snapshotId: req.snapshotId, run });
  const target = await retirement.beginDelete({ id: req.snapshotId, actor: req.actor, run });
  if (!target.alreadyDeleted) {
    if (target.storedRef) await retirement.deleteStoredImage({ storedRef: target.storedRef });
    await retirement.finishDelete({ id: req.snapshotId, actor: req.actor, run });
  }
  return { snapshotId: req.snapshotId, status: 'deleted' };
}
