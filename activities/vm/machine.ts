// One QEMU process: where its tools are, its command line, starting it, waiting for its guest agent, stopping it.
// Everything a VM leaves (sockets, pidfile, console log, handle) is inside its own directory. Under a root worker
// each QEMU runs as an unprivileged uid of its own (machineUser), in a subdirectory only it may write: a guest that
// takes over its QEMU holds no right over another machine's memory or disk.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  fchownSync,
  fstatSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
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
/** Tells the agent its root is the first virtio disk (guest/agent/root.go mounts it and switches to it). */
export const DISK_ROOT_ARG = 'snapflow.root=/dev/vda';
/** The virtio-serial port the guest agent opens (guest/agent/channel.go looks it up by this name). */
const AGENT_PORT_NAME = 'org.snapflow.agent';
/**
 * The device layout, part of every machine profile: a saved machine restores only onto the devices it was saved
 * with. Layout 2 moved the agent's channel from a second UART to virtio-serial; layout 3 added the root disk
 * (virtio-blk) and moved the image's files from guest RAM onto it. Machines saved before have another layout in
 * their profile and are skipped by the restore order as another machine profile. Layout 4 put guest RAM in a file
 * (memory-backend-file, shared), so a save migrates device state only and stores RAM and disk as chunks.
 */
export const DEVICE_LAYOUT = 4;
/**
 * The CPU the guest sees: x86-64-v2 (SSE4.2, POPCNT), which distribution binaries expect, and nothing host-specific
 * (`max` would pass the host's model, its extra features and nested virtualisation through). Part of every saved
 * machine: a state restores only with the model it was saved with.
 */
export const CPU_MODEL = 'Nehalem';
/**
 * QEMU's own seccomp filter (QEMU has no use for these once it runs): no obsolete system calls, no setuid/setgid or
 * capability changes, no scheduler/affinity/priority changes. Spawning stays allowed: a save runs its migration
 * stream through `exec:` (zstd), so that the save completes even when the worker that asked for it dies.
 */
export const QEMU_SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,resourcecontrol=deny';
/** sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;
/** The user a root worker runs QEMU as unless SNAPFLOW_VM_USER names another (scripts/provision.sh makes it). */
export const DEFAULT_VM_USER = 'snapflow-vm';

export interface VmUser {
  uid: number;
  gid: number;
  /** A named user's groups (gids, kvm among them), which a machine's own uid is given too; uid:gid gets none. */
  groups?: number[];
}

/**
 * The uids machines get, one each (no passwd entry needed: nothing but QEMU's own directory belongs to one). Past
 * systemd's container range (which ends at 0x6FFFFFFF) and below its reserved ones; `SNAPFLOW_VM_UIDS=first-last`
 * names another range, `shared` runs every machine as the vm user itself.
 */
export const DEFAULT_VM_UIDS = { first: 0x70000000, last: 0x7000ffff };

let knownUser: { setting: string; user: VmUser } | undefined;

/**
 * The user whose group (and groups) QEMU and a restore's decompressor run with; each machine's own uid comes from
 * machineUser, or is this user's with SNAPFLOW_VM_UIDS=shared. A root worker never runs them as root: `snapflow-vm`,
 * or SNAPFLOW_VM_USER (a user name, or uid:gid). A worker that is not root cannot switch users: undefined.
 */
export function vmUser(): VmUser | undefined {
  if ((process.getuid?.() ?? 0) !== 0) return undefined;
  const configured = process.env.SNAPFLOW_VM_USER;
  const setting = configured ?? DEFAULT_VM_USER;
  // Looked up once per setting and process: two lookups cost ~10 ms of every start and restore.
  if (knownUser?.setting === setting) return knownUser.user;
  const invalid = (why: string): never => {
    throw new SnapflowError({
      code: configured ? 'CONFIG_INVALID' : 'VM_UNAVAILABLE',
      ...(configured ? { field: 'SNAPFLOW_VM_USER' } : {}),
      message: `the vm user ${setting.slice(0, 64)} ${why}`,
      hint: configured
        ? 'set SNAPFLOW_VM_USER to an unprivileged user name or uid:gid (not 0)'
        : 'run bash scripts/provision.sh (it creates the snapflow-vm user), or set SNAPFLOW_VM_USER to uid:gid',
    });
  };
  const numeric = /^(\d{1,10}):(\d{1,10})$/.exec(setting);
  let found: VmUser;
  if (numeric) {
    found = { uid: Number(numeric[1]), gid: Number(numeric[2]) };
  } else {
    if (!/^[a-z_][a-z0-9_-]{0,31}$/i.test(setting)) invalid('is not a user name or uid:gid');
    const entry = spawnSync('getent', ['passwd', setting], { encoding: 'utf8' }).stdout?.split(':');
    if (!entry || entry.length < 4) invalid('does not exist');
    const groups = spawnSync('id', ['-G', setting], { encoding: 'utf8' }).stdout?.trim().split(/\s+/).map(Number) ?? [];
    found = { uid: Number(entry![2]), gid: Number(entry![3]), groups: groups.filter((g) => Number.isInteger(g) && g > 0) };
  }
  if (found.uid === 0 || found.gid === 0) invalid('is root');
  knownUser = { setting, user: found };
  return found;
}

/** SNAPFLOW_VM_UIDS: the range of machine uids, or undefined for `shared` (every machine runs as the vm user). */
export function machineUids(): { first: number; last: number } | undefined {
  const setting = process.env.SNAPFLOW_VM_UIDS;
  if (setting === undefined || setting === '') return DEFAULT_VM_UIDS;
  if (setting === 'shared') return undefined;
  const m = /^(\d{1,10})-(\d{1,10})$/.exec(setting);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1000 || last < first || last > 0xfffffffe)
    throw new SnapflowError({
      code: 'CONFIG_INVALID',
      field: 'SNAPFLOW_VM_UIDS',
      message: `SNAPFLOW_VM_UIDS ${JSON.stringify(setting.slice(0, 64))} is not a uid range first-last (1000 ≤ first ≤ last < 4294967295) or "shared"`,
      hint: `leave it unset for ${DEFAULT_VM_UIDS.first}-${DEFAULT_VM_UIDS.last}, name uids no user of the host has, or set shared`,
    });
  return { first, last };
}

/** Uids handed out by this worker whose machine's directory is not chowned to them yet. */
const claimedUids = new Set<number>();

/**
 * The user a machine's QEMU runs as: the vm user's group and supplementary groups, and a uid no other machine in
 * the same run directory holds (their QEMU directories say whose they are), tried from one the machine's directory
 * name picks. Undefined for a worker that is not root. `release` once QEMU's directory carries the uid.
 */
export function machineUser(dir: string): { user: VmUser | undefined; release: () => void } {
  const base = vmUser();
  const range = machineUids();
  if (!base || !range) return { user: base, release: () => undefined };
  const taken = new Set(claimedUids);
  for (const name of readdirSync(dirname(dir))) {
    try {
      const st = lstatSync(join(dirname(dir), name, 'qemu'));
      if (st.isDirectory()) taken.add(st.uid);
    } catch {
      // not a machine's directory, or gone meanwhile
    }
  }
  const count = range.last - range.first + 1;
  const start = createHash('sha256').update(basename(dir)).digest().readUInt32BE(0) % count;
  for (let i = 0; i < count; i++) {
    const uid = range.first + ((start + i) % count);
    if (taken.has(uid) || uid === base.uid) continue;
    claimedUids.add(uid);
    return { user: { ...base, uid }, release: () => claimedUids.delete(uid) };
  }
  throw new SnapflowError({
    code: 'VM_UNAVAILABLE',
    message: `every uid of SNAPFLOW_VM_UIDS (${range.first}-${range.last}) is held by a machine in ${dirname(dir)}`,
    hint: 'remove machines this host no longer needs (snapflow sandbox destroy), or give SNAPFLOW_VM_UIDS a larger range',
  });
}

/** The uid that owns what a machine's QEMU writes: its directory's owner (the worker made it and chowned it). */
export function qemuOwner(dir: string): number {
  const st = lstatSync(machineFiles(dir).qemuDir);
  if (!st.isDirectory())
    throw new SnapflowError({ code: 'VM_UNRESPONSIVE', message: `the QEMU directory of ${basename(dir)} is not a directory` });
  return st.uid;
}

export interface VmTools {
  kernel: string;
  kernelVersion: string;
  agent: string;
}

/** Host tools found once per worker process: asking each of them for its version costs tens of ms per restore. */
let hostToolsFound = false;

/** The kernel and agent provisioning put in `.tools/vm` (scripts/provision.sh). */
export function vmTools(toolsDir = resolve(__dirname, '..', '..', '.tools', 'vm')): VmTools {
  const kernel = join(toolsDir, 'vmlinuz');
  const agent = join(toolsDir, 'snapflow-agent');
  const versionFile = join(toolsDir, 'kernel-version');
  const missing = hostToolsFound ? [] : ['qemu-img', 'fakeroot', 'mke2fs'].filter((tool) => spawnSync(tool, ['-V']).error);
  if (
    !existsSync(kernel) ||
    !existsSync(agent) ||
    !existsSync(versionFile) ||
    (!hostToolsFound && spawnSync(QEMU, ['--version']).status !== 0) ||
    missing.length
  ) {
    throw new SnapflowError({
      code: 'VM_UNAVAILABLE',
      message: `QEMU, ${missing.length ? `${missing.join(', ')}, ` : ''}the guest kernel or the guest agent is missing (looked in ${toolsDir})`,
      hint: 'run bash scripts/provision.sh',
    });
  }
  hostToolsFound = true;
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
  /** The boot initramfs (the agent and its modules); absent when restoring (the kernel is in the saved memory). */
  initrd?: string;
  /**
   * The root disk: a read-only base QEMU gets as a descriptor (never its path), and a fresh qcow2 overlay over it in
   * QEMU's own directory, the only part of the disk the guest writes. A restore fills the overlay from the state.
   */
  disk?: { base: string; sizeBytes: number };
  /** A zstd device-state file to load instead of booting (RAM and overlay are put in place by `prepare`). */
  incoming?: string;
  /**
   * Fills QEMU's directory before QEMU starts (a restore writes the saved RAM file and overlay there); without it a
   * fresh overlay is made over the base.
   */
  prepare?: (files: ReturnType<typeof machineFiles>, owner: VmUser | undefined) => Promise<void>;
  /** The guest kernel's command line; KERNEL_ARGS unless a benchmark compares others. */
  kernelArgs?: string;
}

/**
 * A VM's directory is the worker's (0700): its handle, the pid, QEMU's stderr. QEMU works in `qemu/` inside it, owned
 * by the vm user, and names what it makes there relative to it (its working directory), so it needs no access to any
 * directory above. The worker reads nothing there as its own: a QEMU taken over by its guest controls it.
 */
export const machineFiles = (dir: string) => {
  const qemuDir = join(dir, 'qemu');
  return {
    qemuDir,
    agentSocket: join(qemuDir, 'agent.sock'),
    qmpSocket: join(qemuDir, 'qmp.sock'),
    console: join(qemuDir, 'console.log'),
    /** The guest's writes to its root disk, over the base (QEMU's file). */
    overlay: join(qemuDir, 'overlay.qcow2'),
    /** Guest RAM: a file QEMU maps shared, so a paused machine's memory can be read (and chunked) in place. */
    ram: join(qemuDir, 'ram'),
    /** Where a save's stream lands, before the worker copies it into the state cache. */
    savedState: join(qemuDir, 'state.zst'),
    /** Written by the worker when it starts QEMU (QEMU's -pidfile cannot resolve a path above its directory). */
    pidFile: join(dir, 'qemu.pid'),
    /** QEMU's own stderr. */
    log: join(dir, 'qemu.log'),
    handle: join(dir, 'vm.json'),
  };
};

/** QEMU's -name: it puts the VM's directory on QEMU's command line, which is how a pid is known to be this VM's. */
const nameArg = (dir: string): string => `guest=${dir.replaceAll(',', ',,')}`;

/** QEMU's command line; the paths of what it makes are relative to its working directory (machineFiles' qemuDir). */
export function qemuArgs(spec: MachineSpec): string[] {
  const files = machineFiles(spec.dir);
  const own = (file: string) => basename(file);
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
    ['-name', nameArg(spec.dir)],
    ['-machine', `${spec.machine},accel=${spec.accel},memory-backend=${RAM_ID}`],
    ['-cpu', spec.cpu ?? CPU_MODEL, '-m', String(spec.memoryMiB), '-smp', String(spec.vcpus)],
    // Guest RAM is a file mapped shared: a paused machine's memory is that file, read without copying it through the
    // migration stream (which then carries device state only, under x-ignore-shared).
    ['-object', `memory-backend-file,id=${RAM_ID},size=${spec.memoryMiB}M,mem-path=${own(files.ram)},share=on`],
    ['-sandbox', QEMU_SANDBOX],
    ['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
    ['-kernel', spec.kernel, '-append', spec.kernelArgs ?? (spec.disk ? `${KERNEL_ARGS} ${DISK_ROOT_ARG}` : KERNEL_ARGS)],
    spec.initrd ? ['-initrd', spec.initrd] : [],
    spec.disk ? diskArgs(own(files.overlay)) : [],
    // ttyS0 carries the kernel's messages only; the agent's channel is a virtio-serial port (a 16550 UART moves
    // ~40 KB/s under TCG, a virtio port MB/s), found in the guest by its name.
    ['-serial', `file:${own(files.console)}`],
    ['-device', 'virtio-serial-pci,id=agentbus', '-chardev', `socket,id=agent,path=${own(files.agentSocket)},server=on,wait=off`],
    ['-device', `virtserialport,bus=agentbus.0,chardev=agent,name=${AGENT_PORT_NAME}`],
    ['-qmp', `unix:${own(files.qmpSocket)},server=on,wait=off`],
    // Not -daemonize: its setsid() is a call the seccomp filter refuses. The worker starts QEMU detached instead.
    // A restore's stream arrives on fd 3, decompressed by the worker's zstd: QEMU never opens the state cache. It is
    // read once x-ignore-shared is set over QMP (loadMachine), hence `defer`.
    spec.incoming ? ['-incoming', 'defer'] : [],
  ];
  return args.flat();
}

/** The memory backend's id. */
const RAM_ID = 'ram0';

/** The descriptor QEMU finds the base disk on (opened read-only by the worker; a restore's stream is on 3). */
const BASE_DISK_FD = 4;

/**
 * The root disk: the base through a descriptor QEMU was handed (`/dev/fdset/1` names it; QEMU cannot open the cache),
 * read-only, and the overlay over it. The overlay's own record of its backing file is not used: the base is named
 * here. The drive's id is what a saved machine's disk section is matched by.
 */
function diskArgs(overlay: string): string[] {
  return [
    ['-add-fd', `fd=${BASE_DISK_FD},set=1,opaque=base`],
    ['-blockdev', 'driver=file,node-name=base-file,filename=/dev/fdset/1,read-only=on'],
    ['-blockdev', 'driver=raw,node-name=base,file=base-file,read-only=on'],
    ['-drive', `if=none,id=root,driver=qcow2,file.filename=${overlay.replaceAll(',', ',,')},backing=base`],
    ['-device', 'virtio-blk-pci,drive=root,id=rootdisk'],
  ].flat();
}

/**
 * A fresh overlay over the base in QEMU's directory, QEMU's user's alone. Made without opening the base (`-u`): the
 * path it records is for tools reading the overlay later; QEMU is given the base by descriptor.
 */
function makeOverlay(spec: MachineSpec, user: VmUser | undefined): void {
  const { overlay } = machineFiles(spec.dir);
  const made = spawnSync(
    'qemu-img',
    ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', realpathSync(spec.disk!.base), '-u', overlay, String(spec.disk!.sizeBytes)],
    { encoding: 'utf8' },
  );
  if (made.status !== 0)
    throw new SnapflowError({ code: 'VM_BOOT_FAILED', message: `qemu-img could not make the disk overlay: ${(made.stderr ?? '').trim()}` });
  chmodSync(overlay, 0o600);
  if (user) chownSync(overlay, user.uid, user.gid);
}

/** A fresh, sparse RAM file of QEMU's user's alone (made here: QEMU would make it with the worker's umask). */
export function emptyRam(file: string, memoryMiB: number, user: VmUser | undefined): void {
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    ftruncateSync(fd, memoryMiB * 2 ** 20);
    if (user) fchownSync(fd, user.uid, user.gid);
  } finally {
    closeSync(fd);
  }
}

/** Where a boot input QEMU's user reads is linked in QEMU's directory. */
const BOOT_INPUTS = { kernel: 'vmlinuz', initrd: 'initrd' } as const;

/**
 * A boot input (kernel, initrd) the vm user can read, in QEMU's directory: a hard link to the cached file (a copy
 * across filesystems), still the worker's, so QEMU can remove it but never change the file behind it. A cached file
 * only its owner may read becomes readable to the vm user's group; its cache directory stays the worker's alone.
 */
function bootInput(src: string, qemuDir: string, name: string, user: VmUser): string {
  const real = realpathSync(src);
  const dst = join(qemuDir, name);
  try {
    linkSync(real, dst);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    copyFileSync(real, dst, constants.COPYFILE_FICLONE);
  }
  const st = statSync(dst);
  if (!(st.mode & 0o004) && !(st.gid === user.gid && st.mode & 0o040)) {
    chownSync(dst, st.uid, user.gid);
    chmodSync(dst, (st.mode & 0o700) | 0o040);
  }
  return name;
}

/**
 * Makes QEMU's directory (its owner the vm user, 0700) and links the boot inputs into it; returns the kernel and
 * initrd paths for QEMU's command line.
 */
async function prepareQemuDir(spec: MachineSpec, user: VmUser | undefined): Promise<Pick<MachineSpec, 'kernel' | 'initrd'>> {
  const files = machineFiles(spec.dir);
  const { qemuDir } = files;
  mkdirSync(qemuDir, { mode: 0o700 });
  if (spec.prepare) await spec.prepare(files, user);
  else {
    if (spec.disk) makeOverlay(spec, user);
    emptyRam(files.ram, spec.memoryMiB, user);
  }
  if (!user) return { kernel: spec.kernel, initrd: spec.initrd };
  chownSync(qemuDir, user.uid, user.gid);
  return {
    kernel: bootInput(spec.kernel, qemuDir, BOOT_INPUTS.kernel, user),
    initrd: spec.initrd ? bootInput(spec.initrd, qemuDir, BOOT_INPUTS.initrd, user) : undefined,
  };
}

/** Once the guest runs, QEMU has the kernel and initrd in memory: their links go, so QEMU's user can read them no more. */
export function dropBootInputs(dir: string): void {
  for (const name of Object.values(BOOT_INPUTS)) rmSync(join(machineFiles(dir).qemuDir, name), { force: true });
}

/**
 * setpriv switches to the vm user and execs QEMU in the same process: the pid the worker records is QEMU's. No
 * capability survives (bounding set empty) and no exec may gain one (no_new_privs; QEMU's seccomp sets it too).
 */
function runAsArgs(user: VmUser): string[] {
  return [
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    user.groups?.length ? `--groups=${user.groups.join(',')}` : '--clear-groups',
    '--bounding-set=-all',
    '--inh-caps=-all',
    '--no-new-privs',
    '--',
  ];
}

/**
 * Starts QEMU in a session of its own (it outlives the worker process) and returns its pid once its QMP socket is
 * there, that is once its devices and sockets are set up. Its stderr goes to `qemu.log` in the VM's directory.
 * With `incoming`, the worker opens the state file and a zstd of the vm user's decompresses it into QEMU's fd 3.
 */
export async function startQemu(spec: MachineSpec, readyTimeoutMs = 30_000): Promise<number> {
  const files = machineFiles(spec.dir);
  const { user, release } = machineUser(spec.dir);
  let boot: Pick<MachineSpec, 'kernel' | 'initrd'>;
  try {
    boot = await prepareQemuDir(spec, user);
  } finally {
    release(); // QEMU's directory says whose it is now (or the start failed and it is no one's)
  }
  const ids = user ? { uid: user.uid, gid: user.gid } : {};
  const log = openSync(files.log, 'w', 0o600);
  let state: number | undefined;
  let base: number | undefined;
  let zstd: ChildProcess | undefined;
  let child: ChildProcess;
  try {
    if (spec.disk) base = openSync(spec.disk.base, constants.O_RDONLY | constants.O_NOFOLLOW);
    if (spec.incoming) {
      state = openSync(spec.incoming, constants.O_RDONLY | constants.O_NOFOLLOW);
      zstd = spawn('zstd', ['-q', '-dc'], { stdio: [state, 'pipe', log], ...ids });
      zstd.once('error', () => undefined); // QEMU then reads an empty stream, and the load fails with its reason
      zstd.unref();
    }
    const argv = qemuArgs({ ...spec, ...boot });
    child = spawn(user ? 'setpriv' : QEMU, user ? [...runAsArgs(user), QEMU, ...argv] : argv, {
      cwd: files.qemuDir,
      detached: true,
      stdio: ['ignore', log, log, zstd?.stdout ?? 'ignore', base ?? 'ignore'],
    });
  } finally {
    closeSync(log);
    if (state !== undefined) closeSync(state);
    if (base !== undefined) closeSync(base); // QEMU holds its own copy
    zstd?.stdout?.destroy(); // only QEMU holds the stream's read end now
  }
  child.unref();
  if (child.pid) writeFileSync(files.pidFile, String(child.pid), { mode: 0o600 });
  let exit: number | null | undefined;
  let spawnError: Error | undefined;
  child.once('exit', (code, signal) => (exit = code ?? (signal ? -1 : null)));
  child.once('error', (err) => (spawnError = err));
  const failed = (why: string) =>
    new SnapflowError({ code: 'VM_BOOT_FAILED', message: `QEMU did not start (${why}): ${(readTail(files.log, 2000) ?? '').trim()}` });
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

/**
 * The last `bytes` of a file, or undefined when there is none. For files QEMU or its guest write: a link is not
 * followed, and only the tail is read, however large the file has grown.
 */
export function readTail(file: string, bytes: number): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    const length = Math.min(bytes, st.size);
    const buf = Buffer.alloc(length);
    return buf.subarray(0, readSync(fd, buf, 0, length, st.size - length)).toString('utf8');
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Alive and still our QEMU (its command line names this VM's directory, and it runs as the uid its QEMU directory
 * belongs to): a recycled pid is not, nor another user's process that names the directory. A QEMU started before
 * QEMU had a directory of its own is known by its agent socket's path.
 */
export function isQemuAlive(pid: number, dir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.split('\0').includes(nameArg(dir)) && !cmdline.includes(`path=${join(dir, 'agent.sock')},`)) return false;
    const owner = lstatSync(machineFiles(dir).qemuDir, { throwIfNoEntry: false })?.uid;
    const uid = /^Uid:\t(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return owner === undefined || Number(uid) === owner;
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
    if (!isQemuAlive(pid, dir)) {
      const said = (readTail(machineFiles(dir).log, 2000) ?? '').trim().split('\n').pop();
      throw bootFailure(dir, said ? `QEMU exited (${said})` : 'QEMU exited');
    }
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
  const tail = readTail(machineFiles(dir).console, 16 * 1024);
  if (tail === undefined) return '(no console log)';
  return tail.trimEnd().split('\n').slice(-lines).join('\n') || '(empty)';
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
