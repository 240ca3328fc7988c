import { CancellationScope, workflowInfo } from '@temporalio/workflow';
import { BASE_IMAGE_REF } from '../lib/presets';
import { hostActivities } from './activities';
import type { HostSelfTestRequest, HostSelfTestResult } from './contracts/hostSelfTest';
import { reject } from './failures';
import { authorize } from './authorize';
import { since } from './legacy';

/** Proves one host end to end: temp sandbox → exec → commit → (push) → remove, on the real engine. */
export async function hostSelfTest(req: HostSelfTestRequest): Promise<HostSelfTestResult> {
  const docker = hostActivities(req.hostId);
  const { workflowId } = workflowInfo();
  if (since.hostAuthorization()) {
    if (!req.actor) reject('PERMISSION_DENIED', 'this self-test names no actor', { field: 'actor', hint: 'pass the actor' });
    await authorize({ claim: req.claim, actor: req.actor, hostId: req.hostId, action: 'host.self-test' });
  }
  const sandbox = await docker.createTempSandbox({ key: workflowId, image: BASE_IMAGE_REF, size: 'small', workflowId });
  let localRef: string | undefined;
  try {
    const run = await docker.execInSandbox({
      containerId: sandbox.containerId,
      command: ['sh', '-c', 'echo "self-test $(uname -s)" > /workspace/self-test.txt && cat /workspace/self-test.txt'],
    });
    if (run.exitCode !== 0) {
      reject('EXEC_FAILED', `self-test command exited ${run.exitCode}: ${run.stderr.trim()}`);
    }
    // One fixed tag: repeated self-tests overwrite instead of filling storage.
    const image = await docker.commitSandbox({ containerId: sandbox.containerId, repository: 'snapflow/self-test', tag: 'latest' });
    localRef = image.ref;
    const stored = req.push ? await docker.pushImage({ ref: image.ref }) : undefined;
    return { hostId: req.hostId, output: run.stdout.trim(), imageId: image.imageId, stored };
  } finally {
    await CancellationScope.nonCancellable(async () => {
      await docker.removeSandbox({ containerId: sandbox.containerId });
      if (localRef) await docker.removeLocalImage({ ref: localRef });
    });
  }
}
