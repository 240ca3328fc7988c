// The sandbox entity workflow as its state machine: the handlers, the states they move through, and the calls to
// the backend. The shared steps are in workflows/sandboxCore.ts, the job steps in sandboxJobs.ts, promotion in sandboxPromotion.ts.
import { CancellationScope, allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { describeFailure } from '../lib/errors';
import { checkJob, checkSandboxDuration } from '../lib/validation/sandboxes';
import type { SandboxState } from '../lib/vocabulary';
import {
  SANDBOX_DEFAULTS,
  destroyUpdate,
  forkUpdate,
  promoteUpdate,
  resumeUpdate,
  runJobUpdate,
  cancelJobSignal,
  sandboxStatusQuery,
  startedUpdate,
  type JobRequest,
  type JobResult,
  type PromoteRequest,
  type PromoteResult,
  type SandboxCall,
  type SandboxRequest,
  type SandboxStatus,
} from './contracts/sandbox';
import { reject } from './failures';
import { SandboxForks } from './sandboxFork';
import { publishPromotion } from './sandboxPromotion';
import { withWorkspace } from './compat';
import { since } from './legacy';
import { formatMs, workflowNow, type Expiry } from './sandboxCore';

/** States in which something is running on the sandbox: destroy waits for it. */
const WORKING: readonly SandboxState[] = ['busy', 'snapshotting', 'promoting', 'provisioning'];

/**
 * One sandbox's state and what each Update does to it. Validators read the state synchronously, and every
 * handler moves the state before its first await: a job and a promotion can never interleave.
 */
class SandboxEntity extends SandboxForks {
  /** First run only: nothing is registered or started for a refused request. */
  async create(): Promise<void> {
    const { req, s } = this;
    await this.authorizeAs(req, 'sandbox.create');
    await this.register();
    try {
      await this.start();
    } catch (err) {
      s.state = 'failed';
      await CancellationScope.nonCancellable(() => this.sync());
      const f = describeFailure(err);
      reject(f.code, `sandbox ${req.sandboxId} could not start: ${f.message}`, { hint: f.hint });
    }
    await this.sync();
  }

  /** The client's own job check (lib/validation), held here too, so a direct Update is held to it. */
  validateJob(job: JobRequest): void {
    try {
      checkJob(job);
      if (this.lifecycle) checkSandboxDuration('timeout', job.timeoutMs);
    } catch (err) {
      const f = describeFailure(err);
      reject(f.code, f.message, { field: f.field, hint: f.hint });
    }
    if (this.lifecycle && this.s.state === 'stopped') return; // the job starts it again first
    this.requireIdle('run a job');
  }

  async runJob(job: JobRequest): Promise<JobResult> {
    return this.lifecycle ? this.runJobResuming(job) : this.runLegacyJob(job);
  }

  /**
   * A job on a stopped sandbox starts it first (by the restore order, said in the result). The answer goes out as
   * soon as the job ends: a `vm` sandbox stays `snapshotting` while the main loop saves its session after.
   */
  protected async runJobResuming(job: JobRequest): Promise<JobResult> {
    const { req, s } = this;
    this.handled++;
    const resuming = s.state === 'stopped';
    s.state = resuming ? 'provisioning' : 'busy'; // before the first await: the validators of everything else now refuse
    const sequence = ++s.jobs;
    this.currentJob = { sequence, command: job.command };
    this.show();
    const undo = () => {
      Object.assign(s, { state: resuming ? 'stopped' : 'idle', jobs: s.jobs - 1 });
      this.currentJob = undefined;
      this.show();
    };
    let resumedFrom: JobResult['resumedFrom'];
    try {
      await this.authorizeAs(job, 'sandbox.job');
      if (resuming) {
        await this.start();
        resumedFrom = s.lastStart;
        s.state = 'busy';
      }
    } catch (err) {
      undo();
      await CancellationScope.nonCancellable(() => this.sync());
      const f = describeFailure(err);
      return reject(f.code, resuming ? `sandbox ${req.sandboxId} could not start for job ${sequence}: ${f.message}` : f.message, {
        hint: f.hint,
      });
    }
    const timeoutMs = job.timeoutMs ?? SANDBOX_DEFAULTS.jobTimeoutMs;
    const result = await this.execJob(sequence, job, timeoutMs);
    const { timedOut, ...output } = result;
    const saves = !timedOut && !output.cancelled && output.exitCode === 0 && this.snapshots;
    if (saves) {
      s.state = 'snapshotting';
      this.afterJob = { sequence };
    } else if (req.keepAlive) s.state = 'idle';
    else await CancellationScope.nonCancellable(() => this.stopContainer().catch(() => this.forgetContainer()));
    await CancellationScope.nonCancellable(() => this.sync());
    this.show();
    if (timedOut)
      return reject('JOB_TIMED_OUT', `job ${sequence} ran past its ${formatMs(timeoutMs)} timeout; its processes were killed`, {
        hint: 'the sandbox is still usable; give the job more time with --timeout, e.g. --timeout 1h',
        output: { stdout: output.stdout, stderr: output.stderr },
      });
    return {
      sequence,
      ...output,
      stopped: !req.keepAlive,
      ...(saves ? { sessionPending: true } : {}),
      ...(resumedFrom ? { resumedFrom } : {}),
    };
  }

  /** Main loop, after a job's answer: save its session, then keep the sandbox running or stop it. */
  async finishJob(): Promise<void> {
    const { req, s } = this;
    const { sequence } = this.afterJob!;
    try {
      const sessionSnapshotId = await this.saveSession(sequence, req.keepAlive);
      Object.assign(s, { unsavedSequence: undefined, lastSession: { sequence, sessionSnapshotId } });
    } catch (err) {
      const f = describeFailure(err);
      Object.assign(s, { unsavedSequence: sequence, lastSession: { sequence, sessionError: `${f.code}: ${f.message}` } });
    }
    this.afterJob = undefined;
    if (req.keepAlive) s.state = 'idle';
    else await this.stopContainer().catch(() => this.forgetContainer());
    await this.sync();
    this.show();
  }

  /** Idle too long, or past its lifetime: a `vm` saves a session not saved yet, then the container goes. */
  async expire(reason: Expiry): Promise<void> {
    const { s } = this;
    const sessionSnapshotId = await this.saveUnsavedSession();
    const [hostId, handle] = [s.hostId!, this.handle()];
    // Stopped before the container is removed: a job accepted meanwhile starts a new one, never this one.
    Object.assign(s, {
      state: 'stopped',
      containerId: undefined,
      handle: undefined,
      startedAt: undefined,
      lastStop: { reason, at: workflowNow(), sessionSnapshotId },
    });
    await this.sync();
    this.show();
    if (handle) await this.runtime.stop(hostId, handle).catch(() => undefined);
  }

  async promote(input: PromoteRequest): Promise<PromoteResult> {
    if (this.s.state === 'stopped' && since.stoppedPromote()) return this.promoteStopped(input);
    const { req, s } = this;
    this.handled++;
    s.state = 'promoting'; // before the first await, see runJob
    this.show();
    const local: { ref?: string } = {};
    try {
      await this.authorizeAs(input, 'sandbox.promote');
      await this.sync();
      return await publishPromotion(this.promotion(local), input);
    } catch (err) {
      const f = describeFailure(err);
      return reject(f.code, `promotion of sandbox ${req.sandboxId} failed: ${f.message}`, { hint: f.hint });
    } finally {
      await CancellationScope.nonCancellable(async () => {
        if (local.ref)
          await this.docker()
            .removeLocalImage({ ref: local.ref })
            .catch(() => undefined);
        s.state = 'idle'; // also when promotion failed: the sandbox itself is untouched
        await this.sync();
      });
      this.show();
    }
  }

  validateResume(_call?: SandboxCall): void {
    const { req, s } = this;
    if (s.state !== 'stopped')
      reject(s.state === 'idle' ? 'CONFLICT' : 'SANDBOX_BUSY', `sandbox ${req.sandboxId} is ${s.state}, not stopped`, {
        hint: s.state === 'idle' ? 'it is already running: run a job' : 'wait for it to finish',
      });
  }

  async resume(call?: SandboxCall): Promise<SandboxStatus> {
    const { req, s } = this;
    this.handled++;
    s.state = 'provisioning';
    try {
      await this.authorizeAs(call, 'sandbox.resume');
      await this.start();
    } catch (err) {
      s.state = 'stopped';
      const f = describeFailure(err);
      reject(f.code, `sandbox ${req.sandboxId} could not start: ${f.message}`, { hint: f.hint });
    } finally {
      await CancellationScope.nonCancellable(() => this.sync());
      this.show();
    }
    return this.status();
  }

  validateDestroy(_call?: SandboxCall): void {
    const { req, s } = this;
    if (WORKING.includes(s.state))
      reject('SANDBOX_BUSY', `sandbox ${req.sandboxId} is ${s.state}`, { hint: 'wait for it to finish, then destroy it' });
  }

  async destroy(call?: SandboxCall): Promise<SandboxStatus> {
    this.handled++;
    try {
      await this.authorizeAs(call, 'sandbox.destroy');
    } catch (err) {
      const f = describeFailure(err);
      return reject(f.code, f.message, { hint: f.hint });
    }
    await this.stopContainer();
    await this.sync();
    this.destroyed = true;
    return this.status();
  }
}

/**
 * A sandbox as one entity workflow: jobs, promotion, resume and destroy are Updates handled by SandboxEntity.
 * After a successful job a `vm` sandbox saves a session snapshot.
 */
export async function sandbox(req: SandboxRequest): Promise<SandboxStatus> {
  req = withWorkspace(req);
  // Carried state skips creation and its authorization: only this workflow's own continue-as-new may hand it over.
  if (req.carried && !workflowInfo().continuedFromExecutionRunId)
    reject('PERMISSION_DENIED', 'a sandbox start request may not carry state; only the sandbox workflow continuing itself does', {
      field: 'carried',
      hint: 'start a sandbox without `carried` (snapflow sandbox create): it is registered and authorized as it starts',
    });
  const entity = new SandboxEntity(req);
  setHandler(sandboxStatusQuery, () => entity.status());
  setHandler(startedUpdate, async () => {
    await condition(() => entity.status().state !== 'provisioning');
    return entity.status();
  });
  setHandler(runJobUpdate, (job) => entity.runJob(job), { validator: (job) => entity.validateJob(job) });
  setHandler(cancelJobSignal, (input) => entity.cancelJob(input ?? {}));
  setHandler(promoteUpdate, (input) => entity.promote(input), { validator: (input) => entity.validatePromote(input) });
  setHandler(forkUpdate, (input) => entity.fork(input), { validator: (input) => entity.validateFork(input) });
  setHandler(resumeUpdate, (call) => entity.resume(call), { validator: (call) => entity.validateResume(call) });
  setHandler(destroyUpdate, (call) => entity.destroy(call), { validator: (call) => entity.validateDestroy(call) });

  if (!req.carried) await entity.create();
  entity.show();

  // Runs until destroyed, or until this run has handled its share of Updates (or Temporal suggests a fresh
  // history) while no handler is in the middle of one: the state is handed over between Updates, never inside.
  const handOver = () => entity.shouldContinueAsNew() && allHandlersFinished() && entity.afterJob === undefined;
  if (!entity.lifecycle) await condition(() => entity.destroyed || (entity.shouldContinueAsNew() && allHandlersFinished()));
  else
    for (;;) {
      await condition(() => entity.destroyed || entity.afterJob !== undefined || handOver() || entity.quiet());
      if (entity.afterJob && !entity.destroyed) {
        await entity.finishJob();
        continue;
      }
      if (entity.destroyed || handOver()) break;
      // Idle and running: a timer raced with the next accepted Update, started afresh after each one.
      const seen = entity.handled;
      const expiry = entity.nextExpiry();
      const woken = expiry.inMs > 0 && (await condition(() => entity.destroyed || entity.handled !== seen || handOver(), expiry.inMs));
      if (!woken) await entity.expire(expiry.reason);
    }
  // Every accepted Update gets its answer before the run ends: the destroy that ended it is still returning,
  // and an Update accepted in the same activation may have started.
  await condition(allHandlersFinished);
  if (entity.destroyed) return entity.status();
  return continueAsNew<typeof sandbox>({ ...req, carried: entity.carried() });
}
