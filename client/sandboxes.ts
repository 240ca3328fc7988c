// Sandboxes for services: create (one entity workflow per sandbox), jobs, promote, resume, destroy, explain.
// Jobs and promotions are Temporal Updates: the workflow's validators decide, and refusals come back typed.
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, type Client } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { storageNotConfigured } from '../catalog/golden';
import { readRestoreInput } from '../catalog/restore';
import { findIssue, listSandboxes, pinSnapshot, sandboxScope, saveIssue, unpinSnapshot, type Sandbox } from '../catalog/sandboxes';
import type { Db } from '../db/client';
import { findAgent, findAgentSnapshot } from '../catalog/agents';
import type { Snapshot } from '../catalog/snapshots';
import type { Action } from '../lib/authz';
import type { Config } from '../lib/config';
import { SnapflowError, describeFailure } from '../lib/errors';
import { taskQueues, workflowIds } from '../lib/ids';
import { profileKey, type Runtime } from '../lib/presets';
import { chooseRestore, type RestoreDecision } from '../lib/restoreOrder';
import {
  checkFlag,
  checkIssueKey,
  checkJob,
  checkPinnedSnapshot,
  checkPromotedName,
  checkSandboxBase,
  checkSandboxId,
  checkSandboxSpec,
  checkSandboxWorkspace,
} from '../lib/validation';
import type { JobRequest, JobResult, PromoteResult, SandboxStatus, sandbox } from '../workflows';
import { destroyUpdate, promoteUpdate, resumeUpdate, runJobUpdate, sandboxStatusQuery } from '../workflows/contracts/sandbox';
import { audited, requireAccess } from './access';
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

/** Turns an Update's refusal or failure into the SnapflowError the workflow typed. */
async function typed<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    // A sandbox that could not start ends its workflow: its failure is the typed one the start raised.
    if (
      err instanceof WorkflowUpdateFailedError ||
      err instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
      err instanceof WorkflowFailedError
    )
      throw new SnapflowError(describeFailure(err));
    if ((err as Error).name === 'WorkflowNotFoundError')
      throw new SnapflowError({
        code: 'NOT_FOUND',
        field: 'sandbox',
        message: (err as Error).message,
        hint: 'list sandboxes with `snapflow sandbox list`',
      });
    throw err;
  }
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
    await requireAccess(this.db, this.config, workspace, 'sandbox.create');
    const base = await this.chooseBase(workspace, input);
    const size = input.size ?? base?.snapshot.size;
    checkSandboxSpec({ ...input, size, runtime: input.runtime ?? base?.snapshot.runtime });
    const runtime = (input.runtime ?? base?.snapshot.runtime) as Runtime;
    let issueId: string | undefined;
    if (input.issue) {
      issueId = (await saveIssue(this.db, { workspace, issue: input.issue })).id;
    }
    const sandboxId = randomUUID();
    const workflowId = workflowIds.sandbox(sandboxId);
    const handle = await this.temporal.workflow.start<typeof sandbox>('sandbox', {
      taskQueue: taskQueues.control,
      workflowId,
      args: [
        {
          sandboxId,
          workspace,
          class: input.class as 'vm' | 'container',
          size: size!,
          runtime,
          profileKey: profileKey({ runtime, size: size!, baseDigest: base?.snapshot.storedRef ?? undefined }),
          keepAlive: input.keepAlive ?? false,
          issueId,
          baseSnapshotId: base?.snapshot.id,
          agentId: base?.agentId,
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
    return { sandboxId, workflowId, status: await this.waitUntilStarted(handle.workflowId) };
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

  async runJob(sandboxId: string, job: JobRequest): Promise<JobResult> {
    const id = checkSandboxId(sandboxId);
    checkJob(job);
    await this.canOn(id, 'sandbox.job');
    return typed(() =>
      this.temporal.workflow
        .getHandle(workflowIds.sandbox(id))
        .executeUpdate(runJobUpdate, { args: [{ ...job, actor: this.config.actor }] }),
    );
  }

  async promote(sandboxId: string, input: { name: string; setDefault?: boolean }): Promise<PromoteResult> {
    const id = checkSandboxId(sandboxId);
    if (!this.config.storage) throw storageNotConfigured();
    checkPromotedName(input.name);
    checkFlag('setDefault', input.setDefault);
    await this.canOn(id, 'sandbox.promote');
    return typed(() =>
      this.temporal.workflow
        .getHandle(workflowIds.sandbox(id))
        .executeUpdate(promoteUpdate, { args: [{ name: input.name, setDefault: input.setDefault, actor: this.config.actor }] }),
    );
  }

  async resume(sandboxId: string): Promise<SandboxStatus> {
    const id = checkSandboxId(sandboxId);
    await this.canOn(id, 'sandbox.resume');
    return typed(() =>
      this.temporal.workflow.getHandle(workflowIds.sandbox(id)).executeUpdate(resumeUpdate, { args: [{ actor: this.config.actor }] }),
    );
  }

  async destroy(sandboxId: string): Promise<SandboxStatus> {
    const id = checkSandboxId(sandboxId);
    await this.canOn(id, 'sandbox.destroy');
    return typed(() =>
      this.temporal.workflow.getHandle(workflowIds.sandbox(id)).executeUpdate(destroyUpdate, { args: [{ actor: this.config.actor }] }),
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
    return audited(this.db, this.config, workspace, 'issue.pin', `${input.issue} → ${input.snapshot}`, (tx) =>
      pinSnapshot(tx, { workspace, issue: input.issue, snapshotName: input.snapshot }),
    );
  }

  async unpin(input: { workspace: string; issue: string }): Promise<void> {
    const workspace = checkSandboxWorkspace(input.workspace);
    checkIssueKey(input.issue);
    await requireAccess(this.db, this.config, workspace, 'issue.pin', { target: `${input.issue} unpinned` });
    if (!(await findIssue(this.db, { workspace, issue: input.issue })))
      throw new SnapflowError({ code: 'NOT_FOUND', field: 'issue', message: `issue ${input.issue} has nothing pinned in ${workspace}` });
    await audited(this.db, this.config, workspace, 'issue.pin', `${input.issue} unpinned`, (tx) =>
      unpinSnapshot(tx, { workspace, issue: input.issue }),
    );
  }
}
