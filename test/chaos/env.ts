// A whole snapflow stack owned by one chaos run: its own Temporal dev server, PostgreSQL, dockerd, snapshot
// storage and a public registry, and both workers as child processes under a small supervisor (as a real
// deployment's process manager would restart a crashed worker). Every part can be killed and restarted by pid.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { SnapflowClient } from '../../client';
import { createDb, type DbHandle } from '../../db/client';
import { ensureDatabase, runMigrations } from '../../db/migrate';
import { loadConfig } from '../../lib/config';
import { bundleWorkflows } from '../../scripts/bundle-workflows';
import {
  ensureBaseImage,
  freePort,
  portOpen,
  startDockerd,
  startRegistry,
  startTemporal,
  stopProcess,
  type ManagedProcess,
} from '../../scripts/stack';
import { superviseWorker, type SupervisedWorker } from '../../scripts/supervisor';
import { readStallLog, type StallRecord } from '../../workers/stall';
import { startHogs, type Hogs } from './load';

const PG_BIN = '/usr/lib/postgresql/15/bin';

/** A worker under the shared supervisor; `restarts` counts unexpected exits (a worker that lost Temporal or Postgres for too long). */
export type Supervised = SupervisedWorker;

export interface ChaosEnv {
  dir: string;
  env: Record<string, string>;
  client: SnapflowClient;
  db: DbHandle;
  docker: Docker;
  hostId: string;
  /** This host's VM directories and its cache of guest roots and saved machines (both inside `dir`). */
  vm: { runRoot: string; cacheDir: string };
  publicRegistry: string;
  storage: { url: string; username: string; password: string };
  workers: { control: Supervised; host: Supervised };
  /** The stress-ng process group saturating the host (`load`), if any. */
  hogs?: Hogs;
  /** What the workers' commit-then-stall interceptor did (`stall`): one record per stall and per retry after one. */
  stalls(): StallRecord[];
  killHostWorker(): Promise<void>;
  startHostWorker(): Promise<void>;
  restartTemporal(): Promise<void>;
  restartPostgres(): Promise<void>;
  restartStorage(opts?: { readOnly?: boolean; downForMs?: number }): Promise<void>;
  restartDockerd(): Promise<void>;
  close(): Promise<void>;
}

/** QEMU processes whose VM directory is under `runRoot`, by pid, with that directory's name (the VM id). */
export function vmProcesses(runRoot: string): Array<{ pid: number; id: string }> {
  const found: Array<{ pid: number; id: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    if (!cmdline.startsWith('qemu-system')) continue;
    const id = cmdline.split(`${runRoot}/`)[1]?.split('/')[0];
    if (id) found.push({ pid: Number(entry), id });
  }
  return found;
}

/** Starts PostgreSQL 15 as the postgres user in our own data dir (setpriv execs, so the pid is postgres's). */
function startPostgres(dir: string, port: number): ChildProcess {
  const asPostgres = process.getuid?.() === 0 ? ['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', '--'] : [];
  const [cmd, ...args] = [
    ...asPostgres,
    join(PG_BIN, 'postgres'),
    '-D',
    join(dir, 'data'),
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
  ];
  return spawn(cmd!, args, { stdio: 'ignore', detached: true });
}

async function waitPort(port: number, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await portOpen(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not open port ${port}`);
}

export interface ChaosOptions {
  /** Saturate the host (a CPU hog per core and an I/O hog) once the stack is up, until `close`. */
  load?: boolean;
  /** SNAPFLOW_CHAOS_STALL for both workers: `*`, `writes` or activity types whose first attempt commits, then stalls. */
  stall?: string;
  /**
   * With `stall`: the short calls' 30 s start-to-close becomes this in the workflow bundle (workers/stallWorkflow.ts),
   * so each of their stalls costs this instead of 30 s. Omitted → the product's timeouts.
   */
  stallTimeoutMs?: number;
}

export async function startChaosEnv(opts: ChaosOptions = {}): Promise<ChaosEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'sfc-'));
  chmodSync(dir, 0o755); // the postgres user must reach its data dir
  const processes: ManagedProcess[] = [];
  const ports = { temporal: await freePort(), pg: await freePort(), storage: await freePort(), public: await freePort() };
  const storage = { username: 'snapflow', password: randomBytes(18).toString('base64url') };

  // PostgreSQL
  const pgDir = join(dir, 'pg');
  mkdirSync(pgDir);
  if (process.getuid?.() === 0) spawnSync('chown', ['postgres:postgres', pgDir]);
  const asPostgres = process.getuid?.() === 0 ? ['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', '--'] : [];
  const init = spawnSync(
    asPostgres[0] ?? join(PG_BIN, 'initdb'),
    [
      ...asPostgres.slice(1),
      ...(asPostgres.length ? [join(PG_BIN, 'initdb')] : []),
      '-D',
      join(pgDir, 'data'),
      '-A',
      'trust',
      '-U',
      'postgres',
      '--no-sync',
    ],
    { encoding: 'utf8' },
  );
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  let pg = startPostgres(pgDir, ports.pg);
  await waitPort(ports.pg, 'postgres');
  const databaseUrl = `postgres://postgres@127.0.0.1:${ports.pg}/snapflow`;
  for (let i = 0; ; i++) {
    try {
      await ensureDatabase(databaseUrl);
      break;
    } catch (err) {
      if (i > 50) throw err; // the port opens a moment before connections are accepted
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await runMigrations(databaseUrl);

  let temporal = await startTemporal({ dataDir: join(dir, 'temporal'), port: ports.temporal });
  let dockerd = await startDockerd({ root: join(dir, 'docker') });
  let storageRegistry = await startRegistry({ dir: join(dir, 'storage'), port: ports.storage, ...storage });
  const publicRegistry = await startRegistry({ dir: join(dir, 'public'), port: ports.public });
  processes.push(publicRegistry);
  const bundlePath = await bundleWorkflows(join(dir, 'workflow-bundle.js'), {
    stallTimeoutMs: opts.stall ? opts.stallTimeoutMs : undefined,
  });
  const docker = new Docker({ socketPath: dockerd.dockerHost.replace('unix://', '') });
  await ensureBaseImage(docker);

  const hostId = `chaos-${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_UI_URL: 'http://127.0.0.1:8233',
    SNAPFLOW_HOST_ID: hostId,
    DOCKER_HOST: dockerd.dockerHost,
    SNAPFLOW_STORAGE_URL: storageRegistry.url,
    SNAPFLOW_STORAGE_USERNAME: storage.username,
    SNAPFLOW_STORAGE_PASSWORD: storage.password,
    SNAPFLOW_WORKFLOW_BUNDLE: bundlePath,
    SNAPFLOW_REPOS_ROOT: dir,
    SNAPFLOW_SKILLS_ROOT: dir,
    // Small machines, as the tests run them; VM directories and saved states of this run only, so the audit
    // sees exactly what this host left.
    SNAPFLOW_VM_MEMORY_MIB: '512',
    SNAPFLOW_VM_RUN_DIR: join(dir, 'vm'),
    SNAPFLOW_CACHE_DIR: join(dir, 'cache'),
    ...(opts.stall ? { SNAPFLOW_CHAOS_STALL: opts.stall, SNAPFLOW_CHAOS_STALL_LOG: join(dir, 'stalls.jsonl') } : {}),
  };
  writeFileSync(join(dir, 'env.json'), JSON.stringify({ ...env, SNAPFLOW_STORAGE_PASSWORD: '…' }));

  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const supervise = (name: string, script: string): SupervisedWorker =>
    superviseWorker({ name, script, cwd: dir, env: { ...process.env, ...env }, logFile: join(logs, `${name}.log`) });
  const control = supervise('control', 'workers/control.ts');
  const host = supervise('host', 'workers/host.ts');
  control.start();
  host.start();

  const client = await SnapflowClient.connect(loadConfig(env));
  const db = createDb(databaseUrl);
  // Ready once the host has registered through the control worker.
  for (let i = 0; ; i++) {
    try {
      await client.refreshHost(hostId);
      break;
    } catch (err) {
      if (i > 120) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  const hogs = opts.load ? startHogs() : undefined;

  return {
    dir,
    env,
    hogs,
    stalls() {
      return readStallLog(join(dir, 'stalls.jsonl'));
    },
    client,
    db,
    docker,
    hostId,
    vm: { runRoot: join(dir, 'vm', hostId), cacheDir: join(dir, 'cache') },
    publicRegistry: publicRegistry.url.replace('http://', ''),
    storage: { url: storageRegistry.url, ...storage },
    workers: { control, host },
    async killHostWorker() {
      await host.stop({ signal: 'SIGKILL' }); // not an unexpected exit: the case restarts it when it wants
    },
    async startHostWorker() {
      host.start();
    },
    async restartTemporal() {
      process.kill(temporal.pid, 'SIGKILL'); // a crash, not a shutdown; same SQLite file afterwards
      await new Promise((r) => setTimeout(r, 1500));
      temporal = await startTemporal({ dataDir: join(dir, 'temporal'), port: ports.temporal });
    },
    async restartPostgres() {
      pg.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 1500));
      pg = startPostgres(pgDir, ports.pg);
      await waitPort(ports.pg, 'postgres');
    },
    async restartStorage(opts = {}) {
      await stopProcess(storageRegistry, 2000);
      await new Promise((r) => setTimeout(r, opts.downForMs ?? 1000));
      storageRegistry = await startRegistry({ dir: join(dir, 'storage'), port: ports.storage, ...storage, readOnly: opts.readOnly });
    },
    async restartDockerd() {
      await stopProcess(dockerd, 20_000);
      dockerd = await startDockerd({ root: join(dir, 'docker') });
    },
    async close() {
      hogs?.stop();
      await client.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      await host.stop();
      await control.stop();
      // VMs outlive their worker (QEMU is daemonized): what a case left running goes with the run.
      for (const { pid } of vmProcesses(join(dir, 'vm', hostId))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      const leftovers = await docker.listContainers({ all: true }).catch(() => []);
      for (const c of leftovers)
        await docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined);
      for (const p of [storageRegistry, ...processes, dockerd, temporal]) await stopProcess(p, 10_000).catch(() => undefined);
      pg.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 1000));
      // A restarted dockerd can leave its data root bind-mounted onto itself: unmount what is ours, deepest first.
      const mounts = readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1] ?? '')
        .filter((m) => m.startsWith(`${dir}/`));
      for (const m of mounts.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
