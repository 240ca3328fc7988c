// Sweep on host-worker start: temporary sandboxes (and user sandboxes) whose workflow is no longer running are
// leftovers of a crash or a terminated run (the compensation never ran) and are removed. Those of a still-running
// workflow stay: Temporal retries that workflow's next step here and it needs its sandbox.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { CONTAINER_LABEL, WORKFLOW_LABEL } from '../lib/ids';
import { machineFiles, readTail, stopQemu } from './vm/machine';

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

/**
 * KVM probes (`probe-<pid>` in a VM run directory) whose worker process is gone. A probe's QEMU is stopped by the
 * process that started it; one whose process died (a kill -9, a killed test run) runs on without it otherwise. A
 * probe of a live process is its own: left alone.
 */
export async function sweepDeadProbes(runRoots: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const root of new Set(runRoots)) {
    for (const name of existsSync(root) ? readdirSync(root) : []) {
      const owner = /^probe-(\d+)$/.exec(name)?.[1];
      const dir = join(root, name);
      // QEMU's stderr log marks a probe's directory (a host's run directory in the default one has none).
      if (!owner || processAlive(Number(owner)) || !existsSync(machineFiles(dir).log)) continue;
      const pid = Number(readTail(machineFiles(dir).pidFile, 32)?.trim());
      if (pid > 0) await stopQemu(pid, dir, 0);
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
