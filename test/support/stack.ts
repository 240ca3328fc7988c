// Per test file: a fresh catalog database, in-process workers against the shared real stack, a client.
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import Docker from 'dockerode';
import { createDb, type DbHandle } from '../../db/client';
import { SnapflowClient } from '../../client';
import { payloadDataConverter } from '../../lib/codec';
import { loadConfig, type Config, type GithubAppConfig, type PreloadLimits, type StorageConfig } from '../../lib/config';
import { createControlWorker } from '../../workers/control';
import { createHostWorker } from '../../workers/host';
import { createTestDatabase, type TestDatabase } from './db';
import { recordPayloadKey, scanCatalog, scanFiles } from './secrets';
import { readTestStack, type TestStackState } from './stackState';

let runtimeQuiet = false;
/**
 * The SDK's native runtime logs every worker state change; tests only want warnings on the terminal. Every line, at
 * every level, also goes to the stack's worker log, which the secret scan reads at the end of the run.
 */
function quietRuntime(stack: TestStackState): void {
  if (runtimeQuiet) return;
  runtimeQuiet = true;
  const file = scanFiles(stack.dir).workerLog;
  const keep = (level: string, message: string, meta?: unknown): void => {
    try {
      appendFileSync(file, `${level} ${message} ${meta === undefined ? '' : JSON.stringify(meta)}\n`);
    } catch {
      // the stack's directory is gone (teardown): nothing left to scan
    }
  };
  const line =
    (level: string) =>
    (message: string, meta?: unknown): void => {
      keep(level, message, meta);
      if (level === 'warn' || level === 'error') process.stderr.write(`[temporal ${level}] ${message}\n`);
    };
  Runtime.install({
    logger: {
      log: (level: string, message: string, meta?: unknown) => keep(level, message, meta),
      trace: line('trace'),
      debug: line('debug'),
      info: line('info'),
      warn: line('warn'),
      error: line('error'),
    } as never,
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
  const stack = readTestStack();
  quietRuntime(stack);
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
  if (config.payloadKey) recordPayloadKey(stack, config.payloadKey.id, config.payloadKey.key.toString('base64'));
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
      await scanCatalog(stack, db, database.url).catch((err: Error) => console.error(`catalog secret scan failed: ${err.message}`));
      await db.close();
      await database.drop();
    },
  };
}
