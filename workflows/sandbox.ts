import {
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
import type { Action } from '../lib/authz';
import { describeFailure } from '../lib/errors';
import { chooseRestore } from '../lib/restoreOrder';
import type { SandboxClass, SandboxState } from '../lib/vocabulary';
import {
  access,
  catalog,
  defaults,
  golden,
  hostActivities,
  hostCacheActivities,
  hostJobActivities,
  restore,
  sandboxCatalog,
} from './activities';
import {
  destroyUpdate,
  promoteUpdate,
  resumeUpdate,
  runJobUpdate,
  sandboxStatusQuery,
  type JobRequest,
  type JobResult,
  type PromoteRequest,
  type PromoteResult,
  type SandboxCall,
  type SandboxCarried,
  type SandboxRequest,
  type SandboxStatus,
} from './contracts/sandbox';
import { reject } from './failures';
import { publishGolden } from './publishGolden';
import { withWorkspace } from './compat';

/** Updates a long-lived sandbox handles per run before it continues as new (history stays small). */
const UPDATES_PER_RUN = 200;

/** The only class with snapshots: a session after each successful job, and promotion. */
const SNAPSHOT_CLASS: SandboxClass = 'vm';

/** States in which something is running on the sandbox: destroy waits for it. */
const WORKING: readonly SandboxState[] = ['busy', 'snapshotting', 'promoting', 'provisioning'];

/**
 * One sandbox's state and what each Update does to it. Validators read the state synchronously, and every
 * handler moves the state before its first await: a job and a promotion can never interleave.
 */
class SandboxEntity {
  /** Updates accepted by this run; past `updatesPerRun` the run continues as new. */
  handled = 0;
  destroyed = false;
  private readonly s: SandboxCarried;
  private readonly run: { workflowId: string; runId: string };
  private currentJob: SandboxStatus['currentJob'];

  constructor(private readonly req: SandboxRequest) {
    this.s = req.carried ?? { state: 'provisioning', jobs: 0, generation: 0 };
    const { workflowId, runId } = workflowInfo();
    this.run = { workflowId, runId };
  }

  status(): SandboxStatus {
    return { sandboxId: this.req.sandboxId, ...this.s, currentJob: this.currentJob };
  }

  /** What the next run starts from. */
  carried(): SandboxCarried {
    return { ...this.s, state: this.s.state };
  }

  shouldContinueAsNew(): boolean {
    return this.handled >= (this.req.updatesPerRun ?? UPDATES_PER_RUN) || workflowInfo().continueAsNewSuggested;
  }

  show(): void {
    const s = this.s;
    setCurrentDetails(
      `**${s.state}**${s.hostId ? ` on ${s.hostId}` : ''} · ${s.jobs} job(s)${s.latestSessionSnapshotId ? ` · session ${s.latestSessionSnapshotId}` : ''}`,
    );
  }

  /** First run only: nothing is registered or started for a refused request. */
  async create(): Promise<void> {
    const { req, s } = this;
    await this.authorizeAs(req.actor, 'sandbox.create');
    await sandboxCatalog.registerSandbox({
      id: req.sandboxId,
      workspace: req.workspace,
      class: req.class,
      size: req.size,
      runtime: req.runtime,
      profileKey: req.profileKey,
      keepAlive: req.keepAlive,
      issueId: req.issueId,
    });
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

  validateJob(job: JobRequest): void {
    if (
      !Array.isArray(job?.command) ||
      job.command.length === 0 ||
      job.command.some((a: unknown) => typeof a !== 'string' || a.includes('\u0000'))
    ) {
      reject('VALIDATION_FAILED', 'a job needs a command: a non-empty list of strings without NUL bytes', {
        hint: 'e.g. ["sh", "-c", "npm test"]',
      });
    }
    this.requireIdle('run a job');
  }

  async runJob(job: JobRequest): Promise<JobResult> {
    const { req, s } = this;
    this.handled++;
    s.state = 'busy'; // before the first await: the validators of everything else now refuse
    const sequence = ++s.jobs;
    this.currentJob = { sequence, command: job.command };
    this.show();
    try {
      await this.authorizeAs(job.actor, 'sandbox.job');
    } catch (err) {
      Object.assign(s, { state: 'idle', jobs: s.jobs - 1 });
      this.currentJob = undefined;
      this.show();
      const f = describeFailure(err);
      return reject(f.code, f.message, { hint: f.hint });
    }
    try {
      await this.sync();
      const result = await hostJobActivities(s.hostId!).execInSandbox({
        containerId: s.containerId!,
        command: job.command,
        env: job.env,
        workdir: job.workdir,
      });
      let sessionSnapshotId: string | undefined;
      let sessionError: string | undefined;
      if (result.exitCode === 0 && req.class === SNAPSHOT_CLASS) {
        s.state = 'snapshotting';
        await this.sync();
        try {
          sessionSnapshotId = await this.saveSession(sequence);
        } catch (err) {
          const f = describeFailure(err);
          sessionError = `${f.code}: ${f.message}`;
        }
      }
      if (req.keepAlive) s.state = 'idle';
      else await this.stopContainer();
      return { sequence, ...result, sessionSnapshotId, sessionError, stopped: !req.keepAlive };
    } catch (err) {
      // The exec itself could not run (host gone, container gone): the sandbox is stopped, resume restarts it.
      await CancellationScope.nonCancellable(() => this.stopContainer().catch(() => undefined));
      const f = describeFailure(err);
      return reject('EXEC_FAILED', `job ${sequence} could not run: ${f.code}: ${f.message}`, {
        hint: 'resume the sandbox and run the job again',
      });
    } finally {
      this.currentJob = undefined;
      await CancellationScope.nonCancellable(() => this.sync());
      this.show();
    }
  }

  validatePromote(_input: PromoteRequest): void {
    const { req } = this;
    if (req.class !== SNAPSHOT_CLASS)
      reject('SANDBOX_CLASS_UNSUPPORTED', `sandbox ${req.sandboxId} is a container sandbox; snapshots exist only for vm sandboxes`, {
        hint: 'create the sandbox with --class vm',
      });
    this.requireIdle('promote it');
  }

  async promote(input: PromoteRequest): Promise<PromoteResult> {
    const { req, s } = this;
    this.handled++;
    s.state = 'promoting'; // before the first await, see runJob
    this.show();
    let localRef: string | undefined;
    try {
      await this.authorizeAs(input.actor, 'sandbox.promote');
      await this.sync();
      const { storedRef, registered: snapshotId } = await publishGolden({
        hostId: s.hostId!,
        containerId: s.containerId!,
        workspace: req.workspace,
        tag: `promote-${req.sandboxId.slice(0, 8)}-${s.jobs}`,
        committed: (ref) => (localRef = ref),
        register: async ({ storedRef, digest }) => {
          const registered = await golden.registerGolden({
            id: uuid4(),
            workspace: req.workspace,
            name: input.name,
            storedRef,
            digest,
            runtime: req.runtime,
            size: req.size,
            profileKey: req.profileKey,
            origin: 'promote',
            sandboxId: req.sandboxId,
            parentSnapshotId: s.latestSessionSnapshotId,
            run: this.run,
          });
          return registered.snapshotId;
        },
      });
      await golden.recordHostCache({ hostId: s.hostId!, snapshotIds: [snapshotId] });
      localRef = undefined; // the promoted image stays cached on this host
      const made = input.setDefault
        ? await defaults.setDefault({
            workspace: req.workspace,
            size: req.size,
            profileKey: req.profileKey,
            snapshotId,
            actor: input.actor ?? req.actor,
            reason: `promoted from sandbox ${req.sandboxId}`,
            workflowId: this.run.workflowId,
          })
        : undefined;
      return { snapshotId, name: input.name, storedRef, default: made };
    } catch (err) {
      const f = describeFailure(err);
      return reject(f.code, `promotion of sandbox ${req.sandboxId} failed: ${f.message}`, { hint: f.hint });
    } finally {
      await CancellationScope.nonCancellable(async () => {
        if (localRef)
          await this.docker()
            .removeLocalImage({ ref: localRef })
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
      await this.authorizeAs(call?.actor, 'sandbox.job');
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
      await this.authorizeAs(call?.actor, 'sandbox.job');
    } catch (err) {
      const f = describeFailure(err);
      return reject(f.code, f.message, { hint: f.hint });
    }
    await this.stopContainer();
    await this.sync();
    this.destroyed = true;
    return this.status();
  }

  private requireIdle(what: string): void {
    const { req, s } = this;
    if (s.state === 'idle') return;
    if (s.state === 'stopped' || s.state === 'failed')
      reject('SANDBOX_STOPPED', `sandbox ${req.sandboxId} is ${s.state}, so it cannot ${what}`, {
        hint: `resume it first: snapflow sandbox start ${req.sandboxId}`,
      });
    reject('SANDBOX_BUSY', `sandbox ${req.sandboxId} is ${s.state}, so it cannot ${what} now`, {
      hint: 'wait for the running task to finish',
    });
  }

  private docker() {
    return hostActivities(this.s.hostId!);
  }

  private sync() {
    const { req, s } = this;
    return sandboxCatalog.updateSandbox({
      id: req.sandboxId,
      state: s.state,
      hostId: s.hostId ?? null,
      containerId: s.containerId ?? null,
    });
  }

  /** Versioned: runs recorded before authorization existed replay without it (patched → false). */
  private async authorizeAs(actor: string | undefined, action: Action): Promise<void> {
    if (!patched('authz-v1')) return;
    // Never the creator's identity for someone else's call: a request that names nobody is refused.
    if (!actor)
      reject('VALIDATION_FAILED', `the ${action} request names no actor`, { hint: 'send who asks: { actor: "alice@example.com" }' });
    await access.authorize({ actor: actor!, workspace: this.req.workspace, action, target: this.req.sandboxId, run: this.run });
  }

  /** Start (or resume) by the restore order; the decision and every skip reason land in history and status. */
  private async start(): Promise<void> {
    const { req, s } = this;
    s.state = 'provisioning';
    const decision = chooseRestore(await restore.loadRestoreInput({ sandboxId: req.sandboxId }));
    s.lastStart = decision;
    if (decision.source === 'running') {
      s.state = 'idle';
      return;
    }
    const hostId = decision.hostId ?? (await catalog.pickHost({ size: req.size })).hostId;
    if (decision.source !== 'base')
      await hostCacheActivities(hostId).cacheSnapshot({ storedRef: decision.imageRef, workspace: req.workspace }); // no-op when cached
    s.generation += 1;
    const box = await hostActivities(hostId).createTempSandbox({
      key: `sandbox-${req.sandboxId}-${s.generation}`,
      image: decision.imageRef,
      size: req.size,
      workflowId: this.run.workflowId,
      role: 'sandbox',
    });
    Object.assign(s, { hostId, containerId: box.containerId, state: 'idle' as const });
  }

  private async stopContainer(): Promise<void> {
    const s = this.s;
    if (s.containerId) await this.docker().removeSandbox({ containerId: s.containerId });
    s.containerId = undefined;
    s.state = 'stopped';
  }

  private async saveSession(sequence: number): Promise<string> {
    const { req, s } = this;
    const image = await this.docker().commitSandbox({
      containerId: s.containerId!,
      repository: `snapflow/sessions/${req.workspace}/${req.sandboxId}`,
      tag: `s${sequence}`,
    });
    // Without snapshot storage the session lives only in this host's cache (committed as snapflow.local/…).
    const stored = image.ref.startsWith('snapflow.local/') ? undefined : await this.docker().pushImage({ ref: image.ref });
    const saved = await sandboxCatalog.saveSessionSnapshot({
      id: uuid4(),
      sandboxId: req.sandboxId,
      workspace: req.workspace,
      runtime: req.runtime,
      size: req.size,
      profileKey: req.profileKey,
      localRef: image.ref,
      storedRef: stored ? `${image.ref.slice(0, image.ref.lastIndexOf(':'))}@${stored.digest}` : null,
      digest: stored?.digest ?? null,
      hostId: s.hostId!,
      sequence,
      run: this.run,
    });
    s.latestSessionSnapshotId = saved.snapshotId;
    return saved.snapshotId;
  }
}

/**
 * A sandbox as one entity workflow: jobs, promotion, resume and destroy are Updates handled by SandboxEntity.
 * After a successful job a `vm` sandbox saves a session snapshot.
 */
export async function sandbox(req: SandboxRequest): Promise<SandboxStatus> {
  req = withWorkspace(req);
  const entity = new SandboxEntity(req);
  setHandler(sandboxStatusQuery, () => entity.status());
  setHandler(runJobUpdate, (job) => entity.runJob(job), { validator: (job) => entity.validateJob(job) });
  setHandler(promoteUpdate, (input) => entity.promote(input), { validator: (input) => entity.validatePromote(input) });
  setHandler(resumeUpdate, (call) => entity.resume(call), { validator: (call) => entity.validateResume(call) });
  setHandler(destroyUpdate, (call) => entity.destroy(call), { validator: (call) => entity.validateDestroy(call) });

  if (!req.carried) await entity.create();
  entity.show();

  // Runs until destroyed, or until this run has handled its share of Updates (or Temporal suggests a fresh
  // history) while no handler is in the middle of one: the state is handed over between Updates, never inside.
  await condition(() => entity.destroyed || (entity.shouldContinueAsNew() && allHandlersFinished()));
  // Every accepted Update gets its answer before the run ends: the destroy that ended it is still returning,
  // and an Update accepted in the same activation may have started.
  await condition(allHandlersFinished);
  if (entity.destroyed) return entity.status();
  return continueAsNew<typeof sandbox>({ ...req, carried: entity.carried() });
}
