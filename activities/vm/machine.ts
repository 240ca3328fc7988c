// One QEMU process: where its tools are, its command line, starting it, waiting for its guest agent, stopping it.
// Everything a VM leaves (sockets, pidfile, console log, handle) is inside its own directory.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, realpathSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { SnapflowError } from '../../lib/errors';
import { machineProfile as formatMachineProfile } from '../../lib/machineProfile';
import { GuestAgentClient } from './guestAgent';
import { QmpClient } from './qmp';
import type { Accel } from './types';

const QEMU = 'qemu-system-x86_64';
/** Where the agent lives inside the guest's root; it runs as the guest's first process. */
export const GUEST_AGENT_PATH = '/.snapflow/agent';
/**
 * The guest kernel's command line. An emulated vCPU on a loaded host runs in bursts, so nothing at boot may depend
 * on how fast it runs: `no_timer_check` skips the IO-APIC timer check that panics a starved guest ("timer doesn't
 * work"). A saved machine keeps the command line it booted with (it is in its memory), so changing this never
 * breaks a restore; new boots pick it up.
 */
export const KERNEL_ARGS = `console=ttyS0 panic=-1 reboot=t rdinit=${GUEST_AGENT_PATH} quiet no_timer_check`;
/** The virtio-serial port the guest agent opens (guest/agent/channel.go looks it up by this name). */
const AGENT_PORT_NAME = 'org.snapflow.agent';
/**
 * The device layout, part of every machine profile: a saved machine restores only onto the devices it was saved
 * with. Layout 2 moved the agent's channel from a second UART to virtio-serial; machines saved before it have no
 * layout in their profile and are skipped by the restore order as another machine profile.
 */
export const DEVICE_LAYOUT = 2;
/**
 * The CPU the guest sees: x86-64-v2 (SSE4.2, POPCNT), which distribution binaries expect, and nothing host-specific
 * (`max` would pass the host's model, its extra features and nested virtualisation through). Part of every saved
 * machine: a state restores only with the model it was saved with.
 */
export const CPU_MODEL = 'Nehalem';
/**
 * QEMU's own seccomp filter (QEMU has no use for these once it runs): no obsolete system calls, no setuid/setgid or
 * capability changes, no scheduler/affinity/priority changes. Spawning stays allowed: saving and restoring a
 * machine runs its migration stream through `exec:` (zstd).
 */
export const QEMU_SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,resourcecontrol=deny';
/** sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export interface VmTools {
  kernel: string;
  kernelVersion: string;
  agent: string;
}

/** The kernel and agent provisioning put in `.tools/vm` (scripts/provision.sh). */
export function vmTools(toolsDir = resolve(__dirname, '..', '..', '.tools', 'vm')): VmTools {
  const kernel = join(toolsDir, 'vmlinuz');
  const agent = join(toolsDir, 'snapflow-agent');
  const versionFile = join(toolsDir, 'kernel-version');
  if (!existsSync(kernel) || !existsSync(agent) || !existsSync(versionFile) || spawnSync(QEMU, ['--version']).status !== 0) {
    throw new SnapflowError({
      code: 'VM_UNAVAILABLE',
      message: `QEMU, the guest kernel or the guest agent is missing (looked in ${toolsDir})`,
      hint: 'run bash scripts/provision.sh',
    });
  }
  return { kernel: realpathSync(kernel), agent: realpathSync(agent), kernelVersion: readFileSync(versionFile, 'utf8').trim() };
}

export function cacheDir(): string {
  return process.env.SNAPFLOW_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'snapflow');
}

/** Short on purpose: the VM's unix sockets live under it. */
export function defaultRunRoot(): string {
  return process.env.SNAPFLOW_VM_RUN_DIR ?? join(tmpdir(), 'sfvm');
}

/**
 * Makes `dir` (and what is missing above it) mode 0700, or checks the one that is there: a real directory (not a
 * symlink), owned by this process's user, writable by no one else. The default lives in /tmp under a predictable
 * name, so another local user may have made it first, to read sockets or plant links: that one is refused. One this
 * user made with a looser mode (an older version) is tightened.
 */
export function privateDir(dir: string, setting = 'SNAPFLOW_VM_RUN_DIR'): string {
  const uid = process.getuid?.() ?? 0;
  const refuse = (why: string): never => {
    throw new SnapflowError({
      code: 'CONFIG_INVALID',
      field: setting,
      message: `${dir} is ${why}; the directory of the vm sockets and state must be this worker's alone`,
      hint: `remove it, or set ${setting} to a directory this user owns with mode 0700`,
    });
  };
  const checked = (path: string) => {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) refuse('a symlink');
    if (!st.isDirectory()) refuse('not a directory');
    if (st.uid !== uid) refuse(`owned by uid ${st.uid}, not by this worker (uid ${uid})`);
    if (st.mode & 0o022) refuse(`writable by others (mode ${(st.mode & 0o777).toString(8)})`);
    if (st.mode & 0o077) chmodSync(path, 0o700);
  };
  if (!existsSync(dirname(dir))) privateDir(dirname(dir), setting);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  checked(dir);
  return dir;
}

export interface QemuFacts {
  version: string;
  /** The concrete machine type `pc` stands for (e.g. pc-i440fx-7.2): a saved machine needs exactly that one. */
  machine: string;
}

let facts: QemuFacts | undefined;
export function qemuFacts(): QemuFacts {
  if (facts) return facts;
  const version = /version (\d+\.\d+\.\d+)/.exec(spawnSync(QEMU, ['--version'], { encoding: 'utf8' }).stdout)?.[1];
  const machine = /^pc\s.*\(alias of (\S+)\)/m.exec(spawnSync(QEMU, ['-machine', 'help'], { encoding: 'utf8' }).stdout)?.[1];
  if (!version || !machine)
    throw new SnapflowError({ code: 'VM_UNAVAILABLE', message: `cannot read ${QEMU}'s version or pc machine type` });
  return (facts = { version, machine });
}

/** The machine profile a saved VM needs to restore: QEMU version, machine type, accel, RAM, vCPUs, kernel. */
export function machineProfile(input: { accel: Accel; memoryMiB: number; vcpus: number; kernelVersion: string; qemu?: QemuFacts }): string {
  const { version, machine } = input.qemu ?? qemuFacts();
  return formatMachineProfile({ ...input, qemuVersion: version, machine, deviceLayout: DEVICE_LAYOUT });
}

export interface MachineSpec {
  dir: string;
  accel: Accel;
  machine: string;
  cpu?: string;
  memoryMiB: number;
  vcpus: number;
  kernel: string;
  /** The guest's root filesystem; absent when restoring (the root is in the saved memory). */
  initrd?: string;
  /** A zstd state file to load instead of booting. */
  incoming?: string;
  /** The guest kernel's command line; KERNEL_ARGS unless a benchmark compares others. */
  kernelArgs?: string;
}

export const machineFiles = (dir: string) => ({
  agentSocket: join(dir, 'agent.sock'),
  qmpSocket: join(dir, 'qmp.sock'),
  pidFile: join(dir, 'qemu.pid'),
  console: join(dir, 'console.log'),
  /** QEMU's own stderr. */
  log: join(dir, 'qemu.log'),
  handle: join(dir, 'vm.json'),
});

/** QEMU's migration `exec:` runs through /bin/sh: paths are single-quoted, and may not contain a quote. */
export function shellPath(path: string): string {
  if (path.includes("'")) throw new SnapflowError({ code: 'VALIDATION_FAILED', message: `path may not contain a quote: ${path}` });
  return `'${path}'`;
}

export function qemuArgs(spec: MachineSpec): string[] {
  const files = machineFiles(spec.dir);
  for (const socket of [files.agentSocket, files.qmpSocket]) {
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      throw new SnapflowError({
        code: 'VALIDATION_FAILED',
        message: `socket path too long for a unix socket: ${socket}`,
        hint: 'set SNAPFLOW_VM_RUN_DIR to a short directory',
      });
    }
  }
  // No -netdev/-nic and -nodefaults: the guest has no network device at all.
  const args = [
    ['-machine', `${spec.machine},accel=${spec.accel}`],
    ['-cpu', spec.cpu ?? CPU_MODEL, '-m', String(spec.memoryMiB), '-smp', String(spec.vcpus)],
    ['-sandbox', QEMU_SANDBOX],
    ['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
    ['-kernel', spec.kernel, '-append', spec.kernelArgs ?? KERNEL_ARGS],
    spec.initrd ? ['-initrd', spec.initrd] : [],
    // ttyS0 carries the kernel's messages only; the agent's channel is a virtio-serial port (a 16550 UART moves
    // ~40 KB/s under TCG, a virtio port MB/s), found in the guest by its name.
    ['-serial', `file:${files.console}`],
    ['-device', 'virtio-serial-pci,id=agentbus', '-chardev', `socket,id=agent,path=${files.agentSocket},server=on,wait=off`],
    ['-device', `virtserialport,bus=agentbus.0,chardev=agent,name=${AGENT_PORT_NAME}`],
    ['-qmp', `unix:${files.qmpSocket},server=on,wait=off`],
    // Not -daemonize: its setsid() is a call the seccomp filter refuses. The worker starts QEMU detached instead.
    ['-pidfile', files.pidFile],
    spec.incoming ? ['-incoming', `exec:zstd -dc ${shellPath(spec.incoming)}`] : [],
  ];
  return args.flat();
}

/** Starts QEMU daemonized (it outlives the worker process) and returns its pid. */
/**
 * Starts QEMU in a session of its own (it outlives the worker process) and returns its pid once its QMP socket is
 * there, that is once its devices and sockets are set up. Its stderr goes to `qemu.log` in the VM's directory.
 */
export async function startQemu(spec: MachineSpec, readyTimeoutMs = 30_000): Promise<number> {
  const files = machineFiles(spec.dir);
  const log = openSync(files.log, 'w', 0o600);
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(QEMU, qemuArgs(spec), { detached: true, stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  child.unref();
  let exit: number | null | undefined;
  let spawnError: Error | undefined;
  child.once('exit', (code, signal) => (exit = code ?? (signal ? -1 : null)));
  child.once('error', (err) => (spawnError = err));
  const failed = (why: string) =>
    new SnapflowError({ code: 'VM_BOOT_FAILED', message: `QEMU did not start (${why}): ${readTail(files.log, 2000).trim()}` });
  const deadline = Date.now() + readyTimeoutMs;
  while (!existsSync(files.qmpSocket)) {
    if (spawnError) throw failed(spawnError.message);
    if (exit !== undefined) throw failed(`exit ${exit}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw failed(`no QMP socket within ${readyTimeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return child.pid!;
}

function readTail(file: string, bytes: number): string {
  try {
    return readFileSync(file, 'utf8').slice(-bytes);
  } catch {
    return '';
  }
}

/** Alive and still our QEMU (its command line names this VM's directory): a recycled pid is not. */
export function isQemuAlive(pid: number, dir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(machineFiles(dir).agentSocket);
  } catch {
    return false;
  }
}

/**
 * Connects to the guest agent and pings until it answers, QEMU exits, or the deadline passes. Pings sent before
 * the agent is up are dropped by the guest; a late answer to an old ping counts too.
 */
export async function waitForAgent(pid: number, dir: string, deadlineMs: number): Promise<GuestAgentClient> {
  const deadline = Date.now() + deadlineMs;
  const socket = machineFiles(dir).agentSocket;
  let agent: GuestAgentClient | undefined;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    if (!isQemuAlive(pid, dir)) throw bootFailure(dir, 'QEMU exited');
    try {
      if (!agent || agent.isClosed) agent = await GuestAgentClient.connect(socket, 1_000);
      await agent.ping(Math.max(1, Math.min(500, deadline - Date.now())));
      return agent;
    } catch (err) {
      lastError = (err as Error).message;
      if (agent?.isClosed) agent = undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  agent?.close();
  throw bootFailure(dir, `the guest agent did not answer within ${deadlineMs} ms (${lastError})`);
}

function bootFailure(dir: string, reason: string): SnapflowError {
  return new SnapflowError({ code: 'VM_BOOT_FAILED', message: `${reason}; console:\n${consoleTail(dir)}` });
}

export function consoleTail(dir: string, lines = 12): string {
  try {
    return readFileSync(machineFiles(dir).console, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') || '(empty)';
  } catch {
    return '(no console log)';
  }
}

/** QMP `quit`, then SIGKILL after the grace period; returns once the process is gone. */
export async function stopQemu(pid: number, dir: string, graceMs = 3_000): Promise<void> {
  if (!isQemuAlive(pid, dir)) return;
  const qmp = await QmpClient.connect(machineFiles(dir).qmpSocket, 1_000).catch(() => undefined);
  if (qmp) {
    await qmp.execute('quit', undefined, 1_000).catch(() => undefined);
    qmp.close();
  }
  const deadline = Date.now() + graceMs;
  while (isQemuAlive(pid, dir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  killQemu(pid, dir);
  const killDeadline = Date.now() + 5_000;
  while (isQemuAlive(pid, dir) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 25));
}

export function killQemu(pid: number, dir: string): void {
  if (!isQemuAlive(pid, dir)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
