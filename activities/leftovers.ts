// Sweep on host-worker start: temporary sandboxes (and user sandboxes) whose workflow is no longer running are
// leftovers of a crash or a terminated run (the compensation never ran) and are removed. Those of a still-running
// workflow stay: Temporal retries that workflow's next step here and it needs its sandbox.
import type Docker from 'dockerode';
import { CONTAINER_LABEL, WORKFLOW_LABEL } from '../lib/ids';

/** Answers whether a workflow id still has a running execution. */
export type IsRunning = (workflowId: string) => Promise<boolean>;

export async function sweepLeftovers(docker: Docker, isRunning: IsRunning): Promise<{ removed: string[]; kept: string[] }> {
  const temps = [
    ...(await docker.listContainers({ all: true, filters: { label: [`${CONTAINER_LABEL}=temp`] } })),
    ...(await docker.listContainers({ all: true, filters: { label: [`${CONTAINER_LABEL}=sandbox`] } })),
  ];
  const removed: string[] = [];
  const kept: string[] = [];
  for (const c of temps) {
    const workflowId = c.Labels[WORKFLOW_LABEL] ?? '';
    // No workflow id: a short check inside one activity, which died with the previous process.
    if (workflowId && (await isRunning(workflowId))) {
      kept.push(c.Id);
      continue;
    }
    await docker
      .getContainer(c.Id)
      .remove({ force: true, v: true })
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode !== 404 && err.statusCode !== 409) throw err;
      });
    removed.push(c.Id);
  }
  return { removed, kept };
}
