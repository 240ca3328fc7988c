// The typed client services use to start and await snapflow workflows.
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import type { HostFacts } from '../activities/docker';
import type { ConnectionState } from '../activities/connections';
import { eq } from 'drizzle-orm';
import { createDb, type DbHandle } from '../db/client';
import { githubConnections } from '../db/schema';
import { GoldenClient } from './golden';
import { SandboxClient } from './sandboxes';
import { SnapshotClient } from './snapshots';
import type { Config } from '../lib/config';
import { SnapflowError, describeFailure } from '../lib/errors';
import { taskQueues, workflowIds } from '../lib/ids';
import type { HostSelfTestResult, hostSelfTest, refreshHost, validateGithubConnection } from '../workflows';

export class SnapflowClient {
  private database?: DbHandle;
  private snapshotClient?: SnapshotClient;
  private goldenClient?: GoldenClient;
  private sandboxClient?: SandboxClient;

  private constructor(
    readonly temporal: Client,
    private readonly connection: Connection,
    private readonly config: Config,
  ) {}

  static async connect(config: Config, options: { connectTimeout?: Duration } = {}): Promise<SnapflowClient> {
    let connection: Connection;
    try {
      connection = await Connection.connect({ address: config.temporal.address, connectTimeout: options.connectTimeout ?? '5 seconds' });
    } catch (err) {
      throw new SnapflowError({
        code: 'TEMPORAL_UNAVAILABLE',
        field: 'TEMPORAL_ADDRESS',
        message: `Temporal is not reachable at ${config.temporal.address}: ${(err as Error).message}`,
        hint: 'start the stack with `npm start`, or point TEMPORAL_ADDRESS at your cluster',
      });
    }
    return new SnapflowClient(new Client({ connection, namespace: config.temporal.namespace }), connection, config);
  }

  /** Asks the host's worker to describe its engine and records it in the catalog; fails fast if nobody polls. */
  async refreshHost(hostId: string): Promise<HostFacts> {
    return this.run<typeof refreshHost>('refreshHost', workflowIds.hostRefresh(hostId), { hostId }, '30 seconds');
  }

  /** End-to-end check of one host: temp sandbox, exec, commit, optional push, cleanup. */
  async hostSelfTest(input: { hostId: string; push: boolean; nonce: string }): Promise<HostSelfTestResult> {
    const { nonce, ...request } = input;
    return this.run<typeof hostSelfTest>('hostSelfTest', workflowIds.hostSelfTest(input.hostId, nonce), request, '10 minutes');
  }

  /** Image snapshots: create (validated, reuse vs replace), wait, get, list. Reads use the catalog directly. */
  get snapshots(): SnapshotClient {
    this.snapshotClient ??= new SnapshotClient(this.temporal, this.db(), this.config, (id, run) => this.uiLink(id, run));
    return this.snapshotClient;
  }

  /** Golden snapshots: config + schedule, build now, set-default / rollback. */
  get golden(): GoldenClient {
    this.goldenClient ??= new GoldenClient(this.temporal, this.db(), this.config);
    return this.goldenClient;
  }

  /** Sandboxes: create, jobs, promote, resume, destroy, explain the restore order; issue pins. */
  get sandboxes(): SandboxClient {
    this.sandboxClient ??= new SandboxClient(this.temporal, this.db(), this.config);
    return this.sandboxClient;
  }

  /** connect (with an installation id), reconnect / validate (the stored one): asks GitHub, records the verdict. */
  async validateGithub(input: { workspace: string; installationId?: number }): Promise<ConnectionState> {
    return this.run<typeof validateGithubConnection>('validateGithubConnection', workflowIds.githubConnection(input.workspace), { scope: input.workspace, installationId: input.installationId }, '2 minutes');
  }

  /** The stored connection, as the catalog has it (no call to GitHub). */
  async githubStatus(input: { workspace: string }): Promise<ConnectionState | null> {
    const [row] = await this.db().select().from(githubConnections).where(eq(githubConnections.scope, input.workspace));
    return row ? { scope: row.scope, installationId: row.installationId, account: row.account, status: row.status, validatedAt: row.validatedAt?.toISOString() ?? null } : null;
  }

  private db(): DbHandle['db'] {
    this.database ??= createDb(this.config.databaseUrl);
    return this.database.db;
  }

  /** Where an operator sees a run in the Temporal UI. */
  uiLink(workflowId: string, runId?: string): string {
    const base = `${this.config.temporal.uiUrl}/namespaces/${encodeURIComponent(this.config.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
    return runId ? `${base}/${runId}/history` : base;
  }

  async close(): Promise<void> {
    await this.database?.close();
    await this.connection.close();
  }

  /** Starts (or joins, for the same id) a workflow and turns its failure into our typed error. */
  private async run<W extends (arg: never) => Promise<unknown>>(type: string, workflowId: string, arg: Parameters<W>[0], timeout: Duration): Promise<Awaited<ReturnType<W>>> {
    try {
      return (await this.temporal.workflow.execute(type, {
        taskQueue: taskQueues.control,
        workflowId,
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowExecutionTimeout: timeout,
        args: [arg],
      })) as Awaited<ReturnType<W>>;
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new SnapflowError(describeFailure(err));
      throw err;
    }
  }
}
