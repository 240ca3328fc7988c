// The guest's boot initramfs: only the host's own guest files (the agent and the kernel modules it loads), packed as
// a zstd-compressed newc archive. The kernel unpacks it into RAM and runs the agent as the first process; the agent
// loads the virtio modules and, for a sandbox, switches to the image's root disk (baseDisk.ts), so no image file
// lives in guest RAM. Cached per guest files. Also the shared rules for reading an image's entries by name.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { chmod, mkdtemp, open, type FileHandle } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type Docker from 'dockerode';
import { SnapflowError } from '../../lib/errors';
import { GUEST_AGENT_PATH, type VmTools } from './machine';
import { guestModuleFiles, type GuestFile } from './guestModules';
import type { VmHandle } from './types';

export type { GuestFile };

export interface GuestImage {
  initrd: string;
  image: VmHandle['image'];
  /** Uncompressed size of the archive's image part (none: the image is on its disk). */
  rootBytes: number;
}

/** Where every host file lives in the guest; image entries at or under it are dropped. */
export const GUEST_HOST_DIR = '/.snapflow';
/** Longest entry name the guest kernel unpacks (PATH_MAX, with its NUL). */
export const MAX_NAME_BYTES = 4095;
/** More entries than any real image has; each costs the builder memory (hard links are resolved by name). */
export const MAX_ENTRIES = 500_000;
/** Bumped when the archive's layout changes, so no host reuses a root built by older rules. */
const FORMAT = 'v3';
const INITRD = 'initrd.zst';

/** The host files every guest gets (the agent, and the kernel modules its channel needs): the one list the host segment is built from. */
export function guestFiles(tools: Pick<VmTools, 'agent' | 'kernel' | 'kernelVersion'>): GuestFile[] {
  return [{ guestPath: GUEST_AGENT_PATH, hostPath: tools.agent, mode: 0o755 }, ...guestModuleFiles(tools)];
}

/** What a VM needs to know of an image on this host's engine: its id, environment and working directory. */
export async function imageFacts(
  docker: Docker,
  ref: string,
): Promise<{ info: { Id: string; Created: string }; image: VmHandle['image'] }> {
  const info = await docker
    .getImage(ref)
    .inspect()
    .catch(() => undefined);
  if (!info) throw new SnapflowError({ code: 'IMAGE_NOT_FOUND', message: `image ${ref} is not on this host's engine` });
  const image = {
    ref,
    digest: info.Id,
    env: Object.fromEntries((info.Config.Env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
    workdir: info.Config.WorkingDir || '/',
  };
  return { info, image };
}

/** A root holding only the host's files: enough for the accel probe and for tests of the agent itself. */
export function bareGuestImage(opts: { cacheDir: string; files: GuestFile[] }): Promise<GuestImage> {
  const hash = filesHash(opts.files);
  const image = { ref: 'bare', digest: `bare-${hash}`, env: {}, workdir: '/' };
  return cached(join(opts.cacheDir, 'vm-images', `bare-${hash}`), image, opts.files, async (out) => {
    const root = new CpioWriter(out);
    await addBaseDirs(root, new Set());
    await root.trailer();
    return root.bytes;
  });
}

/**
 * Builds `dir` (initrd.zst + image.json) once: the image's archive into a private work directory, the host's
 * archive after it, compressed, then renamed into place whole. The work directory goes on every path.
 */
async function cached(
  dir: string,
  image: GuestImage['image'],
  files: GuestFile[],
  fill: (out: FileHandle) => Promise<number>,
): Promise<GuestImage> {
  const initrd = join(dir, INITRD);
  const manifest = join(dir, 'image.json');
  if (existsSync(initrd) && existsSync(manifest))
    return { initrd, ...(JSON.parse(readFileSync(manifest, 'utf8')) as Omit<GuestImage, 'initrd'>) };
  const work = await startCacheWork(dir);
  try {
    const raw = join(work, 'root.cpio');
    const out = await open(raw, 'wx', 0o600);
    let rootBytes: number;
    try {
      rootBytes = await fill(out);
      await hostSegment(new CpioWriter(out, rootBytes), files);
    } finally {
      await out.close();
    }
    // zstd (the guest kernel unpacks it): several times faster than gzip at the same size, which a large image feels.
    await run('zstd', ['-q', '-1', '-T0', '--no-progress', '-o', join(work, INITRD), raw]);
    await chmod(join(work, INITRD), 0o600);
    rmSync(raw);
    const written = { image, rootBytes };
    const body = await open(join(work, 'image.json'), 'wx', 0o600);
    await body.writeFile(JSON.stringify(written));
    await body.close();
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    return { initrd, ...written };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A fresh work directory (0700) beside cache entry `dir`, in a root-only parent, after removing what builders that
 * died left there; the builder renames it to `dir` when done.
 */
export async function startCacheWork(dir: string): Promise<string> {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  await chmod(parent, 0o700);
  removeDeadWork(parent);
  return mkdtemp(`${dir}.tmp-${process.pid}-`);
}

/** Work directories of builders that died (`<dir>.tmp-<pid>-<random>`): their pid is gone. */
export function removeDeadWork(parent: string): void {
  for (const name of readdirSync(parent)) {
    const pid = /\.tmp-(\d+)-[^/]+$/.exec(name)?.[1];
    if (!pid || Number(pid) === process.pid) continue;
    try {
      process.kill(Number(pid), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(parent, name), { recursive: true, force: true });
    }
  }
}

const S_IFMT = 0o170000;
const TYPE_BITS = {
  file: 0o100000,
  'contiguous-file': 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  'character-device': 0o020000,
  'block-device': 0o060000,
  fifo: 0o010000,
} as const;

interface Entry {
  name: string;
  mode: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  size?: number;
  ino?: number;
  nlink?: number;
  rdevmajor?: number;
  rdevminor?: number;
}

/** Writes newc cpio records at the end of `out`, counting what it wrote; a record's header can be rewritten later. */
class CpioWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private nextIno = 1;
  constructor(
    private readonly out: FileHandle,
    /** Where in the file this writer starts. */
    private readonly start = 0,
    private written = 0,
  ) {}

  get bytes(): number {
    return this.written;
  }

  /** Writes a record's header and name; returns its ino and where its header starts (for `relink`). */
  header(entry: Entry): { ino: number; offset: number } {
    const ino = entry.ino ?? this.nextIno++;
    const name = Buffer.from(`${entry.name}\0`);
    const fields = [
      ino,
      entry.mode,
      entry.uid ?? 0,
      entry.gid ?? 0,
      entry.nlink ?? ((entry.mode & S_IFMT) === TYPE_BITS.directory ? 2 : 1),
      entry.mtime ?? 0,
      entry.size ?? 0,
      0,
      0,
      entry.rdevmajor ?? 0,
      entry.rdevminor ?? 0,
      name.length,
      0,
    ];
    const offset = this.written;
    this.push(Buffer.from(`070701${fields.map((f) => (f >>> 0).toString(16).padStart(8, '0')).join('')}`, 'latin1'));
    this.push(name);
    this.pad();
    return { ino, offset };
  }

  async data(chunk: Buffer): Promise<void> {
    this.push(chunk);
    if (this.pendingBytes >= 1 << 20) await this.flush();
  }

  /** Pads the record's data to four bytes; call once the record's data is written. */
  pad(): void {
    const rest = this.written % 4;
    if (rest) this.push(Buffer.alloc(4 - rest));
  }

  async trailer(): Promise<void> {
    this.header({ name: 'TRAILER!!!', mode: 0, ino: 0, nlink: 1 });
    await this.flush();
  }

  async flush(): Promise<void> {
    if (!this.pendingBytes) return;
    const buf = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.out.write(buf, 0, buf.length, this.start + this.written - buf.length);
  }

  private push(buf: Buffer): void {
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    this.written += buf.length;
  }
}

/** The entry's path inside the guest root (no leading slash), or undefined for a name that is not a plain path. */
export function guestName(tarName: string): string | undefined {
  const parts = tarName.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.some((p) => p === '..' || p.includes('\0'))) return undefined;
  return parts.join('/');
}

/** True for a name the image may not supply: the host's own files' directory and Docker's marker file. */
export function reservedName(name: string): boolean {
  const top = GUEST_HOST_DIR.slice(1);
  return name === top || name.startsWith(`${top}/`) || name === '.dockerenv';
}

/** An entry below a symlink the image made would be written through it when the guest unpacks: left out. */
export function underSymlink(name: string, symlinks: Set<string>): boolean {
  if (symlinks.size === 0) return false;
  for (let at = name.indexOf('/'); at >= 0; at = name.indexOf('/', at + 1)) if (symlinks.has(name.slice(0, at))) return true;
  return false;
}

/** The mount points and home the agent needs, for an image that lacks them; an image's own are kept as they are. */
async function addBaseDirs(cpio: CpioWriter, present: Set<string>): Promise<void> {
  const dirs: Array<[string, number]> = [
    ['dev', 0o755],
    ['proc', 0o555],
    ['sys', 0o555],
    ['run', 0o755],
    ['tmp', 0o1777],
    ['root', 0o700],
  ];
  for (const [name, mode] of dirs) if (!present.has(name)) cpio.header({ name, mode: mode | TYPE_BITS.directory });
  await cpio.flush();
}

/** The host's files, as their own archive: /.snapflow and each file below it, owned by root. */
async function hostSegment(cpio: CpioWriter, files: GuestFile[]): Promise<void> {
  const dirs = new Set<string>();
  for (const file of files) {
    const name = guestName(file.guestPath);
    if (!name || !file.guestPath.startsWith(`${GUEST_HOST_DIR}/`) || name !== file.guestPath.slice(1))
      throw new SnapflowError({ code: 'INTERNAL', message: `guest file ${file.guestPath} must be a plain path under ${GUEST_HOST_DIR}` });
    for (let dir = posix.dirname(name); dir !== '.' && !dirs.has(dir); dir = posix.dirname(dir)) dirs.add(dir);
  }
  for (const dir of [...dirs].sort()) cpio.header({ name: dir, mode: TYPE_BITS.directory | 0o755 });
  for (const file of files) {
    const size = statSync(file.hostPath).size;
    cpio.header({ name: file.guestPath.slice(1), mode: TYPE_BITS.file | (file.mode & 0o7777), size });
    let read = 0;
    for await (const chunk of createReadStream(file.hostPath) as AsyncIterable<Buffer>) {
      read += chunk.length;
      await cpio.data(chunk);
    }
    if (read !== size) throw new Error(`${file.hostPath} changed while it was packed`);
    cpio.pad();
  }
  await cpio.trailer();
}

const fileHashes = new Map<string, string>();
/** The cache key's part for the host's files: their guest paths, modes and contents. */
function filesHash(files: GuestFile[]): string {
  const hash = createHash('sha256').update(FORMAT);
  for (const file of files) {
    const { size, mtimeMs } = statSync(file.hostPath);
    const key = `${file.hostPath}:${size}:${mtimeMs}`;
    let content = fileHashes.get(key);
    if (!content) fileHashes.set(key, (content = createHash('sha256').update(readFileSync(file.hostPath)).digest('hex')));
    hash.update(`${file.guestPath}\0${file.mode}\0${content}\0`);
  }
  return hash.digest('hex').slice(0, 12);
}

function run(command: string, args: string[]): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  return new Promise((done, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => (code === 0 ? done() : fail(new Error(`${command} failed (exit ${code}): ${stderr.trim()}`))));
  });
}
