// Questions about workflow runs, asked of Temporal itself (the reconciler's source of truth).
import { WorkflowNotFoundError, type Client } from '@temporalio/client';

export interface RunDeps {
  client: Client;
}

export type RunStatus =
  'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TERMINATED' | 'CONTINUED_AS_NEW' | 'TIMED_OUT' | 'UNKNOWN' | 'NOT_FOUND';

export function createRunActivities(deps: RunDeps) {
  return {
    async describeRun(input: { workflowId: string; runId?: string }): Promise<{ status: RunStatus }> {
      try {
        const description = await deps.client.workflow.getHandle(input.workflowId, input.runId).describe();
        return { status: description.status.name as RunStatus };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return { status: 'NOT_FOUND' };
        throw err;
      }
    },
  };
}

export type RunActivities = ReturnType<typeof createRunActivities>;
