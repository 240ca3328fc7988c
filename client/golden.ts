// Golden snapshots for services and the CLI: config (with its Temporal Schedule), build now, defaults.
import { sql } from 'drizzle-orm';
import { goldenBuilds } from '../db/schema';
import { findLog, goldenLogId, type LogChunk } from '../catalog/logs';
import { readLog } from './logs';
import { randomUUID } from 'node:crypto';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type Client,
  type ScheduleOptionsAction,
  type ScheduleSpec,
} from '@temporalio/client';
import { TypedSearchAttributes, type Duration } from '@temporalio/common';
import type { Db } from '../db/client';
import { findDefault, listDefaults, previousDefault, type DefaultState, type DefaultWithHistory } from '../catalog/defaults';
import {
  findBuildConfig,
  latestBuildId,
  listBuilds,
  saveBuildConfig,
  findBuildBase,
  type GoldenBuild,
  type GoldenBuildConfig,
} from '../catalog/golden';
import { findLiveSnapshot } from '../catalog/snapshots';
import type { Config } from '../lib/config';
import { SnapflowError, describeFailure, storageNotConfigured } from '../lib/errors';
import { requireAccess, requireRunAccess } from './access';
import { validateGoldenConfig, type GoldenConfigInput } from '../lib/goldenConfig';
import { scheduleIds, taskQueues, workflowIds } from '../lib/ids';
import { profileKey, type Runtime } from '../lib/presets';
import { screenText, validateField } from '../lib/validation';
import type { GoldenBuildResult, buildGoldenSnapshot, setDefaultSnapshot } from '../workflows';
import { searchAttributes } from './searchAttributes';
import { SCHEDULE_CLAIM_TTL_SECONDS, signClaim, type ActorClaim } from '../lib/actorClaim';

export interface ScheduleState {
  scheduleId: string;
  paused: boolean;
  timeZone: string;
  nextRuns: Date[];
  recentRuns: Array<{ scheduledAt: Date; workflowId?: string }>;
}

/** default_pointers.version is a Postgres integer: a larger expected version can never match, so nothing starts. */
const MAX_VERSION = 2_147_483_647;

export class GoldenClient {
  constructor(
    private readonly temporal: Client,
    private readonly db: Db,
    private readonly config: Config,
  ) {}

  /** Every golden command says so plainly, and starts nothing, when storage is not configured. */
  private assertStorage(): void {
    if (!this.config.storage) throw storageNotConfigured();
  }

  async setConfig(input: GoldenConfigInput): Promise<{ config: GoldenBuildConfig; schedule?: ScheduleState }> {
    this.assertStorage();
    const v = validateGoldenConfig(input, this.config.preload);
    // The schedule is synced inside the catalog's transaction: if Temporal refuses it, the config row is not changed either.
    const config = await saveBuildConfig(this.db, this.config, v, (written) => this.syncSchedule(written));
    return { config, schedule: (await this.scheduleState(v.workspace)) ?? undefined };
  }

  async getConfig(workspace: string): Promise<GoldenBuildConfig> {
    workspace = validateField('workspace', workspace);
    await requireAccess(this.db, this.config, workspace, 'snapshot.read');
    const config = await findBuildConfig(this.db, workspace);
    if (!config)
      throw new SnapflowError({
        code: 'NOT_FOUND',
        field: 'workspace',
        message: `no golden build config for ${workspace}`,
        hint: `snapflow golden config set --workspace ${workspace} --target small:codex`,
      });
    return config;
  }

  /**
   * A golden build's log: each preload step (clones, skills, the dependency build's own output) and how it ended.
   * `build` is the build's id, or its first 8 or more characters.
   */
  async *logs(input: { build: string; follow?: boolean; signal?: AbortSignal }): AsyncGenerator<LogChunk> {
    const build = String(input.build ?? '').toLowerCase();
    if (!/^[0-9a-f-]{8,36}$/.test(build))
      throw new SnapflowError({
        code: 'VALIDATION_FAILED',
        field: 'build',
        message: `build must be a golden build's id (or its first 8 characters), not ${JSON.stringify(String(input.build).slice(0, 60))}`,
        hint: 'the id `golden build` printed, e.g. 3f2a9c0d',
      });
    const rows = await this.db
      .select({ id: goldenBuilds.id, workspace: goldenBuilds.workspace })
      .from(goldenBuilds)
      .where(sql`${goldenBuilds.id}::text like ${`${build}%`}`)
      .limit(2);
    if (rows.length > 1)
      throw new SnapflowError({
        code: 'VALIDATION_FAILED',
        field: 'build',
        message: `${build} names more than one build`,
        hint: 'give more of its id',
      });
    const row = rows[0];
    if (row) await requireAccess(this.db, this.config, row.workspace, 'snapshot.read');
    const log = row && (await findLog(this.db, goldenLogId(row.id)));
    if (!log)
      throw new SnapflowError({
        code: 'NOT_FOUND',
        field: 'build',
        message: row ? `golden build ${row.id} has no log yet` : `no golden build ${build}`,
        hint: 'list recent builds with `snapflow golden config get`',
      });
    yield* readLog(this.db, log.id, { follow: input.follow, signal: input.signal });
  }

  /** Build now; while a build for the workspace runs, a second request joins it instead of starting another. */
  async buildNow(input: { workspace: string }): Promise<{ workflowId: string; buildId: string; joined: boolean }> {
    this.assertStorage();
    await this.getConfig(input.workspace);
    await requireAccess(this.db, this.config, input.workspace, 'golden.build');
    const workflowId = workflowIds.goldenBuild(input.workspace);
    const buildId = randomUUID();
    const handle = await this.temporal.workflow.start<typeof buildGoldenSnapshot>('buildGoldenSnapshot', {
      taskQueue: taskQueues.control,
      workflowId,
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowExecutionTimeout: '2 hours',
      args: [{ workspace: input.workspace, trigger: 'build-now', actor: this.config.actor, buildId }],
      staticSummary: `Golden build for **${input.workspace}** (build now)`,
      typedSearchAttributes: new TypedSearchAttributes([
        { key: searchAttributes.SnapshotKind, value: 'golden' },
        { key: searchAttributes.WorkspaceId, value: input.workspace },
      ]),
    });
    const joined = handle.firstExecutionRunId !== undefined && !(await this.isOwnRun(workflowId, buildId));
    return { workflowId, buildId, joined };
  }

  async waitForBuild(workflowId: string): Promise<GoldenBuildResult> {
    await requireRunAccess(
      this.temporal,
      this.db,
      this.config,
      screenText('workflowId', workflowId, 'the workflow id `golden build` printed', 300),
    );
    try {
      return (await this.temporal.workflow.getHandle(workflowId).result()) as GoldenBuildResult;
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new SnapflowError(describeFailure(err));
      throw err;
    }
  }

  /**
   * Compare-and-set: with `expectedVersion` (the version the caller last saw, e.g. from the previous set-default) the change
   * applies only if nobody moved the default since; without it, against the version read just now.
   */
  async setDefault(input: { workspace: string; name: string; reason?: string; expectedVersion?: number }): Promise<DefaultState> {
    this.assertStorage();
    validateField('workspace', input.workspace);
    validateField('name', input.name);
    if (input.reason !== undefined) screenText('reason', input.reason, 'one line of text, e.g. --reason "roll out v3"', 500);
    if (
      input.expectedVersion !== undefined &&
      !(Number.isSafeInteger(input.expectedVersion) && input.expectedVersion >= 0 && input.expectedVersion <= MAX_VERSION)
    ) {
      throw new SnapflowError({
        code: 'VALIDATION_FAILED',
        field: 'expectedVersion',
        message: `expected version ${String(input.expectedVersion).slice(0, 20)} is not a whole number ≥ 0`,
        hint: 'pass the version the last set-default printed, e.g. --expect-version 3',
      });
    }
    await requireAccess(this.db, this.config, input.workspace, 'golden.set-default');
    const snapshot = await findLiveSnapshot(this.db, { workspace: input.workspace, name: input.name });
    if (!snapshot)
      throw new SnapflowError({ code: 'NOT_FOUND', field: 'name', message: `no snapshot "${input.name}" in ${input.workspace}` });
    const pointer = await findDefault(this.db, { workspace: input.workspace, size: snapshot.size, profileKey: snapshot.profileKey });
    return this.compareAndSet({
      workspace: input.workspace,
      size: snapshot.size,
      profileKey: snapshot.profileKey,
      snapshotId: snapshot.id,
      expectedVersion: input.expectedVersion ?? pointer?.version ?? 0,
      actor: this.config.actor,
      reason: input.reason ?? 'set-default',
    });
  }

  /** Back to the snapshot the current default replaced. */
  /** `base`: the image snapshot the defaults were built on (their profile names its digest); default the built-in base. */
  async rollback(input: { workspace: string; size: string; runtime: Runtime; base?: string }): Promise<DefaultState> {
    this.assertStorage();
    validateField('workspace', input.workspace);
    const [runtime, size] = [validateField('runtime', input.runtime) as Runtime, validateField('size', input.size)];
    await requireAccess(this.db, this.config, input.workspace, 'golden.set-default');
    const base = input.base === undefined ? undefined : await findBuildBase(this.db, { workspace: input.workspace, name: input.base });
    const key = profileKey({ runtime, size, baseDigest: base?.storedRef });
    const previous = await previousDefault(this.db, { workspace: input.workspace, size: input.size, profileKey: key });
    return this.compareAndSet({
      workspace: input.workspace,
      size: input.size,
      profileKey: key,
      snapshotId: previous.snapshotId,
      expectedVersion: previous.version,
      actor: this.config.actor,
      reason: 'rollback',
    });
  }

  async scheduleState(workspace: string): Promise<ScheduleState | null> {
    workspace = validateField('workspace', workspace);
    await requireAccess(this.db, this.config, workspace, 'snapshot.read');
    try {
      const d = await this.temporal.schedule.getHandle(scheduleIds.golden(workspace)).describe();
      return {
        scheduleId: d.scheduleId,
        paused: d.state.paused,
        timeZone: d.spec.timezone ?? 'UTC',
        nextRuns: d.info.nextActionTimes.slice(0, 5),
        recentRuns: d.info.recentActions.map((a) => ({
          scheduledAt: a.scheduledAt,
          workflowId: a.action.type === 'startWorkflow' ? a.action.workflow.workflowId : undefined,
        })),
      };
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return null;
      throw err;
    }
  }

  /** Every default (one per size/profile) with its recent history: what rollback would go back to. */
  async defaults(workspace: string): Promise<DefaultWithHistory[]> {
    workspace = validateField('workspace', workspace);
    await requireAccess(this.db, this.config, workspace, 'snapshot.read');
    return listDefaults(this.db, { workspace });
  }

  async recentBuilds(workspace: string, limit = 10): Promise<GoldenBuild[]> {
    workspace = validateField('workspace', workspace);
    await requireAccess(this.db, this.config, workspace, 'snapshot.read');
    return listBuilds(this.db, { workspace, limit });
  }

  private async compareAndSet(req: Parameters<typeof setDefaultSnapshot>[0]): Promise<DefaultState> {
    try {
      // The answer is this caller's own run's: the id is reused by the next caller once a run has closed, and
      // awaiting by id alone could report that caller's CONFLICT to the one whose write won. A version that a
      // run has taken is not started again; one whose run failed may be tried again.
      const run = await this.temporal.workflow.start<typeof setDefaultSnapshot>('setDefaultSnapshot', {
        taskQueue: taskQueues.control,
        workflowId: workflowIds.setDefault(req.workspace, req.size, req.profileKey, req.expectedVersion + 1),
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
        workflowExecutionTimeout: '1 minute',
        args: [req],
      });
      return await run.result();
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new SnapflowError({
          code: 'CONFLICT',
          message: `another set-default for ${req.workspace} ${req.size} ${req.profileKey} is in progress or has changed it`,
          hint: 'look at the new default, then try again',
        });
      }
      if (err instanceof WorkflowFailedError) throw new SnapflowError(describeFailure(err));
      throw err;
    }
  }

  private async isOwnRun(workflowId: string, buildId: string): Promise<boolean> {
    const latest = await latestBuildId(this.db, workflowId);
    return latest === undefined || latest === buildId;
  }

  /** A Schedule's runs are `<its workflow id>-<time>`: its claim vouches for that prefix, for as long as the schedule lives. */
  private scheduleClaim(workspace: string): { claim?: ActorClaim } {
    if (!this.config.actorKey) return {};
    const workflowId = workflowIds.goldenScheduledBuild(workspace);
    return {
      claim: signClaim(this.config.actorKey, {
        actor: this.config.actor,
        workspace,
        workflowId,
        prefix: true,
        ttlSeconds: SCHEDULE_CLAIM_TTL_SECONDS,
      }),
    };
  }

  /** The config's schedule in Temporal: created, updated, paused (disabled) or deleted (no schedule). */
  private async syncSchedule(config: GoldenBuildConfig): Promise<void> {
    const scheduleId = scheduleIds.golden(config.workspace);
    const handle = this.temporal.schedule.getHandle(scheduleId);
    if (!config.scheduleCron) {
      await handle.delete().catch((err: unknown) => {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      });
      return;
    }
    const spec: ScheduleSpec = { cronExpressions: [config.scheduleCron], timezone: config.scheduleTimeZone };
    const action: ScheduleOptionsAction = {
      type: 'startWorkflow',
      workflowType: 'buildGoldenSnapshot',
      taskQueue: taskQueues.control,
      workflowId: workflowIds.goldenScheduledBuild(config.workspace),
      // Runs as whoever set the config: a build is refused if they are no longer an admin of a paid workspace.
      args: [{ workspace: config.workspace, trigger: 'schedule', actor: this.config.actor, ...this.scheduleClaim(config.workspace) }],
      workflowExecutionTimeout: '2 hours',
      typedSearchAttributes: new TypedSearchAttributes([
        { key: searchAttributes.SnapshotKind, value: 'golden' },
        { key: searchAttributes.WorkspaceId, value: config.workspace },
      ]),
    };
    const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' as Duration };
    const note = `daily golden build for ${config.workspace}`;
    try {
      await this.temporal.schedule.create({ scheduleId, spec, action, policies, state: { paused: !config.enabled, note } });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await handle.update((previous) => ({
        ...previous,
        spec,
        action,
        policies,
        state: { ...previous.state, paused: !config.enabled, note },
      }));
    }
  }
}
