// Sandboxes for services: create (one entity workflow per sandbox), jobs, promote, resume, destroy, explain.
// Jobs and promotions are Temporal Updates: the workflow's validators decide, and refusals come back typed.
import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, type Client } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import { storageNotConfigured } from '../catalog/golden';
import { readRestoreInput } from '../catalog/restore';
import { pinSnapshot, unpinSnapshot } from '../catalog/sandboxes';
import type { Db } from '../db/client';
import { issues, sandboxes, type Sandbox } from '../db/schema';
import { SANDBOX_CLASSES } from '../lib/vocabulary';
import type { Action } from '../lib/authz';
import type { Config } from '../lib/config';
import { SnapflowError, describeFailure } from '../lib/errors';
import { SYSTEM_SCOPE, taskQueues, workflowIds } from '../lib/ids';
import { quoteInput } from '../lib/imageRef';
import { findPreset, profileKey, RUNTIMES, type Runtime } from '../lib/presets';
import { chooseRestore, type RestoreDecision } from '../lib/restoreOrder';
import { SNAPSHOT_NAME_REGEX, screenText, validationError } from '../lib/validation';
import type { JobRequest, JobResult, PromoteResult, SandboxStatus, sandbox } from '../workflows';
import { destroyUpdate, promoteUpdate, resumeUpdate, runJobUpdate, sandboxStatusQuery } from '../workflows/definitions';
import { audited, requireAccess } from './access';
import { searchAttributes } from './searchAttributes';

export interface CreateSandboxInput {
  workspace: string;
  class: string;
  size: string;
  runtime: string;
  keepAlive?: boolean;
  /** External issue key (e.g. "ENG-42"): its pinned golden snapshot comes first in the restore order. */
  issue?: string;
}

const WORKSPACE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ISSUE = /^[A-Za-z0-9][A-Za-z0-9._#-]{0,127}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function check(field: string, ok: boolean, message: string, hint: string): void {
  if (!ok) throw validationError(field, message, hint);
}
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const quote = (v: unknown): string => quoteInput(text(v)); // escaped: no newline or bidi override reaches a terminal raw
const flag = (field: string, v: unknown): void => check(field, v === undefined || typeof v === 'boolean', `${field} must be true or false, not ${typeof v}`, `leave ${field} out, or pass true or false`);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Linux refuses a single argument past 128 kB; half of that is plenty for a command line. */
const COMMAND_MAX = 64 * 1024;

/**
 * What a job may ask the sandbox's exec for, checked before the Update is sent: the workflow's own validator only
 * sees the command, and a workdir or env Docker refuses would fail the job and stop the sandbox.
 */
function checkJob(job: JobRequest): void {
  const command: unknown = job?.command;
  const args = Array.isArray(command) ? (command as unknown[]) : [];
  check('command', args.length > 0 && args.every((a) => typeof a === 'string' && !a.includes('\0')), 'a job needs a command: a non-empty list of strings without NUL bytes', 'e.g. ["sh", "-c", "npm test"]');
  check('command', (args as string[]).reduce((n, a) => n + a.length, 0) <= COMMAND_MAX, `the command is over ${COMMAND_MAX / 1024} kB`, 'put a long script in a file in the sandbox and run that');
  if (job.workdir !== undefined) {
    const workdir = screenText('workdir', job.workdir, 'an absolute path inside the sandbox, e.g. /workspace');
    check('workdir', workdir.startsWith('/') && !workdir.split('/').includes('..'), `workdir ${quote(workdir)} is not an absolute path without '..'`, 'e.g. --workdir /workspace/app');
  }
  if (job.env !== undefined) {
    const env: unknown = job.env;
    const entries = typeof env === 'object' && env !== null && !Array.isArray(env) ? Object.entries(env) : undefined;
    check('env', entries !== undefined, 'env must be an object of names to values', 'e.g. { "CI": "1" }');
    for (const [name, value] of entries!) {
      check('env', ENV_NAME.test(name), `env name ${quote(name)} is not a variable name`, 'letters, digits and "_", not starting with a digit');
      check('env', typeof value === 'string' && !value.includes('\0'), `env ${name} must be a string without NUL bytes`, 'e.g. { "CI": "1" }');
    }
  }
}

function checkWorkspace(workspace: unknown): string {
  check('workspace', text(workspace) === SYSTEM_SCOPE || WORKSPACE.test(text(workspace)), `workspace ${quote(workspace)} is not a workspace slug`, 'lowercase letters, digits and "-", e.g. "acme"');
  return text(workspace);
}

export function checkSandboxId(id: unknown): string {
  check('sandbox', UUID.test(text(id)), `sandbox id ${quote(id)} is not a sandbox id`, 'use the id `snapflow sandbox create` printed (a UUID)');
  return text(id);
}

/** Turns an Update's refusal or failure into the SnapflowError the workflow typed. */
async function typed<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) throw new SnapflowError(describeFailure(err));
    if ((err as Error).name === 'WorkflowNotFoundError') throw new SnapflowError({ code: 'NOT_FOUND', field: 'sandbox', message: (err as Error).message, hint: 'list sandboxes with `snapflow sandbox list`' });
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
    const scope = checkWorkspace(input.workspace);
    check('class', (SANDBOX_CLASSES as readonly string[]).includes(text(input.class)), `class ${quote(input.class)} is not a sandbox class`, `use one of: ${SANDBOX_CLASSES.join(', ')}`);
    check('size', Boolean(findPreset(text(input.size))), `size ${quote(input.size)} is not a size preset`, 'use small, medium or large');
    check('runtime', (RUNTIMES as readonly string[]).includes(text(input.runtime)), `runtime ${quote(input.runtime)} is not supported`, `use one of: ${RUNTIMES.join(', ')}`);
    if (input.issue !== undefined) check('issue', ISSUE.test(text(input.issue)), `issue ${quote(input.issue)} is not an issue key`, 'e.g. ENG-42');
    flag('keepAlive', input.keepAlive);
    await requireAccess(this.db, this.config, scope, 'sandbox.create');
    const runtime = input.runtime as Runtime;
    let issueId: string | undefined;
    if (input.issue) {
      const [issue] = await this.db.insert(issues).values({ scope, externalKey: input.issue }).onConflictDoUpdate({ target: [issues.scope, issues.externalKey], set: { updatedAt: new Date() } }).returning();
      issueId = issue!.id;
    }
    const sandboxId = randomUUID();
    const workflowId = workflowIds.sandbox(sandboxId);
    const handle = await this.temporal.workflow.start<typeof sandbox>('sandbox', {
      taskQueue: taskQueues.control,
      workflowId,
      args: [{ sandboxId, scope, class: input.class as 'vm' | 'container', size: input.size, runtime, profileKey: profileKey({ runtime, size: input.size }), keepAlive: input.keepAlive ?? false, issueId, actor: this.config.actor }],
      staticSummary: `Sandbox **${sandboxId}** (${input.class}, ${input.size}, ${runtime}) in ${scope}`,
      typedSearchAttributes: new TypedSearchAttributes([
        { key: searchAttributes.WorkspaceId, value: scope },
        { key: searchAttributes.SandboxSize, value: input.size },
        { key: searchAttributes.Runtime, value: runtime },
      ]),
    });
    return { sandboxId, workflowId, status: await this.waitUntilStarted(handle.workflowId) };
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
    throw new SnapflowError({ code: 'TIMED_OUT', message: `sandbox workflow ${workflowId} did not start within 60s`, hint: 'is a host worker running? `snapflow doctor`' });
  }

  async runJob(sandboxId: string, job: JobRequest): Promise<JobResult> {
    const id = checkSandboxId(sandboxId);
    checkJob(job);
    await this.canOn(id, 'sandbox.job');
    return typed(() => this.temporal.workflow.getHandle(workflowIds.sandbox(id)).executeUpdate(runJobUpdate, { args: [{ ...job, actor: this.config.actor }] }));
  }

  async promote(sandboxId: string, input: { name: string; setDefault?: boolean }): Promise<PromoteResult> {
    const id = checkSandboxId(sandboxId);
    if (!this.config.storage) throw storageNotConfigured();
    check('name', SNAPSHOT_NAME_REGEX.test(text(input.name)), `name ${quote(input.name)} is not a snapshot name`, 'lowercase letters, digits, ".", "_" or "-", e.g. "agent-golden-v2"');
    flag('setDefault', input.setDefault);
    await this.canOn(id, 'sandbox.promote');
    return typed(() => this.temporal.workflow.getHandle(workflowIds.sandbox(id)).executeUpdate(promoteUpdate, { args: [{ name: input.name, setDefault: input.setDefault, actor: this.config.actor }] }));
  }

  async resume(sandboxId: string): Promise<SandboxStatus> {
    const id = checkSandboxId(sandboxId);
    await this.canOn(id, 'sandbox.job');
    return typed(() => this.temporal.workflow.getHandle(workflowIds.sandbox(id)).executeUpdate(resumeUpdate, { args: [{ actor: this.config.actor }] }));
  }

  async destroy(sandboxId: string): Promise<SandboxStatus> {
    const id = checkSandboxId(sandboxId);
    await this.canOn(id, 'sandbox.job');
    return typed(() => this.temporal.workflow.getHandle(workflowIds.sandbox(id)).executeUpdate(destroyUpdate, { args: [{ actor: this.config.actor }] }));
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
    const scope = checkWorkspace(workspace);
    await requireAccess(this.db, this.config, scope, 'snapshot.read');
    return this.db.select().from(sandboxes).where(eq(sandboxes.scope, scope));
  }

  /** Access on a sandbox is access on its workspace; an unknown id is NOT_FOUND (nothing about others leaks). */
  private async canOn(sandboxId: string, action: Action): Promise<void> {
    const [row] = await this.db.select({ scope: sandboxes.scope }).from(sandboxes).where(eq(sandboxes.id, sandboxId));
    // A sandbox whose workflow has not registered its row yet is still being created: the workflow decides.
    if (row) await requireAccess(this.db, this.config, row.scope, action);
  }

  async pin(input: { workspace: string; issue: string; snapshot: string }): Promise<{ issueId: string; snapshotId: string }> {
    const scope = checkWorkspace(input.workspace);
    check('issue', ISSUE.test(text(input.issue)), `issue ${quote(input.issue)} is not an issue key`, 'e.g. ENG-42');
    check('snapshot', SNAPSHOT_NAME_REGEX.test(text(input.snapshot)), `snapshot ${quote(input.snapshot)} is not a snapshot name`, 'use the name shown by `snapflow snapshot list`');
    return audited(this.db, this.config, scope, 'issue.pin', `${input.issue} → ${input.snapshot}`, (tx) => pinSnapshot(tx, { scope, issue: input.issue, snapshotName: input.snapshot }));
  }

  async unpin(input: { workspace: string; issue: string }): Promise<void> {
    const scope = checkWorkspace(input.workspace);
    check('issue', ISSUE.test(text(input.issue)), `issue ${quote(input.issue)} is not an issue key`, 'e.g. ENG-42');
    await requireAccess(this.db, this.config, scope, 'issue.pin', { target: `${input.issue} unpinned` });
    const [row] = await this.db.select().from(issues).where(and(eq(issues.scope, scope), eq(issues.externalKey, input.issue)));
    if (!row) throw new SnapflowError({ code: 'NOT_FOUND', field: 'issue', message: `issue ${input.issue} has nothing pinned in ${scope}` });
    await audited(this.db, this.config, scope, 'issue.pin', `${input.issue} unpinned`, (tx) => unpinSnapshot(tx, { scope, issue: input.issue }));
  }
}
