// The real local stack, started and stopped by pid: Temporal dev server, dockerd, an htpasswd registry,
// Shared by `npm start` (scripts/dev.ts) and the jest harness (test/globalSetup.ts).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join, resolve } from 'node:path';
import Docker from 'dockerode';
import { SEARCH_ATTRIBUTES } from '../lib/ids';

export const projectRoot = resolve(__dirname, '..');
export const temporalBinary = join(projectRoot, '.tools', 'bin', 'temporal');

export interface ManagedProcess {
  name: string;
  pid: number;
  logFile: string;
}

export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? done(address.port) : fail(new Error('no port'))));
    });
  });
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ port, host });
    socket.once('connect', () => (socket.destroy(), done(true)));
    socket.once('error', () => done(false));
  });
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  child: ChildProcess,
  logFile: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}; see ${logFile}:\n${tail(logFile)}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not become ready within ${timeoutMs / 1000}s; see ${logFile}:\n${tail(logFile)}`);
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Starts a long-running child detached into its own process group, logging to a file. */
function launch(name: string, command: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { stdio: ['ignore', fd, fd], detached: true, env });
  closeSync(fd);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${name} (${command})`);
  return child;
}

/** Stops a process we started, by pid: SIGTERM, then SIGKILL after the grace period. */
export async function stopProcess(proc: Pick<ManagedProcess, 'pid' | 'name'>, graceMs = 15_000): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(proc.pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(proc.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(proc.pid, 'SIGKILL');
}

export interface TemporalOptions {
  dataDir: string;
  port: number;
  uiPort?: number; // omitted → headless
  namespace?: string;
  /** The UI decrypts payloads through this codec server (`npm run codec-server`), e.g. http://127.0.0.1:8888. */
  uiCodecEndpoint?: string;
}

export async function startTemporal(opts: TemporalOptions): Promise<ManagedProcess & { address: string; uiUrl?: string }> {
  if (!existsSync(temporalBinary)) throw new Error(`Temporal CLI missing at ${temporalBinary}: run bash scripts/provision.sh`);
  mkdirSync(opts.dataDir, { recursive: true });
  const logFile = join(opts.dataDir, 'temporal.log');
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--db-filename',
    join(opts.dataDir, 'temporal.db'),
    '--log-level',
    'warn',
  ];
  args.push('--namespace', opts.namespace ?? 'default');
  // WAL with normal sync: survives a killed server (what the chaos cases do), and every history write stops
  // waiting on a full fsync, which is most of an activity round trip on the dev server.
  args.push('--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal');
  for (const name of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${name}=Keyword`);
  if (opts.uiPort) args.push('--ui-ip', '127.0.0.1', '--ui-port', String(opts.uiPort));
  else args.push('--headless');
  if (opts.uiPort && opts.uiCodecEndpoint) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
  const child = launch('temporal', temporalBinary, args, logFile);
  await waitFor('Temporal dev server', () => portOpen(opts.port), child, logFile);
  if (opts.uiPort) await waitFor('Temporal UI', () => portOpen(opts.uiPort!), child, logFile);
  return {
    name: 'temporal',
    pid: child.pid!,
    logFile,
    address: `127.0.0.1:${opts.port}`,
    uiUrl: opts.uiPort ? `http://127.0.0.1:${opts.uiPort}` : undefined,
  };
}

export async function startDockerd(opts: { root: string }): Promise<ManagedProcess & { dockerHost: string }> {
  mkdirSync(opts.root, { recursive: true });
  const socket = join(opts.root, 'docker.sock');
  const logFile = join(opts.root, 'dockerd.log');
  // Networking off: no bridge, no iptables; every container runs with network `none`.
  const args = [
    '--bridge=none',
    '--iptables=false',
    '--ip-masq=false',
    '--ip-forward=false',
    '--data-root',
    join(opts.root, 'data'),
    '--exec-root',
    join(opts.root, 'exec'),
    '--pidfile',
    join(opts.root, 'dockerd.pid'),
    '--host',
    `unix://${socket}`,
    // Containers keep running while the daemon restarts (upgrades, crashes): sandboxes and builds survive it.
    '--live-restore',
  ];
  const child = launch('dockerd', 'dockerd', args, logFile);
  const docker = new Docker({ socketPath: socket });
  await waitFor('dockerd', async () => existsSync(socket) && (await docker.ping(), true), child, logFile);
  return { name: 'dockerd', pid: child.pid!, logFile, dockerHost: `unix://${socket}` };
}

export interface RegistryOptions {
  dir: string;
  port: number;
  /** Without credentials the registry is open (stands in for a public registry in tests). */
  username?: string;
  password?: string;
  /** Extra htpasswd users, e.g. the GHCR stand-in's `x-access-token` with an installation token. */
  users?: Array<{ username: string; password: string }>;
  /** Refuses every upload (Distribution's maintenance mode): what a full or frozen storage looks like. */
  readOnly?: boolean;
}

export async function startRegistry(opts: RegistryOptions): Promise<ManagedProcess & { url: string }> {
  mkdirSync(opts.dir, { recursive: true });
  const htpasswdFile = join(opts.dir, 'htpasswd');
  const users = [...(opts.username && opts.password ? [{ username: opts.username, password: opts.password }] : []), ...(opts.users ?? [])];
  users.forEach((user, i) => {
    // -i reads the password from stdin so it never shows in a process list; -B: the registry wants bcrypt.
    const made = spawnSync('htpasswd', [i === 0 ? '-Bic' : '-Bi', htpasswdFile, user.username], { input: user.password });
    if (made.status !== 0) throw new Error(`htpasswd failed: ${made.stderr}`);
  });
  const configFile = join(opts.dir, 'config.yml');
  writeFileSync(
    configFile,
    [
      'version: 0.1',
      'log: { level: warn }',
      'storage:',
      `  filesystem: { rootdirectory: ${join(opts.dir, 'data')} }`,
      '  delete: { enabled: true }',
      ...(opts.readOnly ? ['  maintenance: { readonly: { enabled: true } }'] : []),
      `http: { addr: "127.0.0.1:${opts.port}" }`,
      ...(users.length ? [`auth: { htpasswd: { realm: snapflow, path: ${htpasswdFile} } }`] : []),
      '',
    ].join('\n'),
  );
  const logFile = join(opts.dir, 'registry.log');
  const child = launch('registry', 'docker-registry', ['serve', configFile], logFile);
  const url = `http://127.0.0.1:${opts.port}`;
  await waitFor('registry', async () => (await fetch(`${url}/v2/`)).status === (users.length ? 401 : 200), child, logFile);
  return { name: 'registry', pid: child.pid!, logFile, url };
}

export { ensureBaseImage } from '../activities/baseImage';

/** Our processes still running whose command line names `dir` (a dockerd's containerd and containerd-shims). */
export function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(`${dir}/`)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Mount points under `dir` (overlay layers, netns, shm), deepest first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((mount) => mount.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * Stops a dockerd we started so that nothing of it outlives the stop: its containers are stopped first (with
 * --live-restore they would keep running without the daemon), then the daemon; what is left under its root
 * (containerd, shims, mounts) is ended and unmounted, so the directory can be removed. Containers are stopped,
 * not removed: the next start of the same root still has them.
 */
export async function stopDockerd(proc: Pick<ManagedProcess, 'pid' | 'name'>, root: string): Promise<{ containers: number }> {
  const docker = new Docker({ socketPath: join(root, 'docker.sock') });
  const running = await docker.listContainers().catch(() => []);
  await Promise.all(
    running.map((c) =>
      docker
        .getContainer(c.Id)
        .stop({ t: 10 })
        .catch(() => undefined),
    ),
  );
  await stopProcess(proc, 30_000);
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const left = processesUnder(root);
    if (!left.length) break;
    for (const pid of left) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  for (const mount of mountsUnder(root)) {
    if (spawnSync('umount', [mount]).status !== 0) spawnSync('umount', ['-l', mount]);
  }
  return { containers: running.length };
}
