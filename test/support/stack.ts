// Per test file: a fresh catalog database, in-process workers against the shared real stack, a client.
import { randomBytes } from 'node:crypto';
import { NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import Docker from 'dockerode';
import { createDb, type DbHandle } from '../../db/client';
import { SnapflowClient } from '../../client';
import { payloadDataConverter } from '../../lib/codec';
import { loadConfig, type Config, type GithubAppConfig, type PreloadLimits, type StorageConfig } from '../../lib/config';
import { createControlWorker } from '../../workers/control';
import { createHostWorker } from '../../workers/host';
import { createTestDatabase, type TestDatabase } from './db';
import { readTestStack, type TestStackState } from './stackState';

let runtimeQuiet = false;
/** The SDK's native runtime logs every worker state change; tests only want warnings. */
function quietRuntime(): void {
  if (runtimeQuiet) return;
  runtimeQuiet = true;
  const line =
    (level: string) =>
    (message: string): void =>
      void process.stderr.write(`[temporal ${level}] ${message}\n`);
  const ignore = (): void => undefined;
  Runtime.install({
    logger: { log: ignore, trace: ignore, debug: ignore, info: ignore, warn: line('warn'), error: line('error') } as never,
  });
}

export interface RunningWorker {
  worker: Worker;
  stop(): Promise<void>;
}

export interface TestEnv {
  stack: TestStackState;
  database: TestDatabase;
  db: DbHandle;
  config: Config;
  env: Record<string, string>;
  client: SnapflowClient;
  docker: Docker;
  connection: NativeConnection;
  startControlWorker(opts?: { githubApp?: GithubAppConfig }): Promise<RunningWorker>;
  startHostWorker(opts: {
    hostId: string;
    dockerHost?: string;
    storage?: StorageConfig | null;
    githubApp?: GithubAppConfig;
    memoryLimitMiB?: number;
    /** Defaults to the test env's: skills and local repositories under the stack's directory. */
    preload?: PreloadLimits;
  }): Promise<RunningWorker>;
  teardown(): Promise<void>;
}

/** A fresh host id per test file: workflow ids and queues never collide across files. */
export function uniqueHostId(prefix = 'h'): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

async function run(worker: Worker): Promise<RunningWorker> {
  const running = worker.run();
  return {
    worker,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

export async function createTestEnv(options: { env?: Record<string, string> } = {}): Promise<TestEnv> {
  quietRuntime();
  const stack = readTestStack();
  const database = await createTestDatabase();
  const env: Record<string, string> = {
    DATABASE_URL: database.url,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    TEMPORAL_NAMESPACE: 'default',
    DOCKER_HOST: stack.dockerHost,
    SNAPFLOW_STORAGE_URL: stack.storage.url,
    SNAPFLOW_STORAGE_USERNAME: stack.storage.username,
    SNAPFLOW_STORAGE_PASSWORD: stack.storage.password,
    // Test repositories and skills are made under the stack's directory (test/support/repos.ts).
    SNAPFLOW_SKILLS_ROOT: stack.dir,
    SNAPFLOW_REPOS_ROOT: stack.dir,
    ...options.env,
  };
  const config = loadConfig(env);
  const db = createDb(database.url);
  const connection = await NativeConnection.connect({ address: stack.temporalAddress });
  const client = await SnapflowClient.connect(config);
  // SNAPFLOW_PAYLOAD_KEY in `env` encrypts payloads in the client (via config) and in both workers alike.
  const dataConverter = payloadDataConverter(config.payloadKey);
  const workers: RunningWorker[] = [];
  const track = (w: RunningWorker): RunningWorker => (workers.push(w), w);

  return {
    stack,
    database,
    db,
    config,
    env,
    client,
    connection,
    docker: new Docker({ socketPath: stack.dockerHost.replace('unix://', '') }),
    async startControlWorker(opts = {}) {
      return track(
        await run(
          await createControlWorker({
            connection,
            namespace: 'default',
            db: db.db,
            client: client.temporal,
            bundlePath: stack.bundlePath,
            githubApp: opts.githubApp,
            storage: config.storage,
            hostCacheKeep: config.hostCacheKeep,
            operators: config.operators,
            hostActor: config.hostActor,
            dataConverter,
          }),
        ),
      );
    },
    async startHostWorker(opts) {
      const worker = await createHostWorker({
        connection,
        namespace: 'default',
        hostId: opts.hostId,
        dockerHost: opts.dockerHost ?? stack.dockerHost,
        storage: opts.storage === null ? undefined : (opts.storage ?? stack.storage),
        githubApp: opts.githubApp,
        memoryLimitMiB: opts.memoryLimitMiB,
        preload: opts.preload ?? config.preload,
        ghcrHost: config.ghcrHost,
        dataConverter,
      });
      return track(await run(worker));
    },
    async teardown() {
      for (const w of workers.reverse()) await w.stop().catch(() => undefined);
      await client.close();
      await connection.close();
      await db.close();
      await database.drop();
    },
  };
}
