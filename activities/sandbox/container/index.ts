// The `container` sandbox backend: a sandbox is a Docker container on this host's engine (activities/docker.ts).
// Its session is a committed image; it has no saved machine to restore.
import { fail } from '../../boundary';
import { LOCAL_REGISTRY, type DockerActivities } from '../../docker';
import { requireBackend, type SandboxBackend, type SandboxHandle } from '../backend';

export interface ContainerBackendDeps {
  docker: DockerActivities;
}

export function createContainerBackend(deps: ContainerBackendDeps): SandboxBackend {
  const { docker } = deps;
  const handle = (id: string): SandboxHandle => ({ backend: 'container', id });
  return {
    async boot(input) {
      const claim = { sandboxId: input.sandboxId, workspace: input.workspace };
      // The same name on a retry: createTempSandbox finds the container the first attempt made.
      const box = await docker.createTempSandbox({
        key: `sandbox-${input.key}`,
        image: input.image,
        size: input.size,
        workflowId: input.workflowId,
        role: 'sandbox',
        entrypoint: input.entrypoint,
        ...claim,
      });
      if (!input.entrypoint) return handle(box.containerId);
      try {
        await docker.awaitEntrypoint({
          ...claim,
          containerId: box.containerId,
          entrypoint: input.entrypoint,
          settleSeconds: input.settleSeconds ?? 2,
          size: input.size,
        });
      } catch (err) {
        await docker.removeSandbox({ ...claim, containerId: box.containerId }).catch(() => undefined);
        throw err;
      }
      return handle(box.containerId);
    },

    restore(input) {
      return fail(
        'SANDBOX_CLASS_UNSUPPORTED',
        `a container sandbox has no saved machine to continue (asked for ${input.stateRef.slice(0, 200)})`,
        'create the sandbox with --class vm',
      );
    },

    exec(input) {
      const { handle: h, ...job } = input;
      return docker.execInSandbox({ ...job, containerId: requireBackend(h, 'container') });
    },

    /** The container's files as a committed image, uploaded when snapshot storage is configured. */
    async saveSession(input) {
      const { handle: h, keepRunning: _running, requireStorage, ...target } = input;
      const containerId = requireBackend(h, 'container');
      const committed = await docker.commitSandbox({ ...target, containerId });
      // Without snapshot storage the session lives only in this host's cache (committed as snapflow.local/…).
      const local = committed.ref.startsWith(`${LOCAL_REGISTRY}/`);
      if (local && !requireStorage) return { localRef: committed.ref, storedRef: null, digest: null };
      const stored = await docker.pushImage({ ref: committed.ref }); // GOLDEN_STORAGE_NOT_CONFIGURED without storage
      const storedRef = `${committed.ref.slice(0, committed.ref.lastIndexOf(':'))}@${stored.digest}`;
      return { localRef: committed.ref, storedRef, digest: stored.digest };
    },

    async stop(input) {
      await docker.removeSandbox({
        sandboxId: input.sandboxId,
        workspace: input.workspace,
        containerId: requireBackend(input.handle, 'container'),
      });
    },

    // The engine's own facts count every running container's memory already (activities/docker.ts).
    facts: async () => ({ memoryReservedMiB: 0 }),
  };
}
