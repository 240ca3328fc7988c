// Agents for services: create, list, and roll a snapshot out to them with a canary (one workflow per snapshot and
// workspace). Health, pause, resume and abort are Updates the workflow validates and authorizes; a pause or an
// abort takes effect between batches.
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { createAgent, findAgentSnapshot, findLiveAgentSnapshot, listAgents, type Agent, type AgentView } from '../catalog/agents';
import type { Db } from '../db/client';
import type { Action } from '../lib/authz';
import type { Config } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { taskQueues, workflowIds } from '../lib/ids';
import {
  check,
  checkActor,
  checkAgentName,
  checkAgentSnapshotName,
  checkAgentWorkspace,
  checkHealthCommand,
  checkRolloutAgents,
  checkRolloutOptions,
  screenText,
  type RolloutOptionsInput,
} from '../lib/validation';
import type { HealthReport, RolloutResult, RolloutStatus, rolloutSnapshot } from '../workflows';
import {
  abortRolloutUpdate,
  pauseRolloutUpdate,
  reportHealthUpdate,
  resumeRolloutUpdate,
  rolloutStatusQuery,
} from '../workflows/contracts/rollout';
import { requireAccess } from './access';
import { typedCall } from './runFailures';
import { searchAttributes } from './searchAttributes';

export interface RolloutInput extends RolloutOptionsInput {
  workspace: string;
  /** Snapshot name, in the workspace or the system workspace. */
  snapshot: string;
  /** Agent names in rollout order (the first `canary` are the canary), or `'all'` of the workspace's agents. */
  agents: string[] | 'all';
  actor?: string;
}

/** Which rollout: the workspace and the snapshot it rolls out. */
export interface RolloutRef {
  workspace: string;
  snapshot: string;
  actor?: string;
}

/** Turns a refused Update, an unknown or ended rollout, or a failed run into the typed error. */
function typed<T>(ref: { workspace: string; name: string }, work: () => Promise<T>): Promise<T> {
  return typedCall(
    work,
    () =>
      new SnapflowError({
        code: 'NOT_FOUND',
        field: 'snapshot',
        message: `no running rollout of ${ref.name} in ${ref.workspace}`,
        hint: 'start one with `snapflow agent rollout`; a finished one answers `agent rollout-status`',
      }),
  );
}

/** An Update to an ended rollout is a CONFLICT that says how it ended, not Temporal's "not found". */
async function running(handle: WorkflowHandle, ref: { workspace: string; name: string }, verb: string): Promise<void> {
  const { status } = await handle.describe();
  if (status.name !== 'RUNNING') {
    throw new SnapflowError({
      code: 'CONFLICT',
      field: 'snapshot',
      message: `the rollout of ${ref.name} in ${ref.workspace} already ended (${status.name.toLowerCase()}), so it cannot ${verb}`,
      hint: 'see how it ended: `snapflow agent rollout-status`',
    });
  }
}

export class AgentClient {
  constructor(
    private readonly temporal: Client,
    private readonly db: Db,
    private readonly config: Config,
  ) {}

  /** A new agent on an active snapshot of its workspace (or a system one). Needs `agent.manage`; audited. */
  /** `healthCommand`: what a canary of this agent runs as a job (argv); default: the entrypoint stays up and `true` succeeds. */
  async create(input: { workspace: string; name: string; snapshot: string; healthCommand?: string[]; actor?: string }): Promise<Agent> {
    const workspace = checkAgentWorkspace(input.workspace);
    const name = checkAgentName('name', input.name);
    const snapshotName = checkAgentSnapshotName(input.snapshot);
    const healthCommand = checkHealthCommand(input.healthCommand);
    const actor = this.actor(input.actor);
    return createAgent(this.db, { ...this.config, actor }, { workspace, name, snapshotName, healthCommand });
  }

  /** Each agent with the snapshot it runs on (and the one before a rollout), by name and id. */
  async list(input: { workspace: string; actor?: string }): Promise<AgentView[]> {
    const workspace = checkAgentWorkspace(input.workspace);
    await this.can(workspace, 'snapshot.read', input.actor);
    return listAgents(this.db, workspace);
  }

  /**
   * Starts the rollout of a snapshot to agents: canary first, then batches once the canary is healthy. One rollout
   * per snapshot and workspace runs at a time (CONFLICT while one runs); a finished one may be started again.
   */
  async rollout(input: RolloutInput): Promise<{ workflowId: string; runId: string; snapshotId: string }> {
    const workspace = checkAgentWorkspace(input.workspace);
    const snapshotName = checkAgentSnapshotName(input.snapshot);
    const agents = checkRolloutAgents(input.agents);
    const { canary, batchSize, healthTimeout } = checkRolloutOptions(input);
    if (canary !== undefined && agents !== 'all')
      check(
        'canary',
        canary <= agents.length,
        `canary ${canary} is more than the ${agents.length} agent(s) named`,
        'use a smaller --canary',
      );
    const actor = this.actor(input.actor);
    await requireAccess(this.db, { ...this.config, actor }, workspace, 'agent.rollout');
    const snap = await findAgentSnapshot(this.db, { workspace, name: snapshotName });
    check(
      'auto',
      !input.auto || Boolean(snap.storedRef),
      `snapshot ${snap.name} is not in snapshot storage, so --auto cannot boot it`,
      'report the canary health by hand instead (leave out --auto)',
    );

    const workflowId = workflowIds.rollout(workspace, snap.id);
    try {
      const handle = await this.temporal.workflow.start<typeof rolloutSnapshot>('rolloutSnapshot', {
        taskQueue: taskQueues.control,
        workflowId,
        workflowIdConflictPolicy: 'FAIL',
        args: [{ workspace, snapshotId: snap.id, agents, canary, batchSize, healthTimeout, auto: input.auto, actor }],
        staticSummary: `Rollout of **${snap.name}** to ${agents === 'all' ? 'every agent' : `${agents.length} agent(s)`} in ${workspace}${input.auto ? ' (auto health)' : ''}`,
        typedSearchAttributes: new TypedSearchAttributes([
          { key: searchAttributes.WorkspaceId, value: workspace },
          { key: searchAttributes.SnapshotName, value: snap.name },
          { key: searchAttributes.SnapshotKind, value: snap.kind },
        ]),
      });
      return { workflowId, runId: handle.firstExecutionRunId, snapshotId: snap.id };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new SnapflowError({
          code: 'CONFLICT',
          field: 'snapshot',
          message: `a rollout of ${snap.name} in ${workspace} is already running`,
          hint: 'follow it with `snapflow agent rollout-status`, or abort it first',
        });
      }
      throw err;
    }
  }

  /** Phase, moved and pending agents, paused, health reports and the reason (also for a finished rollout). */
  async status(ref: RolloutRef): Promise<RolloutStatus> {
    const { handle, workspace, name } = await this.handle(ref, 'snapshot.read');
    return typed({ workspace, name }, () => handle.query(rolloutStatusQuery));
  }

  /** A canary's health; refused (typed) for an agent that is not a canary, or once the rollout stopped waiting. */
  async reportHealth(ref: RolloutRef & { agent: string; ok: boolean; detail?: string }): Promise<RolloutStatus> {
    const agent = checkAgentName('agent', ref.agent);
    check('ok', typeof ref.ok === 'boolean', `ok must be true or false, not ${typeof ref.ok}`, 'pass --ok or --failed');
    const detail = ref.detail === undefined ? undefined : screenText('detail', ref.detail, 'one line saying what was seen', 1000);
    const { handle, workspace, name, actor } = await this.handle(ref, 'agent.rollout');
    const report: HealthReport = { agent, ok: ref.ok, detail, actor };
    // The workflow authorizes the report again and audits it with its run.
    return typed({ workspace, name }, async () => {
      await running(handle, { workspace, name }, 'take a health report');
      return handle.executeUpdate(reportHealthUpdate, { args: [report] });
    });
  }

  /** Holds the rollout before its next batch. */
  async pause(ref: RolloutRef & { reason?: string }): Promise<RolloutStatus> {
    return this.control(ref, 'pause', pauseRolloutUpdate);
  }

  async resume(ref: RolloutRef & { reason?: string }): Promise<RolloutStatus> {
    return this.control(ref, 'resume', resumeRolloutUpdate);
  }

  /** Stops the rollout; every agent it moved goes back to the snapshot it came from (result status `aborted`). */
  async abort(ref: RolloutRef & { reason?: string }): Promise<RolloutStatus> {
    return this.control(ref, 'abort', abortRolloutUpdate);
  }

  /** The result: `completed`, `rolled-back` or `aborted` with the reason; a real error comes back typed. */
  async wait(ref: RolloutRef, onProgress?: (status: RolloutStatus) => void): Promise<RolloutResult> {
    const { handle, workspace, name } = await this.handle(ref, 'snapshot.read');
    let done = false;
    const follow = async (): Promise<void> => {
      let last = '';
      while (!done) {
        const s = await handle.query(rolloutStatusQuery).catch(() => undefined);
        const key = s && JSON.stringify([s.phase, s.moved, s.paused, s.health.length]);
        if (s && key !== last) onProgress!(s);
        last = key ?? last;
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    const following = onProgress ? follow() : Promise.resolve();
    try {
      return await typed({ workspace, name }, () => handle.result() as Promise<RolloutResult>);
    } finally {
      done = true;
      await following;
    }
  }

  private actor(value: unknown): string {
    return checkActor(value) ?? this.config.actor;
  }

  private async can(workspace: string, action: Action, actor: unknown): Promise<string> {
    const who = this.actor(actor);
    await requireAccess(this.db, { ...this.config, actor: who }, workspace, action);
    return who;
  }

  /** The rollout's workflow handle, after validation and access; the snapshot may be any live status by now. */
  private async handle(
    ref: RolloutRef,
    action: Action,
  ): Promise<{ handle: WorkflowHandle<typeof rolloutSnapshot>; workspace: string; name: string; actor: string }> {
    const workspace = checkAgentWorkspace(ref.workspace);
    const name = checkAgentSnapshotName(ref.snapshot);
    const actor = await this.can(workspace, action, ref.actor);
    const snap = await findLiveAgentSnapshot(this.db, { workspace, name });
    return {
      handle: this.temporal.workflow.getHandle<typeof rolloutSnapshot>(workflowIds.rollout(workspace, snap.id)),
      workspace,
      name,
      actor,
    };
  }

  /** Pause / resume / abort: Updates the workflow authorizes and audits with its run, answering with the new status. */
  private async control(ref: RolloutRef & { reason?: string }, verb: string, update: typeof pauseRolloutUpdate): Promise<RolloutStatus> {
    const reason = ref.reason === undefined ? undefined : screenText('reason', ref.reason, 'one line saying why', 500);
    const { handle, workspace, name, actor } = await this.handle(ref, 'agent.rollout');
    return typed({ workspace, name }, async () => {
      await running(handle, { workspace, name }, verb);
      return handle.executeUpdate(update, { args: [{ actor, reason }] });
    });
  }
}
