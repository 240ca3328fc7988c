// The typed client services use to start and await snapflow workflows.
import { InterceptingCall, status as grpcStatus, type Interceptor } from '@grpc/grpc-js';
import { Client, Connection, WorkflowFailedError, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import type { HostFacts } from '../lib/hosts';
import { readConnection, type ConnectionState } from '../catalog/connections';
import { createDb, type DbHandle } from '../db/client';
import { AgentClient } from './agents';
import { GoldenClient } from './golden';
import { SandboxClient } from './sandboxes';
import { SnapshotClient } from './snapshots';
import { WorkspaceClient } from './workspaces';
import { TokenClient } from './tokens';
import { payloadDataConverter } from '../lib/codec';
import { claimInterceptors } from './actorClaims';
import type { Config } from '../lib/config';
import { SnapflowError, describeFailure } from '../lib/errors';
import { SYSTEM_SCOPE, taskQueues, workflowIds } from '../lib/ids';
import { requireAccess } from './access';
import { quoteInput } from '../lib/imageRef';
import { SLUG_REGEX, screenText, validateField, validationError } from '../lib/validation';
import type {
  HostSelfTestResult,
  StorageGcResult,
  changeHostPlacement,
  hostSelfTest,
  refreshHost,
  storageGarbageCollection,
  validateGithubConnection,
} from '../workflows';
import { inSpan, startTracing, tracingClientInterceptors, type Tracing } from '../lib/tracing';
import { packageVersion } from '../lib/version';

const HOST_HINT = 'use the host id its worker runs with (SNAPFLOW_HOST_ID): lowercase letters, digits and "-"';

/** A host id names a task queue and a catalog row: the slug SNAPFLOW_HOST_ID is held to, or nothing starts. */
function checkHostId(hostId: unknown): string {
  const id = screenText('hostId', hostId, HOST_HINT, 63);
  if (!SLUG_REGEX.test(id)) throw validationError('hostId', `host id ${quoteInput(id)} is not a host slug`, HOST_HINT);
  return id;
}

/** GitHub App installation ids are positive whole numbers (the catalog's bigint holds any safe one). */
function checkInstallationId(id: unknown): number | undefined {
  if (id === undefined) return undefined;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) {
    throw validationError(
      'installationId',
      `installation id ${typeof id === 'number' ? String(id) : `of type ${typeof id}`} is not a positive whole number`,
      'use the number at the end of the App installation URL, e.g. --installation-id 12345678',
    );
  }
  return id;
}

function temporalUnavailable(config: Config, err: unknown): SnapflowError {
  return new SnapflowError({
    code: 'TEMPORAL_UNAVAILABLE',
    field: 'TEMPORAL_ADDRESS',
    message: `Temporal is not reachable at ${config.temporal.address}: ${(err as Error).message}`,
    hint: 'start the stack with `npm start`, or point TEMPORAL_ADDRESS at your cluster',
  });
}

export class SnapflowClient {
  private database?: DbHandle;
  /** A client made by `as()`: the connection and pool belong to the client it came from. */
  private borrowed = false;
  private snapshotClient?: SnapshotClient;
  private goldenClient?: GoldenClient;
  private sandboxClient?: SandboxClient;
  private agentClient?: AgentClient;
  private workspaceClient?: WorkspaceClient;
  private tokenClient?: TokenClient;

  private constructor(
    readonly temporal: Client,
    private readonly connection: Connection,
    private readonly config: Config,
  ) {}

  /** Set when a lazy client's first call found Temporal unreachable: the typed error to report instead. */
  connectFailure?: SnapflowError;

  static async connect(config: Config, options: { connectTimeout?: Duration; env?: NodeJS.ProcessEnv } = {}): Promise<SnapflowClient> {
    let connection: Connection;
    try {
      connection = await Connection.connect({
        ...config.temporal.connection.options,
        connectTimeout: options.connectTimeout ?? '5 seconds',
      });
    } catch (err) {
      throw temporalUnavailable(config, err);
    }
    return SnapflowClient.on(connection, config, options.env);
  }

  /**
   * A client that connects to Temporal on its first call, not before: input is validated (and the catalog read)
   * first, so a bad argument is answered at once even with Temporal down. If connecting fails, every call fails
   * and `connectFailure` holds the TEMPORAL_UNAVAILABLE error to report.
   */
  static lazy(config: Config, options: { connectTimeout?: Duration; env?: NodeJS.ProcessEnv } = {}): SnapflowClient {
    let ready: Promise<void> | undefined;
    const ensure = (): Promise<void> =>
      (ready ??= connection.ensureConnected().catch((err: unknown) => {
        client.connectFailure = temporalUnavailable(config, err);
        throw client.connectFailure;
      }));
    // Outermost, so a failed connect is answered once instead of through the SDK's retries; the connect's own
    // GetSystemInfo call passes straight through.
    const connectFirst: Interceptor = (callOptions, next) =>
      callOptions.method_definition.path.endsWith('/GetSystemInfo')
        ? new InterceptingCall(next(callOptions))
        : new InterceptingCall(next(callOptions), {
            start: (metadata, listener, start) =>
              void ensure().then(
                () => start(metadata, listener),
                (err: Error) => listener.onReceiveStatus?.({ code: grpcStatus.UNAVAILABLE, details: err.message, metadata }),
              ),
          });
    const connection = Connection.lazy({
      ...config.temporal.connection.options,
      connectTimeout: options.connectTimeout ?? '5 seconds',
      interceptors: [connectFirst, makeGrpcRetryInterceptor(defaultGrpcRetryOptions())],
    });
    const client = SnapflowClient.on(connection, config, options.env);
    return client;
  }

  private static on(connection: Connection, config: Config, env?: NodeJS.ProcessEnv): SnapflowClient {
    // With SNAPFLOW_PAYLOAD_KEY set, every argument and result is encrypted before it leaves this process.
    const dataConverter = payloadDataConverter(config.payloadKey);
    // With OTEL_EXPORTER_OTLP_ENDPOINT set, every call is a span whose context travels to the workflow (lib/tracing.ts).
    const tracing = startTracing({ service: 'snapflow-client', version: packageVersion, env });
    // With SNAPFLOW_ACTOR_KEY set, every request also carries a claim for its actor that the workers verify.
    const interceptors = { workflow: [...claimInterceptors(config.actorKey).workflow, ...tracingClientInterceptors(tracing)] };
    const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter, interceptors });
    const snapflow = new SnapflowClient(client, connection, config);
    snapflow.tracing = tracing;
    return snapflow;
  }

  /** OpenTelemetry tracing of this process, when the environment turns it on. */
  tracing?: Tracing;

  /** Runs `work` as one traced operation (its calls are child spans), e.g. a CLI command; untraced without tracing. */
  traced<T>(name: string, work: () => Promise<T>): Promise<T> {
    return inSpan(this.tracing, name, work);
  }

  /**
   * The same client acting as another user (one connection, one pool): every check and every workflow it
   * starts carries that user, and the workflows decide against the workspace's roles themselves.
   */
  as(user: string): SnapflowClient {
    const actor = screenText('actor', user, 'a user id, e.g. alice@example.com', 128);
    const other = new SnapflowClient(this.temporal, this.connection, { ...this.config, actor });
    other.database = this.database ?? (this.database = createDb(this.config.databaseUrl));
    other.borrowed = true;
    other.tracing = this.tracing;
    return other;
  }

  /** Asks the host's worker to describe its engine and records it in the catalog; fails fast if nobody polls. */
  async refreshHost(hostId: string): Promise<HostFacts> {
    const id = checkHostId(hostId);
    return this.run<typeof refreshHost>('refreshHost', workflowIds.hostRefresh(id), { hostId: id, actor: this.config.actor }, '30 seconds');
  }

  /** End-to-end check of one host: temp sandbox, exec, commit, optional push, cleanup. */
  async hostSelfTest(input: { hostId: string; push: boolean; nonce: string }): Promise<HostSelfTestResult> {
    const { nonce, ...request } = input;
    const hostId = checkHostId(input.hostId);
    return this.run<typeof hostSelfTest>(
      'hostSelfTest',
      workflowIds.hostSelfTest(hostId, nonce),
      { ...request, hostId, actor: this.config.actor },
      '10 minutes',
    );
  }

  /**
   * Snapshot storage's unreferenced blobs (left by deleted and pruned snapshots): counted unless `yes`, then removed
   * by the registry's own garbage collection on the control worker. Operators only: storage serves every workspace.
   */
  async storageGc(input: { yes?: boolean } = {}): Promise<StorageGcResult> {
    await requireAccess(this.db(), this.config, SYSTEM_SCOPE, 'storage.gc');
    const dryRun = !input.yes;
    return this.run<typeof storageGarbageCollection>(
      'storageGarbageCollection',
      workflowIds.storageGc(dryRun),
      { dryRun, actor: this.config.actor },
      '30 minutes',
    );
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

  /** Agents: create, list, and roll a snapshot out to them (canary, health, batches, pause / resume / abort). */
  get agents(): AgentClient {
    this.agentClient ??= new AgentClient(this.temporal, this.db(), this.config);
    return this.agentClient;
  }

  /** Workspaces (plan), members (role) and the audit trail. */
  get workspaces(): WorkspaceClient {
    this.workspaceClient ??= new WorkspaceClient(this.db(), this.config);
    return this.workspaceClient;
  }

  /** API tokens (create, list, revoke, the operator bootstrap) and who this client acts as. */
  get tokens(): TokenClient {
    this.tokenClient ??= new TokenClient(this.db(), this.config);
    return this.tokenClient;
  }

  /** connect (with an installation id), reconnect / validate (the stored one): asks GitHub, records the verdict. */
  async validateGithub(input: { workspace: string; installationId?: number }): Promise<ConnectionState> {
    const workspace = validateField('workspace', input.workspace);
    const installationId = checkInstallationId(input.installationId);
    await requireAccess(this.db(), this.config, workspace, 'github.connect');
    return this.run<typeof validateGithubConnection>(
      'validateGithubConnection',
      workflowIds.githubConnection(workspace),
      { workspace, installationId, actor: this.config.actor },
      '2 minutes',
    );
  }

  /** The stored connection, as the catalog has it (no call to GitHub). */
  async githubStatus(input: { workspace: string }): Promise<ConnectionState | null> {
    const workspace = validateField('workspace', input.workspace);
    await requireAccess(this.db(), this.config, workspace, 'snapshot.read');
    return (await readConnection(this.db(), workspace)) ?? null;
  }

  /**
   * Drain: no new sandbox, build or pull is placed on the host (its worker keeps finishing what runs there);
   * its sandboxes restart elsewhere from storage. A worker announcing itself again does not undo it.
   */
  async drainHost(hostId: string): Promise<{ hostId: string; status: 'draining' }> {
    await this.setHostStatus(checkHostId(hostId), 'draining');
    return { hostId, status: 'draining' };
  }

  async undrainHost(hostId: string): Promise<{ hostId: string; status: 'online' }> {
    await this.setHostStatus(checkHostId(hostId), 'online');
    return { hostId, status: 'online' };
  }

  /** Through a workflow like every write: operators only, decided and audited there. */
  private async setHostStatus(hostId: string, status: 'online' | 'draining'): Promise<void> {
    const request = { hostId, status, actor: this.config.actor };
    await this.run<typeof changeHostPlacement>('changeHostPlacement', workflowIds.hostPlacement(hostId, status), request, '30 seconds');
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
    if (this.borrowed) return;
    await this.tracing?.flush(); // a CLI command's spans leave before the process does
    await this.database?.close();
    await this.connection.close();
  }

  /** Starts (or joins, for the same id) a workflow and turns its failure into our typed error. */
  private async run<W extends (arg: never) => Promise<unknown>>(
    type: string,
    workflowId: string,
    arg: Parameters<W>[0],
    timeout: Duration,
  ): Promise<Awaited<ReturnType<W>>> {
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
