import { catalog, runs } from './activities';
import type { ReconcileResult } from './contracts/reconcile';

/**
 * Scheduled every few minutes: a snapshot row that is still `pending` while its run has ended (terminated,
 * timed out, lost) is failed with WORKFLOW_GONE, so nothing stays pending without a live run behind it.
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
  return { checked: pending.length, failed };
}
