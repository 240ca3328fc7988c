// The sandbox entity's state and the steps every handler shares: show, register and sync the state, the idle and
// lifetime clocks, authorize a call, start by the restore order, stop, save a session. The handlers themselves, and
// the workflow, are in workflows/sandbox.ts; the job steps in workflows/sandboxJobs.ts.
import { allHandlersFinished, setCurrentDetails, uuid4, workflowInfo } from '@temporalio/workflow';
import type { HandleClaim } from '../activities/handles';
import type { Action } from '../lib/authz';
import { chooseRestore } from '../lib/restoreOrder';
import { handleText, parseHandleText, type SandboxHandle } from '../lib/sandboxHandle';
import { hostActivities, restore, sandboxCatalog } from './activities';
import { pickHostFor, startOn } from './placement';
import { BACKEND_OF_CLASS, backendTraits } from './backends';
import { backendRuntime, type SandboxRuntime, type SessionTarget } from './sandboxRuntime';
import type { Promotion } from './sandboxPromotion';
import { legacyRuntime } from './sandboxLegacyRuntime';
import { SANDBOX_DEFAULTS, type SandboxCall, type SandboxCarried, type SandboxRequest, type SandboxStatus } from './contracts/sandbox';
import { reject } from './failures';
import { authorize } from './authorize';
import { since } from './legacy';

/** Why a running sandbox stops on its own. */
export type Expiry = NonNullable<SandboxCarried['lastStop']>['reason'];

/** Updates a long-lived sandbox handles per run before it continues as new (history stays small). */
const UPDATES_PER_RUN = 200;

export class SandboxCore {
  /** Updates accepted by this run; past `updatesPerRun` the run continues as new. */
  handled = 0;
  destroyed = false;
  /**
   * Runs started with the lifecycle (idle timeout, max lifetime, a run that resumes a stopped sandbox, a job
   * timeout, the session saved after the job's answer); recorded runs without it replay as they were.
   */
  readonly lifecycle: boolean;
  /**
   * A `vm` sandbox is a QEMU machine whose snapshots save memory and devices; runs recorded before that (and the
   * runs they continued into) keep the container they had.
   */
  readonly machines: boolean;
  /** A successful job whose session the main loop saves after the job's answer went out. */
  afterJob?: { sequence: number };
  /** Whether this sandbox's class has snapshots: a session after each successful job, and promotion. */
  readonly snapshots: boolean;
  protected readonly runtime: SandboxRuntime;
  protected readonly s: SandboxCarried;
  protected readonly run: { workflowId: string; runId: string };
  protected currentJob: SandboxStatus['currentJob'];

  constructor(protected readonly req: SandboxRequest) {
    this.s = req.carried ?? { state: 'provisioning', jobs: 0, generation: 0 };
    const { workflowId, runId } = workflowInfo();
    this.run = { workflowId, runId };
    this.lifecycle = since.lifecycle();
    this.snapshots = backendTraits(BACKEND_OF_CLASS[req.class]).snapshots;
    this.machines = this.snapshots && (req.carried ? req.carried.machines === true : since.vmRuntime());
    this.s.machines = this.machines || undefined;
    const ctx = { req, claim: this.mine(), workflowId };
    // A `vm` run recorded before machines ran its sandbox as a container, and continues to.
    const backend = this.machines || !this.snapshots ? BACKEND_OF_CLASS[req.class] : 'container';
    this.runtime = since.backends() ? backendRuntime(backend, ctx) : legacyRuntime({ ...ctx, machines: this.machines });
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

  /** Running, and nothing in flight: the idle timer runs. */
  quiet(): boolean {
    return this.s.state === 'idle' && this.afterJob === undefined && allHandlersFinished();
  }

  /** Which comes first for a quiet sandbox, the idle timeout or its maximum lifetime, and in how long. */
  nextExpiry(): { reason: Expiry; inMs: number } {
    const { req, s } = this;
    const now = workflowNow();
    s.startedAt ??= now;
    const idle = req.idleTimeoutMs ?? SANDBOX_DEFAULTS.idleTimeoutMs;
    const left = s.startedAt + (req.maxLifetimeMs ?? SANDBOX_DEFAULTS.maxLifetimeMs) - now;
    return left <= idle ? { reason: 'max-lifetime', inMs: left } : { reason: 'idle-timeout', inMs: idle };
  }

  show(): void {
    const s = this.s;
    setCurrentDetails(
      `**${s.state}**${s.hostId ? ` on ${s.hostId}` : ''} · ${s.jobs} job(s)${s.latestSessionSnapshotId ? ` · session ${s.latestSessionSnapshotId}` : ''}`,
    );
  }

  protected requireIdle(what: string): void {
    const { req, s } = this;
    if (s.state === 'idle') return;
    if (s.state === 'stopped' || s.state === 'failed')
      reject('SANDBOX_STOPPED', `sandbox ${req.sandboxId} is ${s.state}, so it cannot ${what}`, {
        hint: `resume it first: snapflow sandbox start ${req.sandboxId}`,
      });
    reject('SANDBOX_BUSY', `sandbox ${req.sandboxId} is ${s.state}, so it cannot ${what} now`, {
      hint:
        s.state === 'snapshotting'
          ? 'its session snapshot is being saved, which takes a moment: try again (the client and CLI wait for it)'
          : 'wait for the running task to finish',
    });
  }

  protected docker() {
    return hostActivities(this.s.hostId!);
  }

  /** What runs now; runs recorded before typed handles carried only its text. */
  protected handle(): SandboxHandle | undefined {
    const s = this.s;
    return s.handle ?? (s.containerId ? parseHandleText(s.containerId) : undefined);
  }

  /** What every host call on this sandbox's container or VM names: the host checks the handle was made for it. */
  protected mine(): HandleClaim {
    return { sandboxId: this.req.sandboxId, workspace: this.req.workspace };
  }

  /** The profile sessions and promotions are registered under: the base's as of the last start. */
  protected profile(): string {
    return this.s.profileKey ?? this.req.profileKey;
  }

  /** Its catalog row, as requested (and its issue's, created on first use): the first run registers it before anything starts. */
  protected async register(): Promise<void> {
    const { req } = this;
    const issueId =
      req.issue !== undefined && since.sandboxIssue()
        ? (await sandboxCatalog.saveSandboxIssue({ workspace: req.workspace, issue: req.issue })).issueId
        : req.issueId;
    await sandboxCatalog.registerSandbox({
      id: req.sandboxId,
      workspace: req.workspace,
      class: req.class,
      size: req.size,
      runtime: req.runtime,
      profileKey: req.profileKey,
      keepAlive: req.keepAlive,
      issueId,
      baseSnapshotId: req.baseSnapshotId,
      agentId: req.agentId,
      forkedFromSnapshotId: req.forkedFromSnapshotId,
    });
  }

  protected sync() {
    const { req, s } = this;
    return sandboxCatalog.updateSandbox({
      id: req.sandboxId,
      state: s.state,
      hostId: s.hostId ?? null,
      containerId: s.containerId ?? null,
      profileKey: s.profileKey,
    });
  }

  /** Versioned: runs recorded before authorization existed replay without it (patched → false). */
  protected async authorizeAs(call: SandboxCall | undefined, action: Action): Promise<void> {
    if (!since.authorization()) return;
    const actor = call?.actor;
    // Never the creator's identity for someone else's call: a request that names nobody is refused.
    if (!actor)
      reject('VALIDATION_FAILED', `the ${action} request names no actor`, { hint: 'send who asks: { actor: "alice@example.com" }' });
    await authorize({
      claim: call?.claim,
      actor: actor!,
      workspace: this.req.workspace,
      action,
      target: this.req.sandboxId,
      run: this.run,
    });
  }

  /** Start (or resume) by the restore order; the decision and every skip reason land in history and status. */
  protected async start(): Promise<void> {
    const { req, s } = this;
    s.state = 'provisioning';
    const decision = chooseRestore(await restore.loadRestoreInput({ sandboxId: req.sandboxId }));
    s.lastStart = decision;
    if (decision.profileKey) s.profileKey = decision.profileKey;
    if (decision.source === 'running') {
      s.state = 'idle';
      if (this.lifecycle) s.startedAt ??= workflowNow();
      return;
    }
    const hostId = await pickHostFor(req.size, decision.hostId);
    // An image snapshot base comes from snapshot storage like any snapshot; only the built-in base is on every host.
    const fromStorage = decision.source !== 'base' || Boolean(decision.base);
    // Recorded runs pulled first; now the container is created straight away and the image pulled only when it is missing.
    const pullOnMiss = fromStorage && since.pullOnMiss();
    const image = { storedRef: fromStorage ? decision.imageRef : undefined, workspace: req.workspace, onMiss: pullOnMiss };
    const handle = await startOn(hostId, image, (cache) => {
      s.generation += 1;
      return this.runtime.start({ decision, hostId, generation: s.generation, pullOnMiss, cache });
    });
    Object.assign(s, { hostId, handle, containerId: handleText(handle), state: 'idle' as const });
    if (this.lifecycle || this.machines) s.startedAt = workflowNow();
  }

  protected async stopContainer(): Promise<void> {
    const handle = this.handle();
    if (handle) await this.runtime.stop(this.s.hostId!, handle);
    this.forgetContainer();
  }

  /** Stopped, with nothing running (also when removing the container failed: a sweep of leftovers takes it). */
  protected forgetContainer(): void {
    const s = this.s;
    s.containerId = undefined;
    s.handle = undefined;
    s.state = 'stopped';
    if (this.lifecycle) s.startedAt = undefined;
  }

  /** What promotion's publishing steps read of this sandbox; `local` keeps the image it commits on the host. */
  protected promotion(local: { ref?: string }): Promotion {
    const { req, s } = this;
    const saveSession = (to: SessionTarget) => this.runtime.saveSession(s.hostId!, this.handle()!, to);
    return { req, s, run: this.run, profileKey: this.profile(), claim: this.mine(), machines: this.machines, saveSession, local };
  }

  /**
   * A running sandbox's live state saved for fork `forkId`, the sandbox kept running: a vm's becomes its latest
   * session (what a session save is), a container's is only its fork's starting point.
   */
  protected async saveForkPoint(forkId: string): Promise<string> {
    return this.saveSessionAs({ tag: `fork-${forkId.slice(0, 8)}`, sequence: this.s.jobs, keepRunning: true, forkId });
  }

  /** A container's files as a committed image; a machine's memory, devices and files as a saved state. */
  protected async saveSession(sequence: number, keepRunning = true): Promise<string> {
    return this.saveSessionAs({ tag: `s${sequence}`, sequence, keepRunning });
  }

  /** Saves the running sandbox under `tag` in its sessions repository and records the snapshot. */
  private async saveSessionAs(p: { tag: string; sequence: number; keepRunning: boolean; forkId?: string }): Promise<string> {
    const { req, s } = this;
    const repository = `snapflow/sessions/${req.workspace}/${req.sandboxId}`;
    const image = await this.runtime.saveSession(s.hostId!, this.handle()!, { repository, tag: p.tag, keepRunning: p.keepRunning });
    const saved = await sandboxCatalog.saveSessionSnapshot({
      id: uuid4(),
      sandboxId: req.sandboxId,
      workspace: req.workspace,
      runtime: req.runtime,
      size: req.size,
      profileKey: this.profile(),
      localRef: image.localRef,
      storedRef: image.storedRef,
      digest: image.digest,
      machineProfile: image.machineProfile,
      hostId: s.hostId!,
      sequence: p.sequence,
      run: this.run,
      ...(p.forkId ? { forkId: p.forkId } : {}),
    });
    // A container's fork point is only its fork's start, never its own latest session.
    if (!p.forkId || this.snapshots) s.latestSessionSnapshotId = saved.snapshotId;
    return saved.snapshotId;
  }
}

/** Milliseconds of workflow time: the time of the current workflow task, the same on every replay. */
export function workflowNow(): number {
  return new Date().getTime();
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}
