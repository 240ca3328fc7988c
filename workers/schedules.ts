// Schedules the control plane owns, created idempotently when a control worker starts.
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { scheduleIds, taskQueues } from '../lib/ids';

/** Reconciliation every 5 minutes; one at a time (SKIP), a missed run is simply the next one. */
export async function ensureReconcileSchedule(client: Client): Promise<void> {
  try {
    await client.schedule.create({
      scheduleId: scheduleIds.reconcile,
      spec: { intervals: [{ every: '5 minutes' }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'reconcileSnapshots',
        taskQueue: taskQueues.control,
        args: [],
        workflowExecutionTimeout: '5 minutes',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '10 minutes' },
      state: { note: 'fails pending snapshots whose run has ended (snapflow control worker)' },
    });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
}
