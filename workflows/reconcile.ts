import { ParentClosePolicy, WorkflowIdReusePolicy, startChild } from '@temporalio/workflow';
import { taskQueues, workflowIds } from '../lib/ids';
import { catalog, runs } from './activities';
import type { ReconcileResult } from './contracts/reconcile';
import type { deleteSnapshot } from './deleteSnapshot';
import { since } from './legacy';

/**
 * A `deleting` snapshot whose delete run is gone (terminated, timed out, lost) is deleted again, never put back: the
 * stored image may already be gone, and every delete step is idempotent. The new run has the same workflow id (so a
 * delete the user repeats joins it), acts as whoever asked for the delete, and outlives this run.
 */
async function retryInterruptedDeletes(): Promise<string[]> {
  const retried: string[] = [];
  for (const row of await catalog.listInterruptedDeletes({ olderThanSeconds: 60 })) {
    const workflowId = workflowIds.snapshotDelete(row.id);
    const { status } = await runs.describeRun({ workflowId });
    if (status === 'RUNNING') continue;
    try {
      await startChild<typeof deleteSnapshot>('deleteSnapshot', {
        workflowId,
        taskQueue: taskQueues.control,
        args: [{ snapshotId: row.id, actor: row.actor }],
        workflowExecutionTimeout: '10 minutes',
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      });
      retried.push(row.id);
    } catch {
      // Started meanwhile by someone else (the user repeating the delete): that run finishes it.
    }
  }
  return retried;
}

/**
 * Scheduled every few minutes: a snapshot row that is still `pending` while its run has ended (terminated,
 * timed out, lost) is failed with WORKFLOW_GONE, so nothing stays pending without a live run behind it; one stuck
 * in `deleting` has its delete started again.
 */
export async function reconcileSnapshots(): Promise<ReconcileResult> {
  const pending = await catalog.listPendingSnapshots({ olderThanSeconds: 60 });
  const failed: string[] = [];
  for (const row of pending) {
    const { status } = row.workflowId
      ? await runs.describeRun({ workflowId: row.workflowId, runId: row.runId ?? undefined })
      : { status: 'NOT_FOUND' as const };
    if (status === 'RUNNING') continue;
    await catalog.markSnapshotFailed({
      id: row.id,
      code: 'WORKFLOW_GONE',
      message: `its workflow run ended (${status.toLowerCase().replace(/_/g, ' ')}) before the snapshot was finished`,
    });
    failed.push(row.id);
  }
  if (since.reconcileDeleting()) return { checked: pending.length, failed, retriedDeletes: await retryInterruptedDeletes() };
  return { checked: pending.length, failed };
}
