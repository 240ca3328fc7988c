// The sandbox runtime as runs recorded before the backend seam call it: Docker and machine activities by their
// earlier names (createTempSandbox, awaitEntrypoint, startVmSandbox, execInSandbox, …), the handle as text. Kept
// verbatim so their histories replay; goes with `since.backends` (workflows/legacy.ts).
import { CancellationScope } from '@temporalio/workflow';
import type { SandboxHandle } from '../activities/sandbox/backend';
import { describeFailure } from '../lib/errors';
import { handleText, parseHandleText } from '../lib/sandboxHandle';
import { hostActivities, hostJobActivities, hostVmActivities } from './activities';
import { since } from './legacy';
import { ENTRYPOINT_SETTLE_SECONDS, type RuntimeContext, type RuntimeStart, type SandboxRuntime } from './sandboxRuntime';

/** `machines`: a `vm` sandbox runs as a QEMU machine; without it (runs before machines), as a container. */
export function legacyRuntime(ctx: RuntimeContext & { machines: boolean }): SandboxRuntime {
  const { req, claim, machines } = ctx;
  return {
    start: (p) => (machines ? startMachine(ctx, p) : startContainer(ctx, p)),

    exec(hostId, handle, job, timeoutMs, log) {
      return hostJobActivities(hostId, timeoutMs).execInSandbox({
        ...claim,
        containerId: handleText(handle),
        command: job.command,
        env: job.env,
        workdir: job.workdir,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(log ? { log } : {}),
      });
    },

    async saveSession(hostId, handle: SandboxHandle, to) {
      const containerId = handleText(handle);
      const { repository, tag } = to;
      if (machines) {
        // The machine quits with the save when it is not kept running: no resume only to stop it.
        const saved = await hostVmActivities(hostId, req.size).snapshotVmSandbox({
          ...claim,
          containerId,
          repository,
          tag,
          keepAlive: to.keepRunning,
          ...(to.requireStorage ? { requireStorage: true } : {}),
        });
        return { localRef: saved.localRef, storedRef: saved.storedRef, digest: saved.digest, machineProfile: saved.machineProfile };
      }
      const docker = hostActivities(hostId);
      const committed = await docker.commitSandbox({ ...claim, containerId, repository, tag });
      // Without snapshot storage the session lives only in this host's cache (committed as snapflow.local/…).
      const stored = committed.ref.startsWith('snapflow.local/') ? undefined : await docker.pushImage({ ref: committed.ref });
      const storedRef = stored ? `${committed.ref.slice(0, committed.ref.lastIndexOf(':'))}@${stored.digest}` : null;
      return { localRef: committed.ref, storedRef, digest: stored?.digest ?? null };
    },

    stop(hostId, handle) {
      return hostActivities(hostId).removeSandbox({ ...claim, containerId: handleText(handle) });
    },
  };
}

/** A `vm` sandbox's machine, booted or restored by the activities' earlier names. */
async function startMachine(
  { req, workflowId }: RuntimeContext,
  { decision, hostId, generation, pullOnMiss, cache }: RuntimeStart,
): Promise<SandboxHandle> {
  const vm = hostVmActivities(hostId, req.size);
  const key = `${req.sandboxId}-${generation}`;
  if (decision.source !== 'base' && decision.machineProfile)
    return parseHandleText(
      (await vm.restoreVmSandbox({ key, stateRef: decision.imageRef, workspace: req.workspace, workflowId })).containerId,
    );
  const entrypoint = decision.base?.entrypoint;
  const boot = () =>
    vm.startVmSandbox({
      key,
      image: decision.imageRef,
      size: req.size,
      workflowId,
      entrypoint,
      settleSeconds: ENTRYPOINT_SETTLE_SECONDS,
    });
  const box = await boot().catch(async (err: unknown) => {
    if (!pullOnMiss || describeFailure(err).code !== 'IMAGE_NOT_FOUND') throw err;
    await cache();
    return boot();
  });
  return parseHandleText(box.containerId);
}

/** A container, created by its earlier name; an image snapshot base's entrypoint awaited (once that step existed). */
async function startContainer(
  { req, claim, workflowId }: RuntimeContext,
  { decision, hostId, generation, pullOnMiss, cache }: RuntimeStart,
): Promise<SandboxHandle> {
  const base = decision.base;
  const docker = hostActivities(hostId);
  const create = () =>
    docker.createTempSandbox({
      key: `sandbox-${req.sandboxId}-${generation}`,
      image: decision.imageRef,
      size: req.size,
      workflowId,
      role: 'sandbox',
      entrypoint: base?.entrypoint,
      ...claim,
    });
  const box = await create().catch(async (err: unknown) => {
    if (!pullOnMiss || describeFailure(err).code !== 'IMAGE_NOT_FOUND') throw err;
    await cache();
    return create();
  });
  if (base && since.entrypoint()) {
    try {
      await docker.awaitEntrypoint({
        ...claim,
        containerId: box.containerId,
        entrypoint: base.entrypoint,
        settleSeconds: ENTRYPOINT_SETTLE_SECONDS,
        size: req.size,
      });
    } catch (err) {
      await CancellationScope.nonCancellable(() => docker.removeSandbox({ ...claim, containerId: box.containerId }));
      throw err;
    }
  }
  return parseHandleText(box.containerId);
}
