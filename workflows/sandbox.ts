import {
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  patched,
  condition,
  continueAsNew,
  setCurrentDetails,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { DefaultState } from '../activities/defaults';
import type { Action } from '../lib/authz';
import { describeFailure, type ErrorCode } from '../lib/errors';
import type { Runtime } from '../lib/presets';
import { chooseRestore, type RestoreDecision, type RestoreSandbox } from '../lib/restoreOrder';

type SandboxClass = RestoreSandbox['class'];
type SandboxState = RestoreSandbox['state'];
import { access, catalog, defaults, golden, hostActivities, hostCacheActivities, hostGoldenActivities, hostJobActivities, restore, sandboxCatalog } from './activities';
import { destroyUpdate, promoteUpdate, resumeUpdate, runJobUpdate, sandboxStatusQuery } from './definitions';

export interface SandboxRequest {
  sandboxId: string;
  scope: string;
  class: SandboxClass;
  size: string;
  runtime: Runtime;
  profileKey: string;
  keepAlive: boolean;
  issueId?: string;
  actor: string;
  /** Updates handled per run before continuing as new (default 200; tests use a small one). */
  updatesPerRun?: number;
  /** State carried over continue-as-new; absent on the first run. */
  carried?: SandboxCarried;
}

export interface SandboxCarried {
  state: SandboxState;
  hostId?: string;
  containerId?: string;
  latestSessionSnapshotId?: string;
  jobs: number;
  generation: number;
  lastStart?: RestoreDecision;
}

/** Who asks: decided against the workspace's roles inside the workflow (lib/authz.ts). */
export interface SandboxCall {
  actor?: string;
}

export interface JobRequest extends SandboxCall {
  command: string[];
  env?: Record<string, string>;
  workdir?: string;
}

export interface JobResult {
  sequence: number;
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Saved only after a successful job on a `vm` sandbox. */
  sessionSnapshotId?: string;
  /** The job succeeded but its session could not be saved: the previous session stays the latest. */
  sessionError?: string;
  /** No keep-alive: the container was stopped after the job. */
  stopped: boolean;
}

export interface PromoteRequest {
  name: string;
  setDefault?: boolean;
  actor?: string;
}

export interface PromoteResult {
  snapshotId: string;
  name: string;
  storedRef: string;
  default?: DefaultState;
}

export interface SandboxStatus extends SandboxCarried {
  sandboxId: string;
  currentJob?: { sequence: number; command: string[] };
}

/** Updates a long-lived sandbox handles per run before it continues as new (history stays small). */
const UPDATES_PER_RUN = 200;

const reject = (code: ErrorCode, message: string, hint?: string): never => {
  throw ApplicationFailure.create({ type: code, message, nonRetryable: true, details: [{ hint }] });
};

/**
 * A sandbox as one entity workflow. Jobs, promotion, resume and destroy are Updates whose validators
 * read the state synchronously, and every handler moves the state before its first await: a job and a
 * promotion can never interleave. After a successful job a `vm` sandbox saves a session snapshot.
 */
export async function sandbox(req: SandboxRequest): Promise<SandboxStatus> {
  const s: SandboxCarried = req.carried ?? { state: 'provisioning', jobs: 0, generation: 0 };
  const { workflowId, runId } = workflowInfo();
  const run = { workflowId, runId };
  let currentJob: SandboxStatus['currentJob'];
  let handled = 0;
  let destroyed = false;

  const status = (): SandboxStatus => ({ sandboxId: req.sandboxId, ...s, currentJob });
  const docker = () => hostActivities(s.hostId!);
  const sync = () => sandboxCatalog.updateSandbox({ id: req.sandboxId, state: s.state, hostId: s.hostId ?? null, containerId: s.containerId ?? null });
  /** Versioned: runs recorded before authorization existed replay without it (patched → false). */
  const authorizeAs = async (actor: string | undefined, action: Action): Promise<void> => {
    if (!patched('authz-v1')) return;
    // Never the creator's identity for someone else's call: a request that names nobody is refused.
    if (!actor) reject('VALIDATION_FAILED', `the ${action} request names no actor`, 'send who asks: { actor: "alice@example.com" }');
    await access.authorize({ actor: actor!, scope: req.scope, action, target: req.sandboxId, run });
  };
  const show = (): void => setCurrentDetails(`**${s.state}**${s.hostId ? ` on ${s.hostId}` : ''} · ${s.jobs} job(s)${s.latestSessionSnapshotId ? ` · session ${s.latestSessionSnapshotId}` : ''}`);

  /** Start (or resume) by the restore order; the decision and every skip reason land in history and status. */
  async function start(): Promise<void> {
    s.state = 'provisioning';
    const decision = chooseRestore(await restore.loadRestoreInput({ sandboxId: req.sandboxId }));
    s.lastStart = decision;
    if (decision.source === 'running') {
      s.state = 'idle';
      return;
    }
    const hostId = decision.hostId ?? (await catalog.pickHost({ size: req.size })).hostId;
    if (decision.source !== 'base') await hostCacheActivities(hostId).cacheSnapshot({ storedRef: decision.imageRef }); // no-op when cached
    s.generation += 1;
    const box = await hostActivities(hostId).createTempSandbox({ key: `sandbox-${req.sandboxId}-${s.generation}`, image: decision.imageRef, size: req.size, workflowId, role: 'sandbox' });
    Object.assign(s, { hostId, containerId: box.containerId, state: 'idle' as const });
  }

  async function stopContainer(): Promise<void> {
    if (s.containerId) await docker().removeSandbox({ containerId: s.containerId });
    s.containerId = undefined;
    s.state = 'stopped';
  }

  async function saveSession(sequence: number): Promise<string> {
    const image = await docker().commitSandbox({ containerId: s.containerId!, repository: `snapflow/sessions/${req.scope}/${req.sandboxId}`, tag: `s${sequence}` });
    // Without snapshot storage the session lives only in this host's cache (committed as snapflow.local/…).
    const stored = image.ref.startsWith('snapflow.local/') ? undefined : await docker().pushImage({ ref: image.ref });
    const saved = await sandboxCatalog.saveSessionSnapshot({
      id: uuid4(),
      sandboxId: req.sandboxId,
      scope: req.scope,
      runtime: req.runtime,
      size: req.size,
      profileKey: req.profileKey,
      localRef: image.ref,
      storedRef: stored ? `${image.ref.slice(0, image.ref.lastIndexOf(':'))}@${stored.digest}` : null,
      digest: stored?.digest ?? null,
      hostId: s.hostId!,
      sequence,
      run,
    });
    s.latestSessionSnapshotId = saved.snapshotId;
    return saved.snapshotId;
  }

  setHandler(sandboxStatusQuery, status);

  setHandler(
    runJobUpdate,
    async (job: JobRequest): Promise<JobResult> => {
      handled++;
      s.state = 'busy'; // before the first await: the validators of everything else now refuse
      const sequence = ++s.jobs;
      currentJob = { sequence, command: job.command };
      show();
      try {
        await authorizeAs(job.actor, 'sandbox.job');
      } catch (err) {
        Object.assign(s, { state: 'idle', jobs: s.jobs - 1 });
        currentJob = undefined;
        show();
        const f = describeFailure(err);
        return reject(f.code, f.message, f.hint);
      }
      try {
        await sync();
        const result = await hostJobActivities(s.hostId!).execInSandbox({ containerId: s.containerId!, command: job.command, env: job.env, workdir: job.workdir });
        let sessionSnapshotId: string | undefined;
        let sessionError: string | undefined;
        if (result.exitCode === 0 && req.class === 'vm') {
          s.state = 'snapshotting';
          await sync();
          try {
            sessionSnapshotId = await saveSession(sequence);
          } catch (err) {
            const f = describeFailure(err);
            sessionError = `${f.code}: ${f.message}`;
          }
        }
        if (req.keepAlive) s.state = 'idle';
        else await stopContainer();
        return { sequence, ...result, sessionSnapshotId, sessionError, stopped: !req.keepAlive };
      } catch (err) {
        // The exec itself could not run (host gone, container gone): the sandbox is stopped, resume restarts it.
        await CancellationScope.nonCancellable(() => stopContainer().catch(() => undefined));
        const f = describeFailure(err);
        return reject('EXEC_FAILED', `job ${sequence} could not run: ${f.code}: ${f.message}`, 'resume the sandbox and run the job again');
      } finally {
        currentJob = undefined;
        await CancellationScope.nonCancellable(sync);
        show();
      }
    },
    {
      validator: (job: JobRequest) => {
        if (!Array.isArray(job?.command) || job.command.length === 0 || job.command.some((a: unknown) => typeof a !== 'string' || a.includes('\u0000'))) {
          reject('VALIDATION_FAILED', 'a job needs a command: a non-empty list of strings without NUL bytes', 'e.g. ["sh", "-c", "npm test"]');
        }
        requireIdle('run a job');
      },
    },
  );

  setHandler(
    promoteUpdate,
    async (input: PromoteRequest): Promise<PromoteResult> => {
      handled++;
      s.state = 'promoting'; // before the first await, see runJob
      show();
      let localRef: string | undefined;
      try {
        await authorizeAs(input.actor, 'sandbox.promote');
        await sync();
        const image = await docker().commitSandbox({ containerId: s.containerId!, repository: `snapflow/golden/${req.scope}`, tag: `promote-${req.sandboxId.slice(0, 8)}-${s.jobs}`, changes: ['CMD ["/app/start.sh"]'] });
        localRef = image.ref;
        await hostGoldenActivities(s.hostId!).verifyBoot({ image: image.ref, entrypoint: '/app/start.sh' });
        const stored = await docker().pushImage({ ref: image.ref }); // GOLDEN_STORAGE_NOT_CONFIGURED without storage
        const storedRef = `${image.ref.slice(0, image.ref.lastIndexOf(':'))}@${stored.digest}`;
        const { snapshotId } = await golden.registerGolden({ id: uuid4(), scope: req.scope, name: input.name, storedRef, digest: stored.digest, runtime: req.runtime, size: req.size, profileKey: req.profileKey, origin: 'promote', sandboxId: req.sandboxId, parentSnapshotId: s.latestSessionSnapshotId, run });
        await golden.recordHostCache({ hostId: s.hostId!, snapshotIds: [snapshotId] });
        localRef = undefined; // the promoted image stays cached on this host
        const made = input.setDefault ? await defaults.setDefault({ scope: req.scope, size: req.size, profileKey: req.profileKey, snapshotId, actor: input.actor ?? req.actor, reason: `promoted from sandbox ${req.sandboxId}`, workflowId }) : undefined;
        return { snapshotId, name: input.name, storedRef, default: made };
      } catch (err) {
        const f = describeFailure(err);
        return reject(f.code, `promotion of sandbox ${req.sandboxId} failed: ${f.message}`, f.hint);
      } finally {
        await CancellationScope.nonCancellable(async () => {
          if (localRef) await docker().removeLocalImage({ ref: localRef }).catch(() => undefined);
          s.state = 'idle'; // also when promotion failed: the sandbox itself is untouched
          await sync();
        });
        show();
      }
    },
    {
      validator: (_input: PromoteRequest) => {
        if (req.class !== 'vm') reject('SANDBOX_CLASS_UNSUPPORTED', `sandbox ${req.sandboxId} is a container sandbox; snapshots exist only for vm sandboxes`, 'create the sandbox with --class vm');
        requireIdle('promote it');
      },
    },
  );

  setHandler(
    resumeUpdate,
    async (call?: SandboxCall): Promise<SandboxStatus> => {
      handled++;
      s.state = 'provisioning';
      try {
        await authorizeAs(call?.actor, 'sandbox.job');
        await start();
      } catch (err) {
        s.state = 'stopped';
        const f = describeFailure(err);
        reject(f.code, `sandbox ${req.sandboxId} could not start: ${f.message}`, f.hint);
      } finally {
        await CancellationScope.nonCancellable(sync);
        show();
      }
      return status();
    },
    {
      validator: (_call?: SandboxCall) => {
        if (s.state !== 'stopped') reject(s.state === 'idle' ? 'CONFLICT' : 'SANDBOX_BUSY', `sandbox ${req.sandboxId} is ${s.state}, not stopped`, s.state === 'idle' ? 'it is already running: run a job' : 'wait for it to finish');
      },
    },
  );

  setHandler(
    destroyUpdate,
    async (call?: SandboxCall): Promise<SandboxStatus> => {
      handled++;
      try {
        await authorizeAs(call?.actor, 'sandbox.job');
      } catch (err) {
        const f = describeFailure(err);
        return reject(f.code, f.message, f.hint);
      }
      await stopContainer();
      await sync();
      destroyed = true;
      return status();
    },
    {
      validator: (_call?: SandboxCall) => {
        if (['busy', 'snapshotting', 'promoting', 'provisioning'].includes(s.state)) reject('SANDBOX_BUSY', `sandbox ${req.sandboxId} is ${s.state}`, 'wait for it to finish, then destroy it');
      },
    },
  );

  function requireIdle(what: string): void {
    if (s.state === 'idle') return;
    if (s.state === 'stopped' || s.state === 'failed') reject('SANDBOX_STOPPED', `sandbox ${req.sandboxId} is ${s.state}, so it cannot ${what}`, `resume it first: snapflow sandbox start ${req.sandboxId}`);
    reject('SANDBOX_BUSY', `sandbox ${req.sandboxId} is ${s.state}, so it cannot ${what} now`, 'wait for the running task to finish');
  }

  if (!req.carried) {
    await authorizeAs(req.actor, 'sandbox.create'); // nothing is registered or started for a refused request
    await sandboxCatalog.registerSandbox({ id: req.sandboxId, scope: req.scope, class: req.class, size: req.size, runtime: req.runtime, profileKey: req.profileKey, keepAlive: req.keepAlive, issueId: req.issueId });
    try {
      await start();
    } catch (err) {
      s.state = 'failed';
      await CancellationScope.nonCancellable(sync);
      const f = describeFailure(err);
      throw ApplicationFailure.create({ type: f.code, message: `sandbox ${req.sandboxId} could not start: ${f.message}`, nonRetryable: true, details: [{ hint: f.hint }] });
    }
    await sync();
  }
  show();

  await condition(() => destroyed || ((handled >= (req.updatesPerRun ?? UPDATES_PER_RUN) || workflowInfo().continueAsNewSuggested) && allHandlersFinished()));
  await condition(allHandlersFinished);
  if (destroyed) return status();
  return continueAsNew<typeof sandbox>({ ...req, carried: { ...s, state: s.state } });
}
