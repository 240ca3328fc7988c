// Image snapshots for services: validate before anything is written, decide reuse vs replace, start or join
// the one workflow for (workspace, name), and read the catalog for list/get.
import { findLog, logTail, snapshotLogId, type LogChunk } from '../catalog/logs';
import { readLog } from './logs';
import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type Client } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import type { Db } from '../db/client';
import { SNAPSHOT_KINDS, SNAPSHOT_STATUSES } from '../lib/vocabulary';
import { connectHint, readConnection } from '../catalog/connections';
import { describeUsage, inUse, unusedSnapshots, usageOf } from '../catalog/retirement';
import {
  findLiveSnapshot,
  listSnapshotEvents,
  listSnapshotSteps,
  listSnapshots,
  countSnapshots,
  sameSpec,
  snapshotNames,
  type Snapshot,
  type SnapshotEvent,
} from '../catalog/snapshots';
import type { Action } from '../lib/authz';
import type { Config } from '../lib/config';
import { SnapflowError, describeFailure } from '../lib/errors';
import { requireAccess, requireRunAccess } from './access';
import { searchAttributes } from './searchAttributes';
import { taskQueues, workflowIds } from '../lib/ids';
import { localAddresses, resolveAll } from '../lib/hostResolver';
import { quoteInput } from '../lib/imageRef';
import { refuseStorageSource } from '../lib/registryAddress';
import {
  checkRolloutOptions,
  nextVersionedName,
  screenText,
  validateCreateImageSnapshot,
  validateField,
  validationError,
  type CreateImageSnapshotInput,
  type RolloutOptionsInput,
} from '../lib/validation';
import type { ImageSnapshotRequest, ImageSnapshotResult, createImageSnapshot, deleteSnapshot } from '../workflows';

export interface CreateSnapshotOptions extends CreateImageSnapshotInput {
  /** Create the next versioned name and move defaults, pins and agents to it, instead of refusing a changed spec. */
  replace?: boolean;
  /** With `replace`: the old snapshot's agents move through a canary rollout (client/agents.ts) once it is active. */
  rollout?: RolloutOptionsInput;
}

export interface CreatedSnapshot {
  snapshotId: string;
  name: string;
  workflowId: string;
  status: 'pending' | 'active';
  /** An existing snapshot with the same spec was returned instead of building a new one. */
  reused: boolean;
  replaces?: string;
}

export interface SnapshotDetails {
  snapshot: Snapshot;
  events: SnapshotEvent[];
  uiLink?: string;
  /** A failed build: the step it failed in, and the last lines of its build log (`snapshot logs` has all of it). */
  failedStep?: string;
  logTail?: string;
}

const conflict = (message: string, hint: string): SnapflowError => new SnapflowError({ code: 'CONFLICT', field: 'name', message, hint });

/** A list filter: absent, or one of the values the catalog can hold. */
function filter(field: string, value: unknown, choices: readonly string[]): string | undefined {
  if (value === undefined) return undefined;
  const hint = `use one of: ${choices.join(', ')}`;
  const text = screenText(field, value, hint, 64);
  if (!choices.includes(text)) throw validationError(field, `${field} ${quoteInput(text)} is not one of them`, hint);
  return text;
}
/** A page size: a whole number from 1 (a list with no limit is asked for by leaving it out). */
function checkLimit(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    throw validationError(
      'limit',
      `limit ${typeof value === 'number' ? String(value) : `of type ${typeof value}`} is not a whole number ≥ 1`,
      'e.g. --limit 50, or --all for every one',
    );
  return value;
}

/** Prune looks back at most this far: a bigger number is a typo, and overflows the database's interval. */
const MAX_UNUSED_DAYS = 36_500;

export class SnapshotClient {
  constructor(
    private readonly temporal: Client,
    private readonly db: Db,
    private readonly config: Config,
    private readonly uiLink: (workflowId: string, runId?: string) => string,
  ) {}

  async create(options: CreateSnapshotOptions): Promise<CreatedSnapshot> {
    const storage = this.config.storage;
    const v = validateCreateImageSnapshot(options, { storage });
    // Names too, by their addresses here; the host worker checks again where its engine would pull.
    if (storage)
      await refuseStorageSource({
        image: v.imageRef,
        registry: v.image.registry,
        storage,
        resolve: resolveAll,
        localAddresses: localAddresses(),
      });
    if (options.rollout !== undefined && options.replace !== true)
      throw validationError(
        'rollout',
        'a rollout of agents goes with --replace',
        'pass --replace too, or start one later: snapflow agent rollout',
      );
    const agentRollout = options.rollout === undefined ? undefined : checkRolloutOptions(options.rollout ?? {});
    await this.can(v.workspace, 'snapshot.create');
    const live = await findLiveSnapshot(this.db, { workspace: v.workspace, name: v.name });
    const spec = { sourceImage: v.imageRef, runtime: v.runtime, entrypoint: v.entrypoint, size: v.size };
    let name = v.name;
    let replaces: string | undefined;
    if (live && live.status !== 'failed') {
      if (sameSpec(live, spec))
        return {
          snapshotId: live.id,
          name,
          workflowId: live.workflowId ?? '',
          status: live.status === 'active' ? 'active' : 'pending',
          reused: true,
        };
      const next = nextVersionedName(v.name, await snapshotNames(this.db, v.workspace));
      if (!options.replace) {
        throw conflict(
          `snapshot "${v.name}" already exists with a different ${differences(live, spec).join(', ')}; it is not changed in place`,
          `create "${next}" instead, or pass --replace to create "${next}" and move defaults and pins to it`,
        );
      }
      if (live.kind !== 'image')
        throw conflict(
          `${live.name} is a ${live.kind} snapshot; an image snapshot does not replace it`,
          'choose another name; golden defaults change with `snapflow golden set-default`',
        );
      await this.can(v.workspace, 'snapshot.replace');
      if (agentRollout) await this.can(v.workspace, 'agent.rollout');
      name = next;
      replaces = live.id;
    }
    if (v.image.registry === this.config.ghcrHost) await this.requireGithub(v.workspace);

    const snapshotId = randomUUID();
    const workflowId = workflowIds.imageSnapshot(v.workspace, name);
    const request: ImageSnapshotRequest = {
      snapshotId,
      workspace: v.workspace,
      name,
      image: v.image,
      imageRef: v.imageRef,
      entrypoint: v.entrypoint,
      runtime: v.runtime,
      size: v.size,
      profileKey: v.profileKey,
      requiresGithub: v.image.registry === this.config.ghcrHost,
      replaces,
      agentRollout: replaces ? agentRollout : undefined,
      actor: this.config.actor,
    };
    try {
      await this.temporal.workflow.start<typeof createImageSnapshot>('createImageSnapshot', {
        taskQueue: taskQueues.control,
        workflowId,
        workflowIdConflictPolicy: 'FAIL',
        workflowExecutionTimeout: '1 hour', // safety net beyond the run's own 45-minute deadline
        args: [request],
        staticSummary: `Image snapshot **${name}** (${v.workspace}) from \`${v.imageRef}\``,
        staticDetails: `runtime ${v.runtime}, size ${v.size}, entrypoint \`${v.entrypoint}\`${replaces ? `, replaces ${replaces}` : ''}`,
        typedSearchAttributes: new TypedSearchAttributes([
          { key: searchAttributes.SnapshotName, value: name },
          { key: searchAttributes.SnapshotKind, value: 'image' },
          { key: searchAttributes.WorkspaceId, value: v.workspace },
          { key: searchAttributes.SandboxSize, value: v.size },
          { key: searchAttributes.Runtime, value: v.runtime },
        ]),
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      // A concurrent create of the same name is running: join it if it asks for the same thing.
      const other = await this.startedRequest(workflowId);
      if (
        other &&
        sameSpec({ sourceImage: other.imageRef, runtime: other.runtime, entrypoint: other.entrypoint, size: other.size }, spec)
      ) {
        await this.untilRecorded(v.workspace, name, workflowId);
        return { snapshotId: other.snapshotId, name, workflowId, status: 'pending', reused: true, replaces: other.replaces };
      }
      throw conflict(
        `snapshot "${name}" is being created right now with a different spec`,
        'wait for it to finish, or choose another name',
      );
    }
    await this.untilRecorded(v.workspace, name, workflowId);
    return { snapshotId, name, workflowId, status: 'pending', reused: false, replaces };
  }

  /**
   * What the running create of this name was started with, read from its first history event: unlike a query it
   * needs no worker, so a busy host (first workflow task not yet taken) cannot turn a same-spec retry into CONFLICT.
   * Undefined when that run has already closed and its history cannot be read.
   */
  private async startedRequest(workflowId: string): Promise<ImageSnapshotRequest | undefined> {
    const { history } = await this.temporal.workflowService
      .getWorkflowExecutionHistory({ namespace: this.temporal.options.namespace, execution: { workflowId }, maximumPageSize: 1 })
      .catch(() => ({ history: undefined }));
    const payloads = history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
    if (!payloads?.length) return undefined;
    const [request] = await decodeArrayFromPayloads(this.temporal.options.loadedDataConverter, payloads);
    return request as ImageSnapshotRequest;
  }

  /**
   * The run's first step writes the pending row; create answers once it is there, so a read right after it finds
   * the snapshot. A run that ends before (refused, failed) answers its failure; with no worker taking the run the
   * wait is bounded and create answers pending all the same.
   */
  private async untilRecorded(workspace: string, name: string, workflowId: string, waitMs = 30_000): Promise<void> {
    const handle = this.temporal.workflow.getHandle(workflowId);
    const deadline = Date.now() + waitMs;
    for (let i = 0; Date.now() < deadline; i++) {
      if (await findLiveSnapshot(this.db, { workspace, name })) return;
      if (i % 4 === 3 && (await handle.describe()).status.name !== 'RUNNING') {
        try {
          await handle.result();
        } catch (err) {
          if (err instanceof WorkflowFailedError) throw new SnapflowError(describeFailure(err));
          throw err;
        }
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Awaits the run; `onStep` sees each step (resolve → pull → verify → boot → store) as it is recorded. */
  async wait(created: CreatedSnapshot, onStep?: (step: string, message: string) => void): Promise<ImageSnapshotResult> {
    if (created.status === 'active') return { snapshotId: created.snapshotId, status: 'active', reused: created.reused };
    await requireRunAccess(
      this.temporal,
      this.db,
      this.config,
      screenText('workflowId', created.workflowId, 'the workflow id `snapshot create` returned', 300),
    );
    const seen = new Set<number>();
    const poll = async (): Promise<void> => {
      const rows = await listSnapshotSteps(this.db, created.snapshotId);
      for (const r of rows) {
        if (seen.has(r.id)) continue;
        seen.add(r.id);
        onStep?.(r.type.slice(5), r.message ?? '');
      }
    };
    const timer = onStep ? setInterval(() => void poll().catch(() => undefined), 500) : undefined;
    try {
      return (await this.temporal.workflow.getHandle(created.workflowId).result()) as ImageSnapshotResult;
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new SnapflowError(describeFailure(err));
      throw err;
    } finally {
      clearInterval(timer);
      if (onStep) await poll().catch(() => undefined);
    }
  }

  async get(input: { workspace: string; name: string }): Promise<SnapshotDetails> {
    const workspace = validateField('workspace', input.workspace);
    const name = validateField('name', input.name);
    await this.can(workspace, 'snapshot.read');
    const snapshot = await findLiveSnapshot(this.db, { workspace, name });
    if (!snapshot)
      throw new SnapflowError({
        code: 'NOT_FOUND',
        field: 'name',
        message: `no snapshot "${input.name}" in ${input.workspace}`,
        hint: `list them: snapflow snapshot list --workspace ${input.workspace}`,
      });
    const events = await listSnapshotEvents(this.db, snapshot.id);
    const failed =
      snapshot.status === 'failed'
        ? {
            failedStep: [...events]
              .reverse()
              .find((e) => e.type.startsWith('step:'))
              ?.type.slice('step:'.length),
            logTail: (await logTail(this.db, snapshotLogId(snapshot.id))) || undefined,
          }
        : {};
    return {
      snapshot,
      events,
      uiLink: snapshot.workflowId ? this.uiLink(snapshot.workflowId, snapshot.runId ?? undefined) : undefined,
      ...failed,
    };
  }

  /** A snapshot's build log (its steps, the pull's and push's output, the outcome); `follow` while it builds. */
  async *logs(input: { workspace: string; name: string; follow?: boolean; signal?: AbortSignal }): AsyncGenerator<LogChunk> {
    const workspace = validateField('workspace', input.workspace);
    const name = validateField('name', input.name);
    await this.can(workspace, 'snapshot.read');
    const snapshot = await findLiveSnapshot(this.db, { workspace, name });
    const log = snapshot && (await findLog(this.db, snapshotLogId(snapshot.id)));
    if (!log)
      throw new SnapflowError({
        code: 'NOT_FOUND',
        field: 'name',
        message: snapshot
          ? `snapshot "${input.name}" has no build log (built before logs were kept, or past their retention)`
          : `no snapshot "${input.name}" in ${input.workspace}`,
        hint: `list them: snapflow snapshot list --workspace ${input.workspace}`,
      });
    yield* readLog(this.db, log.id, { follow: input.follow, signal: input.signal });
  }

  /** The workspace's live snapshots, newest first (every one; `page` for a limited list with the total). */
  async list(input: { workspace: string; status?: string; runtime?: string; size?: string; kind?: string }): Promise<Snapshot[]> {
    return (await this.page(input)).snapshots;
  }

  /** The first `limit` live snapshots, newest first, and how many match in all (no limit: every one). */
  async page(input: {
    workspace: string;
    status?: string;
    runtime?: string;
    size?: string;
    kind?: string;
    limit?: number;
  }): Promise<{ snapshots: Snapshot[]; total: number }> {
    const workspace = validateField('workspace', input.workspace);
    const status = filter('status', input.status, SNAPSHOT_STATUSES);
    const runtime = input.runtime === undefined ? undefined : validateField('runtime', input.runtime);
    const size = input.size === undefined ? undefined : validateField('size', input.size);
    const kind = filter('kind', input.kind, SNAPSHOT_KINDS);
    const limit = input.limit === undefined ? undefined : checkLimit(input.limit);
    await this.can(workspace, 'snapshot.read');
    const where = { workspace, status, runtime, size, kind };
    const rows = await listSnapshots(this.db, { ...where, limit });
    return { snapshots: rows, total: limit === undefined || rows.length < limit ? rows.length : await countSnapshots(this.db, where) };
  }

  /** Refused (CONFLICT, naming each user) while a default, a pin or a sandbox uses it; removes the stored image. */
  async delete(input: { workspace: string; name: string }): Promise<{ snapshotId: string; status: 'deleted' }> {
    const workspace = validateField('workspace', input.workspace);
    const name = validateField('name', input.name);
    await this.can(workspace, 'snapshot.delete');
    const snapshot = await findLiveSnapshot(this.db, { workspace, name });
    if (!snapshot)
      throw new SnapflowError({ code: 'NOT_FOUND', field: 'name', message: `no snapshot "${input.name}" in ${input.workspace}` });
    // Refused here, before a delete run is started only to fail: its build still owns the row.
    if (snapshot.status === 'pending')
      throw conflict(
        `snapshot ${input.name} is still being built`,
        `wait for it to become active or failed (snapflow snapshot get ${input.name} --workspace ${input.workspace}), then delete it`,
      );
    const usage = await usageOf(this.db, snapshot.id);
    if (inUse(usage)) {
      throw new SnapflowError({
        code: 'CONFLICT',
        field: 'name',
        message: `snapshot ${input.name} is in use: ${describeUsage(usage)}`,
        hint: 'set another default, unpin it, stop the sandbox, or roll its agents to another snapshot first',
      });
    }
    return this.runDelete(snapshot.id);
  }

  /** Dry run unless `yes`: what is unused for `days` (no default, pin or sandbox; unchanged and not used on a host). */
  async prune(input: {
    workspace: string;
    unusedForDays: number;
    yes?: boolean;
  }): Promise<{ candidates: Array<{ id: string; name: string; status: string; updatedAt: Date }>; deleted: string[]; dryRun: boolean }> {
    const workspace = validateField('workspace', input.workspace);
    if (!Number.isInteger(input.unusedForDays) || input.unusedForDays < 1 || input.unusedForDays > MAX_UNUSED_DAYS) {
      throw new SnapflowError({
        code: 'VALIDATION_FAILED',
        field: 'unused-for',
        message: `unused-for must be a whole number of days, from 1 to ${MAX_UNUSED_DAYS}`,
        hint: 'e.g. --unused-for 14d',
      });
    }
    await this.can(workspace, input.yes ? 'snapshot.prune' : 'snapshot.read');
    const candidates = await unusedSnapshots(this.db, { workspace, days: input.unusedForDays });
    const deleted: string[] = [];
    if (input.yes) for (const c of candidates) deleted.push((await this.runDelete(c.id)).snapshotId);
    return { candidates, deleted, dryRun: !input.yes };
  }

  /** The caller's access, checked before anything is read for them or sent (the workflows check again). */
  private async can(workspace: string, action: Action): Promise<void> {
    await requireAccess(this.db, this.config, workspace, action);
  }

  private async runDelete(snapshotId: string): Promise<{ snapshotId: string; status: 'deleted' }> {
    try {
      return await this.temporal.workflow.execute<typeof deleteSnapshot>('deleteSnapshot', {
        taskQueue: taskQueues.control,
        workflowId: workflowIds.snapshotDelete(snapshotId),
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowExecutionTimeout: '10 minutes',
        args: [{ snapshotId, actor: this.config.actor }],
        staticSummary: `Delete snapshot ${snapshotId}`,
      });
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new SnapflowError(describeFailure(err));
      throw err;
    }
  }

  /** GHCR images are blocked up front, before anything is written, when the connection is missing or expired. */
  private async requireGithub(workspace: string): Promise<void> {
    const connection = await readConnection(this.db, workspace);
    if (!connection || connection.status === 'missing') {
      throw new SnapflowError({
        code: 'GITHUB_CONNECTION_MISSING',
        field: 'image',
        message: `${this.config.ghcrHost} images need a GitHub connection and workspace ${workspace} has none`,
        hint: connectHint(workspace),
      });
    }
    if (connection.status === 'expired') {
      throw new SnapflowError({
        code: 'GITHUB_CONNECTION_EXPIRED',
        field: 'image',
        message: `the GitHub connection of workspace ${workspace} has expired`,
        hint: `run \`snapflow github reconnect --workspace ${workspace}\``,
      });
    }
  }
}

function differences(
  a: Pick<Snapshot, 'sourceImage' | 'runtime' | 'entrypoint' | 'size'>,
  b: Pick<Snapshot, 'sourceImage' | 'runtime' | 'entrypoint' | 'size'>,
): string[] {
  const names: Array<[keyof typeof a, string]> = [
    ['sourceImage', 'image'],
    ['runtime', 'runtime'],
    ['entrypoint', 'entrypoint'],
    ['size', 'size'],
  ];
  return names.filter(([k]) => a[k] !== b[k]).map(([, label]) => label);
}
