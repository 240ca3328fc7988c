// Host worker: polls one host's own task queue with that host's activities, each registered once under its own name
// (joinActivities refuses a name twice): both sandbox backends' verbs (container*, vm*) and the host-wide
// describeHost / execInSandbox / removeSandbox (activities/sandbox/host.ts), images, golden build steps and the host
// cache. On start it makes sure the base image is there, sweeps leftovers no live workflow owns (containers, VMs,
// unfinished state files), announces the host (refreshHost) and records its capacity metrics. Its only database use
// is the log store's write half (appends of job and build output), through a LogSink.
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { ensureBaseImage } from '../activities/baseImage';
import { OUTPUT_HEARTBEAT_MS } from '../activities/heartbeats';
import { catalogLogSink, type LogSink } from '../catalog/logs';
import { createDb } from '../db/client';
import { createGoldenHostActivities } from '../activities/golden';
import { createHostCacheActivities } from '../activities/hostCache';
import { cacheDir, defaultRunRoot } from '../activities/vm/machine';
import { sweepVmLeftovers } from '../activities/sandbox/vm/machines';
import { createHostSandboxActivities, joinActivities } from '../activities/sandbox/host';
import { sweepLeftovers } from '../activities/leftovers';
import { createGithubTokens } from '../activities/githubTokens';
import { createImageActivities, type CredentialsFor } from '../activities/images';
import { boundary } from '../activities/boundary';
import { payloadDataConverter } from '../lib/codec';
import { createGithubApp } from '../lib/githubApp';
import { dockerConnection, loadConfig, loadDotEnv, type GithubAppConfig, type PreloadLimits, type StorageConfig } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { CONTAINER_LABEL, taskQueues, workflowIds } from '../lib/ids';
import type { refreshHost } from '../workflows';
import type { Tracing } from '../lib/tracing';
import { activityFailureMetrics, hostActivityMetrics, recordHostMetrics, type HostCapacity } from './metrics';
import { connectWorker, exitWithError } from './options';
import { stallInterceptors } from './stall';
import { installRuntime, tracingActivityInterceptors, workerTracing } from './runtime';
import { claimInterceptors } from '../client/actorClaims';

export interface HostWorkerDeps {
  connection: NativeConnection;
  namespace: string;
  hostId: string;
  dockerHost: string;
  storage?: StorageConfig;
  /** Lets this host mint GHCR installation tokens itself, so no token ever travels through Temporal. */
  githubApp?: GithubAppConfig;
  memoryLimitMiB?: number;
  /** RAM of every vm sandbox instead of its size's (SNAPFLOW_VM_MEMORY_MIB). */
  vmMemoryMiB?: number;
  /** Where saved machines are cached instead of the shared cache (tests: inside their stack, removed with it). */
  vmStateDir?: string;
  /** Where golden builds may read skills and repositories on this host; omitted → neither. */
  preload?: PreloadLimits;
  /** The registry host a GitHub installation token is minted for (SNAPFLOW_GHCR_HOST); omitted → ghcr.io. */
  ghcrHost?: string;
  /** Payload encryption (lib/codec.ts); must match the clients' and the control worker's. Omitted → plain payloads. */
  dataConverter?: DataConverter;
  /** OpenTelemetry (lib/tracing.ts): activity spans, children of their workflow's; omitted → none. */
  tracing?: Tracing;
  /** Receives how to read this host's capacity (memory, sandboxes running), for its metrics. */
  onCapacity?: (read: () => Promise<HostCapacity>) => void;
  /** Where jobs' and builds' output is kept whole; omitted → results carry only tails. */
  logs?: LogSink;
  /** Bytes kept per log before it is cut (SNAPFLOW_LOG_CAP_BYTES). */
  logCapBytes?: number;
}

export function createHostWorker(deps: HostWorkerDeps): Promise<Worker> {
  const docker = new Docker(dockerConnection(deps.dockerHost));
  const sandboxes = createHostSandboxActivities({
    docker,
    hostId: deps.hostId,
    dockerHost: deps.dockerHost,
    storage: deps.storage,
    memoryLimitMiB: deps.memoryLimitMiB,
    logSink: deps.logs,
    logCapBytes: deps.logCapBytes,
    ...vmPlaces(deps.hostId),
    ...(deps.vmStateDir ? { stateDir: deps.vmStateDir } : {}),
    memoryMiB: deps.vmMemoryMiB,
  });
  const runRoot = vmPlaces(deps.hostId).runRoot;
  deps.onCapacity?.(async () => {
    const [facts, running] = await Promise.all([
      sandboxes.activities.describeHost(),
      docker.listContainers({ filters: { label: [CONTAINER_LABEL], status: ['running'] } }),
    ]);
    const vmCount = existsSync(runRoot) ? readdirSync(runRoot).length : 0;
    return {
      memoryTotalMiB: facts.memoryTotalMiB,
      memoryReservedMiB: facts.memoryReservedMiB,
      running: { container: running.length, vm: vmCount },
    };
  });
  const tokens = createGithubTokens(deps.githubApp && createGithubApp(deps.githubApp));
  const ghcrHost = deps.ghcrHost ?? 'ghcr.io';
  // Decided here, from the image's own registry: an installation token only ever goes to SNAPFLOW_GHCR_HOST, and
  // storage's credentials never go with a source image (every workspace's snapshots are in storage).
  const credentialsFor: CredentialsFor = async ({ registry, installationId }) => {
    if (registry !== ghcrHost || installationId === undefined) return undefined; // public registries
    // A typed GitHub answer (suspended, uninstalled, app misconfigured) will not change on retry: fail fast.
    return boundary(() => tokens.registryCredentials(installationId));
  };
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: taskQueues.host(deps.hostId),
    dataConverter: deps.dataConverter,
    activities: joinActivities({
      sandboxes: sandboxes.activities,
      images: createImageActivities({ docker, hostId: deps.hostId, storage: deps.storage, credentialsFor, logs: deps.logs }),
      golden: createGoldenHostActivities({ docker, hostId: deps.hostId, preload: deps.preload ?? { repoHosts: [] }, logs: deps.logs }),
      cache: createHostCacheActivities({ docker, hostId: deps.hostId, storage: deps.storage, vmStates: sandboxes.vmStates }),
    }),
    interceptors: {
      activity: [
        ...tracingActivityInterceptors(deps.tracing),
        hostActivityMetrics(),
        activityFailureMetrics('host'),
        ...stallInterceptors(),
      ], // stalls only in a chaos run
    },
    // Sized for 2 cores: Docker commits and pushes are heavy, a few at a time is plenty.
    maxConcurrentActivityTaskExecutions: 4,
    // A running job's output reaches its caller through heartbeats: send them as often as the job writes them.
    maxHeartbeatThrottleInterval: OUTPUT_HEARTBEAT_MS,
    defaultHeartbeatThrottleInterval: OUTPUT_HEARTBEAT_MS,
  });
}

/** This host's VM directories (one per host: several host workers may share a machine) and its cache. */
export function vmPlaces(hostId: string): { runRoot: string; cacheDir: string } {
  return { runRoot: join(defaultRunRoot(), hostId), cacheDir: cacheDir() };
}

/** Announces this host to the control plane (catalog row with its memory) once the worker polls. */
export async function announceHost(client: Client, hostId: string, actor = 'host-worker'): Promise<void> {
  await client.workflow.execute<typeof refreshHost>('refreshHost', {
    taskQueue: taskQueues.control,
    workflowId: workflowIds.hostRefresh(hostId),
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowExecutionTimeout: '2 minutes',
    args: [{ hostId, actor }],
  });
}

/** Running, or unknown to Temporal only because it cannot be asked right now (then keep, to be safe). */
export async function workflowIsRunning(client: Client, workflowId: string): Promise<boolean> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
  } catch (err) {
    return !(err instanceof WorkflowNotFoundError);
  }
}

async function main(): Promise<void> {
  loadDotEnv();
  const config = loadConfig();
  const log = installRuntime(config, 'host', { host: config.host.id });
  const tracing = workerTracing('host');
  const connection = await connectWorker(config);
  const dataConverter = payloadDataConverter(config.payloadKey);
  const clientConnection = await Connection.connect(config.temporal.connection.options);
  const logDb = createDb(config.databaseUrl, { max: 2 });
  // Its announcements name the host workers' service actor, vouched for with SNAPFLOW_ACTOR_KEY.
  const interceptors = claimInterceptors(config.actorKey);
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace, dataConverter, interceptors });
  try {
    // Every host can start a sandbox from the base image without any registry pull.
    const docker = new Docker(dockerConnection(config.host.dockerHost));
    await ensureBaseImage(docker).catch((err: Error) => {
      throw new SnapflowError({
        code: 'DOCKER_UNAVAILABLE',
        message: `Docker at ${config.host.dockerHost} is not usable: ${err.message}`,
        hint: 'start dockerd, or fix DOCKER_HOST',
      });
    });
    const isRunning = (workflowId: string) => workflowIsRunning(client, workflowId);
    let readCapacity: (() => Promise<HostCapacity>) | undefined;
    const swept = await sweepLeftovers(docker, isRunning);
    if (swept.removed.length) log.info(`removed ${swept.removed.length} leftover temporary sandbox(es) of finished runs`);
    const sweptVms = await sweepVmLeftovers({ docker, ...vmPlaces(config.host.id) }, isRunning);
    if (sweptVms.removed.length) log.info(`removed ${sweptVms.removed.length} leftover vm(s) and state file(s) of finished runs`);
    const worker = await createHostWorker({
      connection,
      namespace: config.temporal.namespace,
      hostId: config.host.id,
      dockerHost: config.host.dockerHost,
      storage: config.storage,
      githubApp: config.githubApp,
      memoryLimitMiB: config.host.memoryLimitMiB,
      vmMemoryMiB: config.host.vmMemoryMiB,
      preload: config.preload,
      ghcrHost: config.ghcrHost,
      dataConverter,
      tracing,
      onCapacity: (read) => (readCapacity = read),
      logs: catalogLogSink(logDb.db, { retentionDays: config.logs.retentionDays }),
      logCapBytes: config.logs.capBytes,
    });
    log.info(`host worker ${config.host.id} polling ${taskQueues.host(config.host.id)} (Docker at ${config.host.dockerHost})`, {
      taskQueue: taskQueues.host(config.host.id),
      metrics: config.metricsAddress ? `http://${config.metricsAddress}/metrics` : null,
    });
    const stopMetrics = readCapacity ? recordHostMetrics(readCapacity, log) : () => undefined;
    const running = worker.run().finally(stopMetrics); // returns after SIGINT/SIGTERM once in-flight activities are done
    await announceHost(client, config.host.id, config.hostActor).then(
      () => log.info(`host ${config.host.id} registered with the control plane`),
      (err: Error) => log.warn(`host ${config.host.id} could not register yet (is the control worker running?): ${err.message}`),
    );
    await running;
  } finally {
    await tracing?.shutdown();
    await clientConnection.close();
    await connection.close();
    await logDb.close();
  }
}

if (require.main === module) main().catch((err) => exitWithError('host worker', err));
