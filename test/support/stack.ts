// Per test file: a fresh catalog database, in-process workers against the shared real stack, a client.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { LogLevel, LogMetadata } from '@temporalio/common';
import { NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import Docker from 'dockerode';
import { createDb, type DbHandle } from '../../db/client';
import { catalogLogSink } from '../../catalog/logs';
import { SnapflowClient } from '../../client';
import { payloadDataConverter } from '../../lib/codec';
import { loadConfig, type Config, type GithubAppConfig, type PreloadLimits, type StorageConfig } from '../../lib/config';
import { createControlWorker } from '../../workers/control';
import { sweepVmLeftovers } from '../../activities/sandbox/vm/machines';
import { createHostWorker, vmPlaces } from '../../workers/host';
import { JsonLogger } from '../../workers/log';
import { sandboxes } from '../../db/schema';
import { WORKFLOW_LABEL, workflowIds } from '../../lib/ids';
import { createTestDatabase, type TestDatabase } from './db';
import { recordPayloadKey, scanCatalog, scanFiles } from './secrets';
import { readTestStack, type TestStackState } from './stackState';
import { workerLogFile } from './workerLogs';

let runtimeQuiet = false;
/**
 * The SDK's native runtime logs every worker state change; tests only want warnings on stderr. Every line (debug
 * and up, the JSON lines a worker process writes, redacted alike) also goes to this test file's worker log
 * (test/support/workerLogs.ts), so a test can scan what the suite's workers logged.
 */
/** The running jest test file, or nothing when a benchmark or script uses this stack outside jest. */
const testPath = (): string | undefined => (typeof expect === 'undefined' ? undefined : expect.getState().testPath);

function quietRuntime(stack: TestStackState): void {
  if (runtimeQuiet) return;
  runtimeQuiet = true;
  // This test file's worker log, and the stack-wide one the secret scan reads at the end of the run.
  const files = [workerLogFile(`in-process-${basename(testPath() ?? String(process.pid))}`), scanFiles(stack.dir).workerLog];
  const sink = new JsonLogger({
    level: 'debug',
    fields: { worker: 'in-process' },
    secrets: [stack.storage.password],
    write: (line) => {
      for (const file of files) {
        try {
          appendFileSync(file, line);
        } catch {
          // the stack's directory is gone (teardown): nothing left to scan
        }
      }
    },
  });
  const line =
    (level: 'WARN' | 'ERROR') =>
    (message: string, meta?: LogMetadata): void => {
      sink.log(level, message, meta);
      process.stderr.write(`[temporal ${level.toLowerCase()}] ${message}\n`);
    };
  Runtime.install({
    logger: {
      log: (level: LogLevel, message: string, meta?: LogMetadata) =>
        level === 'WARN' || level === 'ERROR' ? line(level)(message, meta) : sink.log(level, message, meta),
      trace: (m: string, meta?: LogMetadata) => sink.trace(m, meta),
      debug: (m: string, meta?: LogMetadata) => sink.debug(m, meta),
      info: (m: string, meta?: LogMetadata) => sink.info(m, meta),
      warn: line('WARN'),
      error: line('ERROR'),
    },
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
    /** Bytes kept per log before it is cut (default SNAPFLOW_LOG_CAP_BYTES's). */
    logCapBytes?: number;
    /** RAM of its vm sandboxes; 512 MiB unless given (the sizes' own RAM is more than tests need). */
    vmMemoryMiB?: number;
    /** Defaults to the test env's: skills and local repositories under the stack's directory. */
    preload?: PreloadLimits;
  }): Promise<RunningWorker>;
  teardown(): Promise<void>;
}

/** A fresh host id per test file: workflow ids and queues never collide across files. */
/**
 * Every sandbox a test file made, gone before its stack is torn down: destroyed through its workflow, or the workflow
 * terminated when that cannot answer, and any container still labelled with it removed.
 */
export async function destroyEverySandbox(t: TestEnv | undefined): Promise<void> {
  for (const box of t ? await t.db.db.select().from(sandboxes) : []) {
    const workflowId = workflowIds.sandbox(box.id);
    await t!.client.sandboxes.destroy(box.id).catch(() =>
      t!.client.temporal.workflow
        .getHandle(workflowId)
        .terminate('test cleanup')
        .catch(() => undefined),
    );
    for (const c of await t!.docker.listContainers({ all: true, filters: { label: [`${WORKFLOW_LABEL}=${workflowId}`] } }))
      await t!.docker.getContainer(c.Id).remove({ force: true });
  }
}

/** The snapflow bin against this stack (its env, its directory), as a user runs it; killed if it hangs past `timeoutMs`. */
export function runCli(t: TestEnv, args: string[], timeoutMs = 90_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, '..', '..', 'client', 'bin', 'snapflow.js'), ...args], {
      env: { ...process.env, ...t.env },
      cwd: t.stack.dir,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill(), timeoutMs);
    child.on('error', reject).on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

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
    // Host workers a test starts as processes keep their VMs inside the stack's directory, with test-sized RAM.
    SNAPFLOW_VM_RUN_DIR: join(stack.dir, 'vm-run'),
    SNAPFLOW_VM_MEMORY_MIB: '512',
    // Workers check every actor's signed claim, as in production; the test's client signs with the same key.
    SNAPFLOW_ACTOR_KEY: randomBytes(32).toString('base64'),
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
  const vmHosts = new Set<string>();
  /** Saved machines of this env's hosts stay inside the stack's directory (gigabytes over a run otherwise). */
  const vmStateDir = (hostId: string): string => join(stack.dir, 'vm', hostId);
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
            registryConfig: config.registryConfig,
            hostCacheKeep: config.hostCacheKeep,
            operators: config.operators,
            hostActor: config.hostActor,
            actorKey: config.actorKey,
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
        vmMemoryMiB: opts.vmMemoryMiB ?? 512,
        vmStateDir: vmStateDir(opts.hostId),
        preload: opts.preload ?? config.preload,
        ghcrHost: config.ghcrHost,
        dataConverter,
        logs: catalogLogSink(db.db, { retentionDays: config.logs.retentionDays }),
        logCapBytes: opts.logCapBytes,
      });
      vmHosts.add(opts.hostId);
      return track(await run(worker));
    },
    async teardown() {
      for (const w of workers.reverse()) await w.stop().catch(() => undefined);
      // No QEMU outlives its test: every VM of this env's hosts goes, whatever its sandbox's state.
      const docker = new Docker({ socketPath: stack.dockerHost.replace('unix://', '') });
      for (const hostId of vmHosts) {
        const places = { ...vmPlaces(hostId), stateDir: vmStateDir(hostId) };
        await sweepVmLeftovers({ docker, ...places }, async () => false).catch((err: Error) => console.error(`vm sweep: ${err.message}`));
        rmSync(places.runRoot, { recursive: true, force: true });
        rmSync(places.stateDir, { recursive: true, force: true });
      }
      await client.close();
      await connection.close();
      await scanCatalog(stack, db, database.url).catch((err: Error) => console.error(`catalog secret scan failed: ${err.message}`));
      await db.close();
      await database.drop();
    },
  };
}
