// A guest's root filesystem: a Docker image's files (`docker export` of a container made from it, never started)
// plus the host's own guest files (the agent and its kernel modules), packed as a zstd-compressed newc initramfs. The kernel unpacks it into RAM and
// runs the agent as the first process, so the root lives in guest memory and a memory snapshot holds the whole
// machine, files and processes alike, with no disk to keep consistent beside it. Cached per image id and guest files.
//
// The image is hostile: its tar stream is turned into cpio records in this process and nothing of it is ever
// created on the host (no file, link, device node or setuid bit). Owners, modes, devices and links exist only inside
// the archive, and so only inside the guest. The host's files go in a second archive appended after the image's
// (the kernel unpacks concatenated archives in order) under /.snapflow, where no image entry is kept.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { chmod, mkdtemp, open, type FileHandle } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import { extract, type Headers } from 'tar-stream';
import { SnapflowError } from '../../lib/errors';
import { GUEST_AGENT_PATH, type VmTools } from './machine';
import { guestModuleFiles, type GuestFile } from './guestModules';
import type { VmHandle } from './types';

export type { GuestFile };

export interface GuestImage {
  initrd: string;
  image: VmHandle['image'];
  /** Uncompressed size of the image's part of the archive: what the guest's RAM holds once unpacked. */
  rootBytes: number;
}

/** Where every host file lives in the guest; image entries at or under it are dropped. */
export const GUEST_HOST_DIR = '/.snapflow';
/** Longest entry name the guest kernel unpacks (PATH_MAX, with its NUL). */
const MAX_NAME_BYTES = 4095;
/** More entries than any real image has; each costs the builder memory (hard links are resolved by name). */
const MAX_ENTRIES = 500_000;
/** Bumped when the archive's layout changes, so no host reuses a root built by older rules. */
const FORMAT = 'v2';
const INITRD = 'initrd.zst';

/** The host files every guest gets (the agent, and the kernel modules its channel needs): the one list the host segment is built from. */
export function guestFiles(tools: Pick<VmTools, 'agent' | 'kernel' | 'kernelVersion'>): GuestFile[] {
  return [{ guestPath: GUEST_AGENT_PATH, hostPath: tools.agent, mode: 0o755 }, ...guestModuleFiles(tools)];
}

/**
 * The share of a VM's RAM its root may take: the unpacked files stay in guest memory, and while the kernel unpacks
 * them it also holds the compressed archive.
 */
export function rootBudgetBytes(memoryMiB: number): number {
  return Math.floor(memoryMiB / 2) * 1024 * 1024;
}

/** The initramfs for `ref` on this host's engine, built once per image id and guest files. */
export async function guestImage(
  docker: Docker,
  ref: string,
  opts: { cacheDir: string; files: GuestFile[]; memoryMiB: number },
): Promise<GuestImage> {
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
  const budget = rootBudgetBytes(opts.memoryMiB);
  const tooLarge = (what: string) =>
    new SnapflowError({
      code: 'IMAGE_TOO_LARGE',
      field: 'image',
      message: `image ${ref.slice(0, 200)} ${what}; a vm with ${opts.memoryMiB} MiB of RAM holds at most ${budget >> 20} MiB of root files, which live in its memory`,
      hint: 'use a larger size for this sandbox, or make the image smaller',
    });
  const dir = join(opts.cacheDir, 'vm-images', `${info.Id.replace('sha256:', '').slice(0, 24)}-${filesHash(opts.files)}`);
  const built = await cached(dir, image, opts.files, async (out) => {
    const container = await docker.createContainer({ Image: ref, Entrypoint: ['/nonexistent'], Cmd: [], NetworkDisabled: true });
    try {
      // The tar's own headers cost more than the cpio records made from them; twice the budget bounds what is read.
      const tar = (await container.export()) as unknown as Readable;
      return await imageSegment(tar, out, { maxBytes: budget, maxTarBytes: 2 * budget + (64 << 20), tooLarge });
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  });
  if (built.rootBytes > budget) throw tooLarge(`has ${Math.ceil(built.rootBytes / 2 ** 20)} MiB of files`);
  return built;
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
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  await chmod(parent, 0o700);
  removeDeadWork(parent);
  const work = await mkdtemp(`${dir}.tmp-${process.pid}-`); // 0700
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

/** Work directories of builders that died (`<dir>.tmp-<pid>-<random>`): their pid is gone. */
function removeDeadWork(parent: string): void {
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

  /** Marks an earlier regular file's record as having links, so the kernel links later records of its ino to it. */
  async relink(offset: number): Promise<void> {
    await this.flush();
    await this.out.write(Buffer.from('00000002', 'latin1'), 0, 8, this.start + offset + 6 + 4 * 8);
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
function reserved(name: string): boolean {
  const top = GUEST_HOST_DIR.slice(1);
  return name === top || name.startsWith(`${top}/`) || name === '.dockerenv';
}

/**
 * The image's archive from `docker export`'s tar stream, bounded: at most `maxBytes` of records and
 * `maxTarBytes` of tar read. Returns the bytes written.
 */
async function imageSegment(
  tar: Readable,
  out: FileHandle,
  limits: { maxBytes: number; maxTarBytes: number; tooLarge: (what: string) => SnapflowError },
): Promise<number> {
  const cpio = new CpioWriter(out);
  let tarBytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      tarBytes += chunk.length;
      if (tarBytes > limits.maxTarBytes) done(limits.tooLarge(`exports more than ${limits.maxTarBytes >> 20} MiB`));
      else done(null, chunk);
    },
  });
  const entries = extract();
  const piped = pipeline(tar, counted, entries);
  /** Regular files by name, for hard links (their first record carries the data); other kinds are copied. */
  const regular = new Map<string, { ino: number; offset: number; linked: boolean }>();
  const others = new Map<string, Entry & { link?: string }>();
  const symlinks = new Set<string>();
  const tops = new Set<string>();
  let count = 0;
  const check = () => {
    if (cpio.bytes > limits.maxBytes) throw limits.tooLarge(`has more than ${limits.maxBytes >> 20} MiB of files`);
  };
  try {
    for await (const entry of entries) {
      const h: Headers = entry.header;
      const name = guestName(h.name);
      const keep = name !== undefined && !reserved(name) && !underSymlink(name, symlinks);
      if (keep && Buffer.byteLength(name) > MAX_NAME_BYTES)
        throw new SnapflowError({
          code: 'VALIDATION_FAILED',
          field: 'image',
          message: `image entry name longer than ${MAX_NAME_BYTES} bytes`,
        });
      if (keep && ++count > MAX_ENTRIES) throw limits.tooLarge(`has more than ${MAX_ENTRIES} files`);
      const base: Entry | undefined = keep
        ? {
            name,
            mode: (h.mode ?? 0) & 0o7777,
            uid: clampU32(h.uid),
            gid: clampU32(h.gid),
            mtime: clampU32(h.mtime ? Math.floor(h.mtime.getTime() / 1000) : 0),
          }
        : undefined;
      if (base) tops.add(name!.split('/')[0]!);
      if (base && (h.type === 'file' || h.type === 'contiguous-file')) {
        const size = h.size ?? 0;
        const record = cpio.header({ ...base, mode: base.mode | TYPE_BITS.file, size });
        regular.set(base.name, { ...record, linked: false });
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          await cpio.data(chunk);
          check();
        }
        cpio.pad();
      } else {
        entry.resume();
        await new Promise<void>((done, fail) => (entry.once('end', done), entry.once('error', fail)));
        if (base) await special(cpio, h, base, { regular, others, symlinks });
      }
      check();
    }
    await piped;
  } catch (err) {
    entries.destroy();
    await piped.catch(() => undefined);
    throw err;
  }
  await addBaseDirs(cpio, tops);
  await cpio.trailer();
  return cpio.bytes;
}

/** Every record but a regular file's: directories, links, devices, fifos. */
async function special(
  cpio: CpioWriter,
  h: Headers,
  base: Entry,
  seen: {
    regular: Map<string, { ino: number; offset: number; linked: boolean }>;
    others: Map<string, Entry & { link?: string }>;
    symlinks: Set<string>;
  },
): Promise<void> {
  if (h.type === 'directory') {
    cpio.header({ ...base, mode: base.mode | TYPE_BITS.directory });
  } else if (h.type === 'symlink') {
    const link = h.linkname ?? '';
    if (!link || Buffer.byteLength(link) > MAX_NAME_BYTES) return;
    const entry = { ...base, mode: 0o777 | TYPE_BITS.symlink, link };
    await writeSymlink(cpio, entry);
    seen.others.set(base.name, entry);
    seen.symlinks.add(base.name);
  } else if (h.type === 'character-device' || h.type === 'block-device' || h.type === 'fifo') {
    const entry = { ...base, mode: base.mode | TYPE_BITS[h.type], rdevmajor: clampU32(h.devmajor), rdevminor: clampU32(h.devminor) };
    cpio.header(entry);
    seen.others.set(base.name, entry);
  } else if (h.type === 'link') {
    const target = guestName(h.linkname ?? '');
    const file = target === undefined ? undefined : seen.regular.get(target);
    if (file) {
      // The kernel links a record to an earlier one of the same ino only when both say they have links.
      if (!file.linked) await cpio.relink(file.offset);
      file.linked = true;
      cpio.header({ ...base, mode: base.mode | TYPE_BITS.file, ino: file.ino, nlink: 2, size: 0 });
      seen.regular.set(base.name, { ...file, linked: true, offset: -1 });
      return;
    }
    const other = target === undefined ? undefined : seen.others.get(target);
    if (other?.link !== undefined) await writeSymlink(cpio, { ...other, name: base.name });
    else if (other) cpio.header({ ...other, name: base.name, ino: undefined });
  }
  // Anything else (sockets cannot be archived; unknown kinds) is left out.
}

async function writeSymlink(cpio: CpioWriter, entry: Entry & { link?: string }): Promise<void> {
  const body = Buffer.from(entry.link!);
  cpio.header({ ...entry, ino: undefined, size: body.length });
  await cpio.data(body);
  cpio.pad();
}

/** An entry below a symlink the image made would be written through it when the guest unpacks: left out. */
function underSymlink(name: string, symlinks: Set<string>): boolean {
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

function clampU32(value: number | undefined): number {
  return Number.isFinite(value) && value! > 0 ? Math.min(Math.floor(value!), 0xffffffff) : 0;
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
