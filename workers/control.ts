// Control worker: every workflow, plus the catalog activities (the only worker with database access).
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createCatalogActivities } from '../activities/catalog';
import { createConnectionActivities } from '../activities/connections';
import { createRetirementActivities } from '../activities/retirement';
import { createStorageGcActivities } from '../activities/storageGc';
import { createDefaultActivities } from '../activities/defaults';
import { createAuthzActivities } from '../activities/authz';
import { createAgentActivities } from '../activities/agents';
import { createGoldenCatalogActivities } from '../activities/goldenCatalog';
import { createRestoreActivities } from '../activities/restore';
import { createSandboxActivities } from '../activities/sandboxes';
import { createRunActivities } from '../activities/runs';
import { createGithubTokens } from '../activities/githubTokens';
import { createDb, type Db } from '../db/client';
import { assertMigrationsApplied } from '../db/migrate';
import { payloadDataConverter } from '../lib/codec';
import { createGithubApp } from '../lib/githubApp';
import { loadConfig, loadDotEnv, type GithubAppConfig, type StorageConfig } from '../lib/config';
import { taskQueues } from '../lib/ids';
import type { Tracing } from '../lib/tracing';
import { connectWorker, exitWithError, workflowSource } from './options';
import { activityFailureMetrics, recordCatalogMetrics } from './metrics';
import { installRuntime, tracingActivityInterceptors, tracingWorkflowOptions, workerTracing } from './runtime';
import { ensureReconcileSchedule } from './schedules';
import { stallInterceptors } from './stall';

export interface ControlWorkerDeps {
  connection: NativeConnection;
  namespace: string;
  db: Db;
  /** For activities that ask Temporal about other runs (reconciliation). */
  client: Client;
  githubApp?: GithubAppConfig;
  /** Snapshot storage, for deleting stored images through the registry API. */
  storage?: StorageConfig;
  /** SNAPFLOW_REGISTRY_CONFIG: the storage registry's config on this host, for storage gc; omitted → gc refused. */
  registryConfig?: string;
  bundlePath?: string;
  /** SNAPFLOW_HOST_CACHE_KEEP: cached snapshots a host keeps besides those in use. */
  hostCacheKeep?: number;
  /** Payload encryption (lib/codec.ts); must match the clients' and the host workers'. Omitted → plain payloads. */
  dataConverter?: DataConverter;
  /** SNAPFLOW_OPERATORS: users allowed everywhere; authorization is decided here, not by the caller. */
  operators?: readonly string[];
  /** SNAPFLOW_HOST_ACTOR: the service actor host workers announce themselves as. */
  hostActor?: string;
  /** OpenTelemetry (lib/tracing.ts): workflow and activity spans; omitted → none, and the prebuilt bundle is used. */
  tracing?: Tracing;
  /** SNAPFLOW_ACTOR_KEY: every actor must come with a claim signed with it; omitted → actors are taken as named. */
  actorKey?: Buffer;
}

export function createControlWorker(deps: ControlWorkerDeps): Promise<Worker> {
  const traced = tracingWorkflowOptions(deps.tracing);
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: taskQueues.control,
    dataConverter: deps.dataConverter,
    // Traced workflows need the tracing interceptor bundled with them: bundled at start then.
    ...(deps.tracing ? { workflowsPath: require.resolve('../workflows') } : workflowSource(deps.bundlePath)),
    interceptors: {
      workflowModules: traced.workflowModules,
      // stalls: none unless a chaos run sets SNAPFLOW_CHAOS_STALL
      activity: [...tracingActivityInterceptors(deps.tracing), activityFailureMetrics('control'), ...stallInterceptors()],
    },
    ...(traced.sinks ? { sinks: traced.sinks } : {}),
    activities: {
      ...createCatalogActivities({ db: deps.db }),
      ...createConnectionActivities({ db: deps.db, tokens: createGithubTokens(deps.githubApp && createGithubApp(deps.githubApp)) }),
      ...createRunActivities({ client: deps.client }),
      ...createRetirementActivities({ db: deps.db, storage: deps.storage }),
      ...createStorageGcActivities({ db: deps.db, storage: deps.storage, registryConfig: deps.registryConfig }),
      ...createDefaultActivities({ db: deps.db }),
      ...createAuthzActivities({
        db: deps.db,
        operators: deps.operators ?? ['operator'],
        hostActor: deps.hostActor,
        actorKey: deps.actorKey,
      }),
      ...createSandboxActivities({ db: deps.db }),
      ...createAgentActivities({ db: deps.db }),
      ...createRestoreActivities({ db: deps.db }),
      ...createGoldenCatalogActivities({ db: deps.db, storage: deps.storage, hostCacheKeep: deps.hostCacheKeep }),
    },
    // Sized for 2 cores: workflow tasks are cheap, activities here are short database calls.
    maxConcurrentWorkflowTaskExecutions: 20,
    maxConcurrentActivityTaskExecutions: 20,
    maxCachedWorkflows: 250,
  });
}

async function main(): Promise<void> {
  loadDotEnv();
  const config = loadConfig();
  const log = installRuntime(config, 'control');
  const tracing = workerTracing('control');
  await assertMigrationsApplied(config.databaseUrl); // refuse a stale schema up front
  const connection = await connectWorker(config);
  const database = createDb(config.databaseUrl);
  const dataConverter = payloadDataConverter(config.payloadKey);
  const clientConnection = await Connection.connect(config.temporal.connection.options);
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace, dataConverter });
  try {
    await ensureReconcileSchedule(client);
    const worker = await createControlWorker({
      connection,
      namespace: config.temporal.namespace,
      db: database.db,
      client,
      githubApp: config.githubApp,
      storage: config.storage,
      registryConfig: config.registryConfig,
      hostCacheKeep: config.hostCacheKeep,
      operators: config.operators,
      hostActor: config.hostActor,
      actorKey: config.actorKey,
      dataConverter,
      tracing,
    });
    log.info(`control worker polling ${taskQueues.control} on ${config.temporal.address}`, {
      taskQueue: taskQueues.control,
      payloadKey: config.payloadKey?.id ?? null,
      metrics: config.metricsAddress ? `http://${config.metricsAddress}/metrics` : null,
      tracing: tracing ? 'on' : 'off',
    });
    const stopMetrics = recordCatalogMetrics(database, log);
    await worker.run().finally(stopMetrics); // returns after SIGINT/SIGTERM once in-flight tasks are done
  } finally {
    await tracing?.shutdown();
    await clientConnection.close();
    await database.close();
    await connection.close();
  }
}

if (require.main === module) main().catch((err) => exitWithError('control worker', err));
