// Sandboxes for services: create (one entity workflow per sandbox), jobs, promote, resume, destroy, explain.
// Jobs and promotions are Temporal Updates: the workflow's validators decide, and refusals come back typed.
import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import { readRestoreInput } from '../catalog/restore';
import { findSandbox, listSandboxes, pinTarget, requireIssue, sandboxScope, type Sandbox } from '../catalog/sandboxes';
import type { Db } from '../db/client';
import { findAgent, findAgentSnapshot } from '../catalog/agents';
import type { Snapshot } from '../catalog/snapshots';
import { sandboxDefaults } from '../catalog/workspaces';
import type { Action } from '../lib/authz';
import type { Config } from '../lib/config';
import { SnapflowError, describeFailure, storageNotConfigured } from '../lib/errors';
import { taskQueues, workflowIds } from '../lib/ids';
import { OutputReader, type JobOutputProgress, type OutputChunk } from '../lib/jobOutput';
import { findLog, jobLogId, lastJobLog, type LogChunk } from '../catalog/logs';
import { parseSince, readLog } from './logs';
import { profileKey, type Runtime } from '../lib/presets';
import { chooseRestore, type RestoreDecision } from '../lib/restoreOrder';
import { JOB_ACTIVITY_NAMES } from '../lib/sandboxHandle';
import {
  checkFlag,
  checkIssueKey,
  checkJob,
  checkPinnedSnapshot,
  checkPromotedName,
  checkSandboxBase,
  checkSandboxDuration,
  checkSandboxId,
  checkSandboxSpec,
  checkSandboxWorkspace,
} from '../lib/validation';
import type {
  ForkPoint,
  IssuePinRequest,
  IssuePinResult,
  JobRequest,
  JobResult,
  PromoteResult,
  SandboxStatus,
  pinIssue,
  sandbox,
} from '../workflows';
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
} from '../workflows/contracts/sandbox';
import { requireAccess } from './access';
import { typedCall } from './runFailures';
import { searchAttributes } from './searchAttributes';

interface CreateSandboxCommon {
  workspace: string;
  class: string;
  /** Required on the built-in base; defaults to the snapshot's size when starting from an agent or snapshot. */
  size?: string;
  /** Required on the built-in base; defaults to the snapshot's runtime when starting from an agent or snapshot. */
  runtime?: string;
  keepAlive?: boolean;
  /** External issue key (e.g. "ENG-42"): its pinned golden snapshot comes first in the restore order. */
  issue?: string;
  /** Stop after this long without a job, e.g. "15m" (default: the workspace's, else 15 minutes). */
  idleTimeout?: string | number;
  /** Stop once running this long, keep-alive or not, e.g. "8h" (default: the workspace's, else 24 hours). */
  maxLifetime?: string | number;
}

/**
 * `agent`: start from that agent's image snapshot (and follow it: after a rollout the next start uses the new one);
 * `snapshot`: start from that image snapshot (the workspace's own or a system one); neither: the built-in base.
 */
export type CreateSandboxInput = CreateSandboxCommon &
  ({ agent?: string; snapshot?: undefined } | { snapshot?: string; agent?: undefined });

/** The image snapshot a new sandbox starts from, with the agent it follows. */
interface ChosenBase {
  snapshot: Snapshot;
  agentId?: string;
}

/** A job as a caller sends it: the command, and how long it may run (e.g. "10m"; default 30 minutes). */
export type JobInput = Omit<JobRequest, 'actor' | 'timeoutMs'> & { timeout?: string | number };

export interface RunJobOptions {
  /** Output as the job writes it, byte for byte from the job's log (chunks' data are Buffers then). */
  onOutput?: (chunk: OutputChunk) => void;
  /** The sandbox was stopped and starts again for this job: where it starts from, before any of the job's output. */
  onResumed?: (from: RestoreDecision) => void;
  /** Also wait for the session snapshot saved after the job, and fill in its id (or why it was not saved). */
  waitForSession?: boolean;
  /**
   * Aborting cancels the job: SIGTERM to its process group, SIGKILL after a grace; the result then says `cancelled`
   * (its log is kept, no session is saved) and the sandbox stays usable.
   */
  signal?: AbortSignal;
}

/** How often a running job's output is polled, and how long a job waits for the previous job's session save. */
const OUTPUT_POLL_MS = 200;
const SESSION_WAIT_MS = 10 * 60_000;

/** Turns an Update's refusal or failure into the SnapflowError the workflow typed (a sandbox that could not start
 * ends its workflow: its failure is the typed one the start raised). */
/** A fork's name is its sandbox id: a UUID the caller picks (so asking twice cannot make two). */
function checkForkName(name: unknown): string {
  try {
    return checkSandboxId(name);
  } catch {
    throw new SnapflowError({
      code: 'VALIDATION_FAILED',
      field: 'name',
      message: `fork name ${JSON.stringify(String(name)).slice(0, 80)} is not a sandbox id`,
      hint: 'a sandbox is named by its id: give a UUID (e.g. from `uuidgen`), or leave --name out for a fresh one',
    });
  }
}

function typed<T>(work: () => Promise<T>): Promise<T> {
  return typedCall(
    work,
    (err) =>
      new SnapflowError({ code: 'NOT_FOUND', field: 'sandbox', message: err.message, hint: 'list sandboxes with `snapflow sandbox list`' }),
  );
}

export class SandboxClient {
  constructor(
    private readonly temporal: Client,
    private readonly db: Db,
    private readonly config: Config,
  ) {}

  /** Validates, then starts the sandbox's entity workflow; it starts by the restore order (see explain). */
  async create(input: CreateSandboxInput): Promise<{ sandboxId: string; workflowId: string; status: SandboxStatus }> {
    const workspace = checkSandboxWorkspace(input.workspace);
    checkSandboxBase(input);
    const idleTimeout = checkSandboxDuration('idleTimeout', input.idleTimeout);
    const maxLifetime = checkSandboxDuration('maxLifetime', input.maxLifetime);
    await requireAccess(this.db, this.config, workspace, 'sandbox.create');
    const base = await this.chooseBase(workspace, input);
    const size = input.size ?? base?.snapshot.size;
    checkSandboxSpec({ ...input, size, runtime: input.runtime ?? base?.snapshot.runtime });
    const runtime = (input.runtime ?? base?.snapshot.runtime) as Runtime;
    const lifecycle = await this.lifecycleFor(workspace, { idleTimeout, maxLifetime });
    const sandboxId = randomUUID();
    const workflowId = workflowIds.sandbox(sandboxId);
    const start = new WithStartWorkflowOperation<typeof sandbox>('sandbox', {
      taskQueue: taskQueues.control,
      workflowId,
      workflowIdConflictPolicy: 'FAIL',
      args: [
        {
          sandboxId,
          workspace,
          class: input.class as 'vm' | 'container',
          size: size!,
          runtime,
          profileKey: profileKey({ runtime, size: size!, baseDigest: base?.snapshot.storedRef ?? undefined }),
          keepAlive: input.keepAlive ?? false,
          // The workflow saves the issue's row (created on first use) as it registers the sandbox.
          issue: input.issue,
          baseSnapshotId: base?.snapshot.id,
          agentId: base?.agentId,
          ...lifecycle,
          actor: this.config.actor,
        },
      ],
      staticSummary: `Sandbox **${sandboxId}** (${input.class}, ${size}, ${runtime}) in ${workspace}${base ? ` from ${input.agent ? `agent ${input.agent}, ` : ''}snapshot ${base.snapshot.name}` : ''}`,
      typedSearchAttributes: new TypedSearchAttributes([
        { key: searchAttributes.WorkspaceId, value: workspace },
        { key: searchAttributes.SandboxSize, value: size! },
        { key: searchAttributes.Runtime, value: runtime },
      ]),
    });
    return { sandboxId, workflowId, status: await this.startAndWait(start) };
  }

  /**
   * A new sandbox from `sandbox`'s latest session snapshot, or from its live state saved on the spot when it runs (it
   * keeps running and goes on independently). The fork has the source's class, size, runtime, base, issue and
   * keep-alive, and starts through the restore order like any sandbox; `name` is its id (default: a fresh one).
   */
  async fork(input: {
    sandbox: string;
    name?: string;
  }): Promise<{ sandboxId: string; workflowId: string; forkedFrom: ForkPoint & { sandboxId: string }; status: SandboxStatus }> {
    const sourceId = checkSandboxId(input.sandbox);
    const sandboxId = input.name === undefined ? randomUUID() : checkForkName(input.name);
    await this.canOn(sourceId, 'sandbox.fork');
    const source = await findSandbox(this.db, sourceId);
    if (!source)
      throw new SnapflowError({
        code: 'NOT_FOUND',
        field: 'sandbox',
        message: `sandbox ${sourceId} does not exist`,
        hint: 'list sandboxes with `snapflow sandbox list`',
      });
    await requireAccess(this.db, this.config, source.workspace, 'sandbox.create');
    if (await findSandbox(this.db, sandboxId))
      throw new SnapflowError({
        code: 'CONFLICT',
        field: 'name',
        message: `sandbox ${sandboxId} already exists`,
        hint: 'give the fork another --name (a UUID), or leave --name out for a fresh one',
      });
    const lifecycle = await this.lifecycleFor(source.workspace, {});
    const point = await this.afterSessionSave(sourceId, () =>
      typed(() =>
        this.temporal.workflow
          .getHandle(workflowIds.sandbox(sourceId))
          // One fork point per fork name: a caller that died after the save and asks again gets the same one.
          .executeUpdate(forkUpdate, { updateId: `fork/${sandboxId}`, args: [{ forkId: sandboxId, actor: this.config.actor }] }),
      ),
    );
    const workflowId = workflowIds.sandbox(sandboxId);
    const start = new WithStartWorkflowOperation<typeof sandbox>('sandbox', {
      taskQueue: taskQueues.control,
      workflowId,
      workflowIdConflictPolicy: 'FAIL',
      args: [
        {
          sandboxId,
          workspace: source.workspace,
          class: source.class,
          size: source.size,
          runtime: source.runtime,
          profileKey: source.profileKey,
          keepAlive: source.keepAlive,
          issueId: source.issueId ?? undefined,
          baseSnapshotId: source.baseSnapshotId ?? undefined,
          agentId: source.agentId ?? undefined,
          forkedFromSnapshotId: point.snapshotId,
          ...lifecycle,
          actor: this.config.actor,
        },
      ],
      staticSummary: `Sandbox **${sandboxId}** (${source.class}, ${source.size}, ${source.runtime}) in ${source.workspace}, forked from sandbox ${sourceId}`,
      typedSearchAttributes: new TypedSearchAttributes([
        { key: searchAttributes.WorkspaceId, value: source.workspace },
        { key: searchAttributes.SandboxSize, value: source.size },
        { key: searchAttributes.Runtime, value: source.runtime },
      ]),
    });
    const status = await this.startAndWait(start);
    return { sandboxId, workflowId, forkedFrom: { ...point, sandboxId: sourceId }, status };
  }

  /**
   * Starts the workflow together with the `started` Update, which answers as soon as the sandbox has left
   * `provisioning`. When that Update gets no answer (the run ended first, or its worker predates the Update), the
   * status is polled as before, which also reports how the run ended.
   */
  private async startAndWait(start: WithStartWorkflowOperation<typeof sandbox>): Promise<SandboxStatus> {
    let status: SandboxStatus | undefined;
    try {
      status = await this.temporal.workflow.executeUpdateWithStart(startedUpdate, { startWorkflowOperation: start });
    } catch {
      // the start's own failure, if any, is thrown here
    }
    const handle = await start.workflowHandle();
    if (!status) return this.waitUntilStarted(handle.workflowId);
    if (status.state === 'failed') await typed(() => handle.result());
    return status;
  }

  /** The agent's snapshot or the named one: active and in snapshot storage (hosts pull it from there); undefined: built-in base. */
  private async chooseBase(workspace: string, input: CreateSandboxInput): Promise<ChosenBase | undefined> {
    if (input.agent === undefined && input.snapshot === undefined) return undefined;
    let agentId: string | undefined;
    let snapshot: Snapshot;
    if (input.agent !== undefined) {
      const agent = await findAgent(this.db, { workspace, name: input.agent });
      agentId = agent.id;
      snapshot = await findAgentSnapshot(this.db, { workspace, snapshotId: agent.snapshotId });
    } else {
      snapshot = await findAgentSnapshot(this.db, { workspace, name: input.snapshot! });
    }
    if (!snapshot.storedRef)
      throw new SnapflowError({
        code: 'VALIDATION_FAILED',
        field: input.agent !== undefined ? 'agent' : 'snapshot',
        message: `snapshot ${snapshot.name} is not in snapshot storage, so no host can start a sandbox from it`,
        hint: 'start from an image snapshot (`snapflow snapshot create`), which is stored when it becomes active',
      });
    return { snapshot, agentId };
  }

  /** The sandbox's own timeouts, else its workspace's defaults, else the built-in ones. */
  private async lifecycleFor(
    workspace: string,
    own: { idleTimeout?: number; maxLifetime?: number },
  ): Promise<{ idleTimeoutMs: number; maxLifetimeMs: number }> {
    const stored = await sandboxDefaults(this.db, workspace);
    const seconds = (v: number | null | undefined) => (v ? v * 1000 : undefined);
    return {
      idleTimeoutMs: own.idleTimeout ?? seconds(stored.idleTimeoutSeconds) ?? SANDBOX_DEFAULTS.idleTimeoutMs,
      maxLifetimeMs: own.maxLifetime ?? seconds(stored.maxLifetimeSeconds) ?? SANDBOX_DEFAULTS.maxLifetimeMs,
    };
  }

  /** A fresh sandbox is `provisioning` until the restore order has placed it; wait (bounded) for that. */
  private async waitUntilStarted(workflowId: string): Promise<SandboxStatus> {
    const handle = this.temporal.workflow.getHandle(workflowId);
    for (let i = 0; i < 600; i++) {
      const status = await handle.query(sandboxStatusQuery).catch(() => undefined);
      if (status && status.state !== 'provisioning') {
        if (status.state === 'failed') await typed(() => handle.result());
        return status;
      }
      const { status: run } = await handle.describe();
      if (run.name !== 'RUNNING') await typed(() => handle.result());
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new SnapflowError({
      code: 'TIMED_OUT',
      message: `sandbox workflow ${workflowId} did not start within 60s`,
      hint: 'is a host worker running? `snapflow doctor`',
    });
  }

  /**
   * Runs a job; a stopped sandbox starts again first (the result says from where). The answer comes as soon as the
   * job ends; a `vm` sandbox saves its session after, and the next job waits for that save (bounded) instead of failing.
   */
  async runJob(sandboxId: string, job: JobInput, options: RunJobOptions = {}): Promise<JobResult> {
    const id = checkSandboxId(sandboxId);
    checkJob(job);
    const timeoutMs = checkSandboxDuration('timeout', job.timeout);
    await this.canOn(id, 'sandbox.job');
    const handle = this.temporal.workflow.getHandle(workflowIds.sandbox(id));
    const request: JobRequest = {
      command: job.command,
      env: job.env,
      workdir: job.workdir,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      actor: this.config.actor,
    };
    const reader = new OutputReader();
    // The job's log is the next one of this sandbox: followed from the store as soon as it opens.
    const previous = options.onOutput ? ((await lastJobLog(this.db, id))?.job ?? 0) : 0;
    let ended = false;
    let streamed = false;
    const follower = options.onOutput
      ? this.followNextLog(
          id,
          previous,
          () => ended,
          async (chunk) => {
            // Where a stopped sandbox started from is said before its job's first byte (the start preceded the job).
            if (!streamed && wasStopped && !resumedSaid)
              sayResumed((await handle.query(sandboxStatusQuery).catch(() => undefined))?.lastStart);
            streamed = true;
            if (chunk.stream !== 'note') options.onOutput!({ stream: chunk.stream, data: chunk.data });
          },
        )
      : Promise.resolve();
    let resumedSaid = false;
    const sayResumed = (from?: RestoreDecision) => {
      if (!from || resumedSaid) return;
      resumedSaid = true;
      options.onResumed?.(from);
    };
    const emit = (chunks: OutputChunk[]) => chunks.forEach((c) => options.onOutput?.(c));
    // Sent again every second until the job answers: a cancel that came before the job started waits for it.
    let cancelTimer: NodeJS.Timeout | undefined;
    const cancel = () => {
      const send = () => void handle.signal(cancelJobSignal, {}).catch(() => undefined);
      send();
      cancelTimer = setInterval(send, 1_000);
    };
    if (options.signal?.aborted) cancel();
    else options.signal?.addEventListener('abort', cancel, { once: true });
    const wasStopped = Boolean(options.onResumed) && (await handle.query(sandboxStatusQuery).catch(() => undefined))?.state === 'stopped';
    const result = await this.afterSessionSave(id, () =>
      typed(async () => {
        const update = handle.executeUpdate(runJobUpdate, { args: [request] });
        if (!options.onOutput) return update;
        return this.streamOutput(handle, update, async (p) => {
          if (wasStopped && !resumedSaid) sayResumed((await handle.query(sandboxStatusQuery).catch(() => undefined))?.lastStart);
          void p;
        });
      }),
    )
      .catch(async (err: unknown) => {
        ended = true;
        await follower;
        // A job that timed out carries its output: without a log (a host that keeps none) that is all there is.
        if (!streamed && err instanceof SnapflowError && err.output) emit(reader.fromResult(err.output));
        throw err;
      })
      .finally(() => {
        ended = true;
        clearInterval(cancelTimer);
        options.signal?.removeEventListener('abort', cancel);
      });
    await follower;
    sayResumed(result.resumedFrom);
    if (!streamed) emit(reader.fromResult(result));
    if (!options.waitForSession || !result.sessionPending) return result;
    const { lastSession } = await this.waitWhileSnapshotting(id);
    if (lastSession?.sequence !== result.sequence) return result;
    return { ...result, sessionPending: false, sessionSnapshotId: lastSession.sessionSnapshotId, sessionError: lastSession.sessionError };
  }

  /**
   * A job's output, whole: its log in the store, read as it grows with `follow`. `job` is the job's sequence number
   * in the sandbox; without it, the last job. `since`: a duration back from now (`10m`) or an ISO time.
   */
  async *logs(
    sandboxId: string,
    opts: { job?: number; follow?: boolean; since?: string | Date; signal?: AbortSignal } = {},
  ): AsyncGenerator<LogChunk> {
    const id = checkSandboxId(sandboxId);
    if (opts.job !== undefined && !(Number.isInteger(opts.job) && opts.job > 0))
      throw new SnapflowError({
        code: 'VALIDATION_FAILED',
        field: 'job',
        message: `job must be a job's number in the sandbox (1, 2, …), not ${JSON.stringify(opts.job)}`,
        hint: 'leave it out for the last job',
      });
    const since = parseSince(opts.since);
    await this.canOn(id, 'snapshot.read');
    const log = opts.job !== undefined ? await findLog(this.db, jobLogId(id, opts.job)) : await lastJobLog(this.db, id);
    if (!log)
      throw new SnapflowError({
        code: 'NOT_FOUND',
        field: 'job',
        message: opts.job !== undefined ? `sandbox ${id} has no log of job ${opts.job}` : `sandbox ${id} has no job logs yet`,
        hint: 'run a job with `snapflow sandbox run`; logs are kept for SNAPFLOW_LOG_RETENTION_DAYS',
      });
    yield* readLog(this.db, log.id, { follow: opts.follow, since, signal: opts.signal });
  }

  /** Waits for the sandbox's first job log after `previous` and follows it to its close; gives up once `ended()` finds none. */
  private async followNextLog(
    sandboxId: string,
    previous: number,
    ended: () => boolean,
    onChunk: (c: LogChunk) => void | Promise<void>,
  ): Promise<void> {
    for (;;) {
      const finished = ended();
      const log = await lastJobLog(this.db, sandboxId);
      if (log && (log.job ?? 0) > previous) {
        for await (const chunk of readLog(this.db, log.id, { follow: true })) await onChunk(chunk);
        return;
      }
      if (finished) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Polls the running exec activity's heartbeats (decoded like any payload) until the job's answer is in. */
  private async streamOutput<T>(
    handle: ReturnType<Client['workflow']['getHandle']>,
    update: Promise<T>,
    onProgress: (p: JobOutputProgress) => Promise<void>,
  ): Promise<T> {
    let done = false;
    const finished = update.finally(() => (done = true));
    finished.catch(() => undefined);
    while (!done) {
      const described = await handle.describe().catch(() => undefined);
      for (const activity of described?.raw.pendingActivities ?? []) {
        if (!JOB_ACTIVITY_NAMES.includes(activity.activityType?.name ?? '') || !activity.heartbeatDetails?.payloads?.length) continue;
        const [progress] = await decodeArrayFromPayloads(this.temporal.options.loadedDataConverter, activity.heartbeatDetails.payloads);
        if ((progress as JobOutputProgress | undefined)?.stdout) await onProgress(progress as JobOutputProgress);
      }
      await Promise.race([finished.catch(() => undefined), new Promise((r) => setTimeout(r, OUTPUT_POLL_MS))]);
    }
    return finished;
  }

  /**
   * Sent again when it was refused only because the sandbox was saving a session (`snapshotting`), up to
   * SESSION_WAIT_MS: back-to-back calls wait for the save. A refusal for a running job or promotion stays one.
   */
  private async afterSessionSave<T>(sandboxId: string, send: () => Promise<T>): Promise<T> {
    const until = Date.now() + SESSION_WAIT_MS;
    for (;;) {
      try {
        return await send();
      } catch (err) {
        const saving = err instanceof SnapflowError && err.code === 'SANDBOX_BUSY' && err.message.includes(' is snapshotting');
        if (!saving || Date.now() > until) throw err;
        await this.waitWhileSnapshotting(sandboxId, until);
      }
    }
  }

  /** Until the sandbox leaves `snapshotting` (its session is saved), bounded; returns its status then. */
  async waitWhileSnapshotting(sandboxId: string, until = Date.now() + SESSION_WAIT_MS): Promise<SandboxStatus> {
    const handle = this.temporal.workflow.getHandle(workflowIds.sandbox(checkSandboxId(sandboxId)));
    for (;;) {
      const status = await typed(() => handle.query(sandboxStatusQuery));
      if (status.state !== 'snapshotting' || Date.now() > until) return status;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async promote(sandboxId: string, input: { name: string; setDefault?: boolean }): Promise<PromoteResult> {
    const id = checkSandboxId(sandboxId);
    if (!this.config.storage) throw storageNotConfigured();
    checkPromotedName(input.name);
    checkFlag('setDefault', input.setDefault);
    await this.canOn(id, 'sandbox.promote');
    return this.afterSessionSave(id, () =>
      typed(() =>
        this.temporal.workflow
          .getHandle(workflowIds.sandbox(id))
          .executeUpdate(promoteUpdate, { args: [{ name: input.name, setDefault: input.setDefault, actor: this.config.actor }] }),
      ),
    );
  }

  async resume(sandboxId: string): Promise<SandboxStatus> {
    const id = checkSandboxId(sandboxId);
    await this.canOn(id, 'sandbox.resume');
    return this.afterSessionSave(id, () =>
      typed(() =>
        this.temporal.workflow.getHandle(workflowIds.sandbox(id)).executeUpdate(resumeUpdate, { args: [{ actor: this.config.actor }] }),
      ),
    );
  }

  async destroy(sandboxId: string): Promise<SandboxStatus> {
    const id = checkSandboxId(sandboxId);
    await this.canOn(id, 'sandbox.destroy');
    return this.afterSessionSave(id, () =>
      typed(() =>
        this.temporal.workflow.getHandle(workflowIds.sandbox(id)).executeUpdate(destroyUpdate, { args: [{ actor: this.config.actor }] }),
      ),
    );
  }

  async status(sandboxId: string): Promise<SandboxStatus> {
    const id = checkSandboxId(sandboxId);
    await this.canOn(id, 'snapshot.read');
    return typed(() => this.temporal.workflow.getHandle(workflowIds.sandbox(id)).query(sandboxStatusQuery));
  }

  /** Where the sandbox would start now, and why each earlier step of the order was skipped (read-only). */
  async explain(sandboxId: string): Promise<RestoreDecision> {
    const id = checkSandboxId(sandboxId);
    await this.canOn(id, 'snapshot.read');
    try {
      return chooseRestore(await readRestoreInput(this.db, { sandboxId: id }));
    } catch (err) {
      throw err instanceof SnapflowError ? err : new SnapflowError(describeFailure(err));
    }
  }

  async list(workspace: string): Promise<Sandbox[]> {
    workspace = checkSandboxWorkspace(workspace);
    await requireAccess(this.db, this.config, workspace, 'snapshot.read');
    return listSandboxes(this.db, workspace);
  }

  /** Access on a sandbox is access on its workspace; an unknown id is NOT_FOUND (nothing about others leaks). */
  private async canOn(sandboxId: string, action: Action): Promise<void> {
    const workspace = await sandboxScope(this.db, sandboxId);
    // A sandbox whose workflow has not registered its row yet is still being created: the workflow decides.
    if (workspace) await requireAccess(this.db, this.config, workspace, action);
  }

  async pin(input: { workspace: string; issue: string; snapshot: string }): Promise<{ issueId: string; snapshotId: string }> {
    const workspace = checkSandboxWorkspace(input.workspace);
    checkIssueKey(input.issue);
    checkPinnedSnapshot(input.snapshot);
    // Asked before the workflow starts, as the catalog did: a refused pin writes nothing (not even an audit row).
    await requireAccess(this.db, this.config, workspace, 'issue.pin');
    await pinTarget(this.db, { workspace, snapshotName: input.snapshot });
    const pinned = await this.pinRun({ workspace, issue: input.issue, snapshot: input.snapshot, actor: this.config.actor });
    return { issueId: pinned.issueId!, snapshotId: pinned.snapshotId! };
  }

  async unpin(input: { workspace: string; issue: string }): Promise<void> {
    const workspace = checkSandboxWorkspace(input.workspace);
    checkIssueKey(input.issue);
    await requireAccess(this.db, this.config, workspace, 'issue.pin');
    await requireIssue(this.db, { workspace, issue: input.issue });
    await this.pinRun({ workspace, issue: input.issue, actor: this.config.actor });
  }

  /** Pins go through a workflow like every write: `issue.pin` is decided and audited there. */
  private pinRun(request: IssuePinRequest): Promise<IssuePinResult> {
    return typed(() =>
      this.temporal.workflow.execute<typeof pinIssue>('pinIssue', {
        taskQueue: taskQueues.control,
        workflowId: workflowIds.issuePin(request.workspace, request.issue, request.snapshot),
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowExecutionTimeout: '1 minute',
        args: [request],
      }),
    );
  }
}
