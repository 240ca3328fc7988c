// What the sandbox entity asks of the runtime that runs it: start by a restore decision, run a job, save a session,
// stop. Runs since the backend seam call a SandboxBackend's verbs (workflows/backends.ts); runs recorded before it
// replay through workflows/sandboxLegacyRuntime.ts.
import type { HandleClaim } from '../activities/handles';
import type { LogRef } from '../catalog/logs';
import type { ExecResult, SavedSession, SandboxBackendName, SandboxHandle } from '../activities/sandbox/backend';
import { describeFailure } from '../lib/errors';
import type { RestoreDecision } from '../lib/restoreOrder';
import { backendOn, backendTraits } from './backends';
import type { JobRequest, SandboxRequest } from './contracts/sandbox';

/** An image snapshot's entrypoint counts as up when it is still running this long after the sandbox started. */
export const ENTRYPOINT_SETTLE_SECONDS = 2;

export interface RuntimeContext {
  req: SandboxRequest;
  claim: HandleClaim;
  workflowId: string;
}

export interface RuntimeStart {
  /** Anything but `running` (a running sandbox needs no start). */
  decision: Exclude<RestoreDecision, { source: 'running' }>;
  hostId: string;
  generation: number;
  /** Boot first and fetch the image into the host cache only when the host lacks it. */
  pullOnMiss: boolean;
  cache: () => Promise<unknown>;
}

export interface SessionTarget {
  repository: string;
  tag: string;
  keepRunning: boolean;
  /** A golden: refused before anything is saved when snapshot storage is not configured. */
  requireStorage?: boolean;
}

export interface SandboxRuntime {
  start(p: RuntimeStart): Promise<SandboxHandle>;
  /** `log` names where the job's whole output goes (the log store). */
  exec(hostId: string, handle: SandboxHandle, job: JobRequest, timeoutMs?: number, log?: LogRef): Promise<ExecResult>;
  saveSession(hostId: string, handle: SandboxHandle, to: SessionTarget): Promise<SavedSession>;
  stop(hostId: string, handle: SandboxHandle): Promise<void>;
}

/** The runtime of backend `name`: each call goes to its verbs on the sandbox's host. */
export function backendRuntime(name: SandboxBackendName, ctx: RuntimeContext): SandboxRuntime {
  const { req, claim, workflowId } = ctx;
  return {
    async start({ decision, hostId, generation, pullOnMiss, cache }) {
      const backend = backendOn(name, hostId, req.size);
      const key = `${req.sandboxId}-${generation}`;
      if (backendTraits(name).snapshots && decision.source !== 'base' && decision.machineProfile)
        return backend.restore({ ...claim, key, stateRef: decision.imageRef, workspace: req.workspace, workflowId });
      const boot = () =>
        backend.boot({
          ...claim,
          key,
          image: decision.imageRef,
          size: req.size,
          workflowId,
          entrypoint: decision.base?.entrypoint,
          settleSeconds: ENTRYPOINT_SETTLE_SECONDS,
        });
      return boot().catch(async (err: unknown) => {
        if (!pullOnMiss || describeFailure(err).code !== 'IMAGE_NOT_FOUND') throw err;
        await cache();
        return boot();
      });
    },
    exec(hostId, handle, job, timeoutMs, log) {
      const { command, env, workdir } = job;
      return backendOn(name, hostId, req.size, timeoutMs).exec({ ...claim, handle, command, env, workdir, timeoutMs, log });
    },
    saveSession(hostId, handle, to) {
      return backendOn(name, hostId, req.size).saveSession({ ...claim, handle, ...to });
    },
    stop(hostId, handle) {
      return backendOn(name, hostId, req.size).stop({ ...claim, handle });
    },
  };
}
