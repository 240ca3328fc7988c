// A guest's root disk: a Docker image's files (`docker export` of a container made from it, never started) as a
// read-only ext4 image, the base every VM of that image writes its own qcow2 overlay over. Built once per image id and
// disk size, without host privilege, and cached beside the boot initramfs in the host's image cache (0700).
//
// The image is hostile. e2fsprogs 1.47 fills an ext4 image from a directory (`mke2fs -d`), not from a tarball, so the
// export is unpacked into a private work directory first, but only as data: regular files 0600 and directories 0700,
// owned by the worker, and the image's symlinks as links nothing on the host follows (every entry below one is
// dropped, and every parent is a directory this builder made itself). Owners, modes, setuid bits, device nodes and
// fifos never exist on the host: they are written into a fakeroot database (dev/inode → mode, owner, rdev), and
// `fakeroot -i` shows them to mke2fs alone, which writes them into the image. Bounded by the disk's size.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import { extract, type Headers } from 'tar-stream';
import { SnapflowError } from '../../lib/errors';
import { MAX_ENTRIES, MAX_NAME_BYTES, guestName, imageFacts, reservedName, startCacheWork, underSymlink } from './guestImage';
import type { VmHandle } from './types';

export interface BaseDisk {
  /** The raw ext4 image, the worker's (0600); QEMU gets a read-only descriptor of it, never its path. */
  file: string;
  image: VmHandle['image'];
  /** Size of the disk the guest sees, in bytes. */
  diskBytes: number;
  /** What the image's files take (rounded up to blocks): what the disk must hold. */
  rootBytes: number;
  /**
   * Names the disk's exact bytes: the build is reproducible (fixed UUID, hash seed and times), so every host builds
   * the same disk of an image, and a saved overlay restores only over a base of the same build id.
   */
  buildId: string;
}

/** Bumped when the disk's layout changes, so no host reuses a disk built by older rules. */
const FORMAT = 'd2';
const BLOCK = 4096;
const ZEROS = Buffer.alloc(1 << 20);
/** The share of the disk the image's files may take: the rest is the file system's own (inodes, bitmaps) and the guest's room to write. */
const FILL = 0.9;

const S_IFMT = 0o170000;
const TYPES = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  'character-device': 0o020000,
  'block-device': 0o060000,
  fifo: 0o010000,
};

interface Meta {
  /** Type bits and permission bits, as the guest sees them. */
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
  mtime: number;
}

/** Where the base disk of an image id and size lives in the host cache (beside the boot initramfs). */
export function baseDiskDir(cacheDir: string, imageId: string, diskBytes: number): string {
  return join(cacheDir, 'vm-images', `disk-${imageId.replace('sha256:', '').slice(0, 24)}-${Math.floor(diskBytes / 2 ** 20)}m-${FORMAT}`);
}

/** The base disk already built for `imageId` and `diskBytes` on this host, or undefined. */
export function cachedBaseDisk(cacheDir: string, imageId: string, diskBytes: number): BaseDisk | undefined {
  const dir = baseDiskDir(cacheDir, imageId, diskBytes);
  const file = join(dir, 'base.raw');
  if (!existsSync(file) || !existsSync(join(dir, 'disk.json'))) return undefined;
  return { file, ...(JSON.parse(readFileSync(join(dir, 'disk.json'), 'utf8')) as Omit<BaseDisk, 'file'>) };
}

/** The base disk for `ref` on this host's engine, built once per image id and disk size. */
export async function baseDisk(docker: Docker, ref: string, opts: { cacheDir: string; diskMiB: number }): Promise<BaseDisk> {
  const { info, image } = await imageFacts(docker, ref);
  const diskBytes = opts.diskMiB * 2 ** 20;
  const budget = Math.floor(diskBytes * FILL);
  const tooLarge = (what: string) =>
    new SnapflowError({
      code: 'IMAGE_TOO_LARGE',
      field: 'image',
      message: `image ${ref.slice(0, 200)} ${what}; a vm disk of ${opts.diskMiB} MiB holds at most ${budget >> 20} MiB of the image's files`,
      hint: 'use a larger size for this sandbox (its disk grows with it), or make the image smaller',
    });
  const found = cachedBaseDisk(opts.cacheDir, info.Id, diskBytes);
  if (found) return found;
  const dir = baseDiskDir(opts.cacheDir, info.Id, diskBytes);
  const work = await startCacheWork(dir);
  try {
    const tree = join(work, 'root');
    mkdirSync(tree, { mode: 0o700 });
    const container = await docker.createContainer({ Image: ref, Entrypoint: ['/nonexistent'], Cmd: [], NetworkDisabled: true });
    let entries: Map<string, Meta>;
    let rootBytes: number;
    try {
      const tar = (await container.export()) as unknown as Readable;
      // The engine's own entries of a container (/etc/hosts, /dev, …) carry the time it was made: clamped to the
      // image's, as reproducible builds clamp to SOURCE_DATE_EPOCH, so every export of the image gives the same disk.
      const latest = Math.max(0, Math.floor(Date.parse(info.Created) / 1000) || 0);
      ({ entries, rootBytes } = await unpack(tar, tree, { maxBytes: budget, maxTarBytes: budget + (256 << 20), tooLarge, latest }));
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
    const db = join(work, 'fakeroot.db');
    const { text, inodes } = fakerootDb(tree, entries);
    await writeFile(db, text, { mode: 0o600 });
    const buildId = buildIdOf(info.Id, diskBytes);
    const file = join(work, 'base.raw');
    const raw = await open(file, 'wx', 0o600);
    await raw.truncate(diskBytes); // sparse: only what mke2fs writes takes room
    await raw.close();
    // No journal: a sandbox's disk is saved only while its machine is paused, and a journal's writes would land in every overlay.
    // Reproducible: the UUID and hash seed come from the build id, the file system's own times are fixed
    // (E2FSPROGS_FAKE_TIME), the files' times are the image's, and only their ctimes are the host's, set below.
    const made = await run(
      'fakeroot',
      [
        '-i',
        db,
        '--',
        'mke2fs',
        '-q',
        '-F',
        '-t',
        'ext4',
        '-b',
        String(BLOCK),
        '-O',
        '^has_journal',
        '-E',
        `lazy_itable_init=0,root_owner=0:0,hash_seed=${buildId}`,
        '-U',
        buildId,
        '-L',
        'snapflow-root',
        '-d',
        tree,
        file,
      ],
      { E2FSPROGS_FAKE_TIME: '1' },
    );
    if (made.code !== 0) {
      if (/No space|Could not allocate|too many|inode/i.test(made.stderr))
        throw tooLarge(`does not fit (${made.stderr.trim().slice(-200)})`);
      throw new SnapflowError({ code: 'INTERNAL', message: `mke2fs failed (exit ${made.code}): ${made.stderr.trim().slice(-1000)}` });
    }
    // mke2fs copies each file's ctime from the host (when this builder made it): set to 0 in every inode it filled,
    // the root (2), lost+found (11) and the image's, numbered from 12 in the order it made them.
    const cmds = join(work, 'ctimes');
    const numbers = ['<2>', '<11>', ...Array.from({ length: inodes }, (_, i) => `<${12 + i}>`)];
    await writeFile(cmds, numbers.map((n) => `sif ${n} ctime @0\n`).join(''), { mode: 0o600 });
    const fixed = await run('debugfs', ['-w', '-f', cmds, file], { E2FSPROGS_FAKE_TIME: '1' }); // its write time too
    if (fixed.code !== 0 || /error|invalid/i.test(fixed.stderr.replace(/^debugfs [\d.]+ \([^)]*\)\s*/, '')))
      throw new SnapflowError({ code: 'INTERNAL', message: `debugfs failed (exit ${fixed.code}): ${fixed.stderr.trim().slice(-1000)}` });
    rmSync(tree, { recursive: true, force: true });
    rmSync(db, { force: true });
    const written = { image, diskBytes, rootBytes, buildId };
    await writeFile(join(work, 'disk.json'), JSON.stringify(written), { mode: 0o600, flag: 'wx' });
    try {
      renameSync(work, dir);
    } catch (err) {
      // Another build of the same disk finished first: its disk is the one VMs (and their saved overlays) use.
      const other = cachedBaseDisk(opts.cacheDir, info.Id, diskBytes);
      if (other) return other;
      throw err;
    }
    return { file: join(dir, 'base.raw'), ...written };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Unpacks the export into `tree` as data only (see the file's opening comment); returns each kept entry's metadata
 * by guest path, and what the files take on the disk.
 */
async function unpack(
  tar: Readable,
  tree: string,
  limits: { maxBytes: number; maxTarBytes: number; tooLarge: (what: string) => SnapflowError; latest: number },
): Promise<{ entries: Map<string, Meta>; rootBytes: number }> {
  let tarBytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      tarBytes += chunk.length;
      if (tarBytes > limits.maxTarBytes) done(limits.tooLarge(`exports more than ${limits.maxTarBytes >> 20} MiB`));
      else done(null, chunk);
    },
  });
  const stream = extract();
  const piped = pipeline(tar, counted, stream);
  const entries = new Map<string, Meta>();
  const symlinks = new Set<string>();
  const host = (name: string) => join(tree, name);
  let rootBytes = 0;
  const charge = (bytes: number) => {
    rootBytes += Math.ceil(bytes / BLOCK) * BLOCK + BLOCK; // its blocks, and its inode and name
    if (rootBytes > limits.maxBytes) throw limits.tooLarge(`has more than ${limits.maxBytes >> 20} MiB of files`);
  };
  const kind = (name: string) => (entries.get(name)?.mode ?? 0) & S_IFMT;
  /** Parents must be directories this builder made; a missing one is made (as the kernel's unpacker would). */
  const parentReady = (name: string): boolean => {
    const parent = posix.dirname(name);
    if (parent === '.') return true;
    if (entries.has(parent)) return kind(parent) === TYPES.directory;
    if (!parentReady(parent)) return false;
    mkdirSync(host(parent), { mode: 0o700 });
    entries.set(parent, { mode: TYPES.directory | 0o755, uid: 0, gid: 0, rdev: 0, mtime: 0 });
    charge(0);
    return true;
  };
  /** A later entry of the same name replaces the earlier one (a directory over a directory keeps its contents). */
  const replace = (name: string, directory: boolean): void => {
    if (!entries.has(name)) return;
    if (directory && kind(name) === TYPES.directory) return;
    rmSync(host(name), { recursive: true, force: true });
    symlinks.delete(name);
    for (const other of entries.keys()) if (other === name || other.startsWith(`${name}/`)) entries.delete(other);
  };
  try {
    for await (const entry of stream) {
      const h: Headers = entry.header;
      const name = guestName(h.name);
      const keep = name !== undefined && !reservedName(name) && !underSymlink(name, symlinks) && (h.type ?? '') in TYPES_KEPT;
      if (keep && Buffer.byteLength(name) > MAX_NAME_BYTES)
        throw new SnapflowError({
          code: 'VALIDATION_FAILED',
          field: 'image',
          message: `image entry name longer than ${MAX_NAME_BYTES} bytes`,
        });
      if (keep && entries.size >= MAX_ENTRIES) throw limits.tooLarge(`has more than ${MAX_ENTRIES} files`);
      if (!keep || !parentReady(name) || (h.type === 'link' && !linkable(entries, h.linkname ?? undefined))) {
        entry.resume();
        await ended(entry);
        continue;
      }
      const meta: Meta = {
        mode: (h.mode ?? 0) & 0o7777,
        uid: clampU32(h.uid),
        gid: clampU32(h.gid),
        rdev: 0,
        mtime: Math.min(clampU32(h.mtime ? Math.floor(h.mtime.getTime() / 1000) : 0), limits.latest),
      };
      const linkedTo = h.type === 'link' ? guestName(h.linkname!)! : undefined;
      if (linkedTo === name) {
        entry.resume();
        await ended(entry);
        continue;
      }
      const of = linkedTo === undefined ? undefined : { ...entries.get(linkedTo)! };
      replace(name, h.type === 'directory');
      if (h.type === 'file' || h.type === 'contiguous-file') {
        charge(h.size ?? 0);
        await writeSparse(host(name), entry as AsyncIterable<Buffer>);
        entries.set(name, { ...meta, mode: meta.mode | TYPES.file });
        continue;
      }
      entry.resume();
      await ended(entry);
      charge(0);
      if (h.type === 'directory') {
        if (!entries.has(name)) mkdirSync(host(name), { mode: 0o700 });
        entries.set(name, { ...meta, mode: meta.mode | TYPES.directory });
      } else if (h.type === 'symlink') {
        const link = h.linkname ?? '';
        if (!link || Buffer.byteLength(link) > MAX_NAME_BYTES || link.includes('\0')) continue;
        symlinkSync(link, host(name)); // a link the host never follows: mke2fs reads it with readlink
        entries.set(name, { ...meta, mode: 0o777 | TYPES.symlink });
        symlinks.add(name);
      } else if (of && linkedTo !== undefined) {
        const target = linkedTo;
        if (!entries.has(target)) continue; // the name it linked to was replaced by this very entry's parent
        if ((of.mode & S_IFMT) === TYPES.symlink) {
          symlinkSync(readlinkSync(host(target)), host(name));
          symlinks.add(name);
        } else if ((of.mode & S_IFMT) === TYPES.file) linkSync(host(target), host(name));
        else await (await open(host(name), 'wx', 0o600)).close();
        entries.set(name, { ...of });
      } else {
        // Device nodes and fifos: an empty file here, the real kind only in the fakeroot database.
        await (await open(host(name), 'wx', 0o600)).close();
        const type = h.type as 'character-device' | 'block-device' | 'fifo';
        entries.set(name, { ...meta, mode: meta.mode | TYPES[type], rdev: makedev(clampU32(h.devmajor), clampU32(h.devminor)) });
      }
    }
    await piped;
  } catch (err) {
    stream.destroy();
    await piped.catch(() => undefined);
    throw err;
  }
  // The mount points and home the agent needs, for an image that lacks them; an image's own are kept as they are.
  for (const [name, mode] of BASE_DIRS) {
    if (entries.has(name)) continue;
    mkdirSync(host(name), { mode: 0o700 });
    entries.set(name, { mode: TYPES.directory | mode, uid: 0, gid: 0, rdev: 0, mtime: 0 });
  }
  // Times last: making an entry changes its parent's. A link's own times, never its target's.
  for (const [name, meta] of entries) lutimesSync(host(name), meta.mtime, meta.mtime);
  return { entries, rootBytes };
}

const TYPES_KEPT: Record<string, true> = {
  file: true,
  'contiguous-file': true,
  directory: true,
  symlink: true,
  link: true,
  'character-device': true,
  'block-device': true,
  fifo: true,
};

const BASE_DIRS: Array<[string, number]> = [
  ['dev', 0o755],
  ['proc', 0o555],
  ['sys', 0o555],
  ['run', 0o755],
  ['tmp', 0o1777],
  ['root', 0o700],
  // Where the agent shows the host's files (its initramfs's /.snapflow, read-only); no image entry is kept there.
  ['.snapflow', 0o755],
];

/** A hard link is made only to an entry this builder already made (a regular file, link, device or fifo). */
function linkable(entries: Map<string, Meta>, linkname: string | undefined): boolean {
  const target = guestName(linkname ?? '');
  const of = target === undefined ? undefined : entries.get(target);
  return !!of && (of.mode & S_IFMT) !== TYPES.directory;
}

/** Writes a file's data, leaving holes where a whole block is zero (mke2fs keeps them as holes in the image too). */
async function writeSparse(path: string, data: AsyncIterable<Buffer>): Promise<void> {
  const out = await open(path, 'wx', 0o600);
  try {
    let at = 0;
    for await (const chunk of data) {
      let from = 0;
      while (from < chunk.length) {
        const part = chunk.subarray(from, Math.min(chunk.length, from + ZEROS.length));
        if (!part.equals(ZEROS.subarray(0, part.length))) await out.write(part, 0, part.length, at);
        at += part.length;
        from += part.length;
      }
    }
    await out.truncate(at);
  } finally {
    await out.close();
  }
}

/**
 * The fakeroot database (faked's save format): each entry's host dev/inode, with the mode, owner and rdev the guest
 * sees; and how many inodes the image's entries take (hard links share one).
 */
function fakerootDb(tree: string, entries: Map<string, Meta>): { text: string; inodes: number } {
  const seen = new Set<bigint>();
  const line = (path: string, meta: Meta) => {
    const st = lstatSync(path, { bigint: true });
    seen.add(st.ino);
    return `dev=${st.dev.toString(16)},ino=${st.ino},mode=${meta.mode.toString(8)},uid=${meta.uid},gid=${meta.gid},nlink=${st.nlink},rdev=${meta.rdev}\n`;
  };
  const lines = [line(tree, { mode: TYPES.directory | 0o755, uid: 0, gid: 0, rdev: 0, mtime: 0 })];
  for (const [name, meta] of entries) lines.push(line(join(tree, name), meta));
  return { text: lines.join(''), inodes: seen.size - 1 };
}

/** The build id (a UUID's shape, the disk's UUID and hash seed too): what decides the disk's bytes. */
function buildIdOf(imageId: string, diskBytes: number): string {
  const hex = createHash('sha256').update(`${FORMAT}\0${imageId}\0${diskBytes}\0${mke2fs()}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

let mke2fsVersion: string | undefined;
/** mke2fs's version, part of the build id: another version may lay the same files out otherwise. */
function mke2fs(): string {
  const out = mke2fsVersion ? undefined : spawnSync('mke2fs', ['-V'], { encoding: 'utf8' });
  return (mke2fsVersion ??= /mke2fs ([\d.]+)/.exec(`${out?.stdout}${out?.stderr}`)?.[1] ?? 'unknown');
}

/** Linux's dev_t encoding (glibc's makedev). */
function makedev(major: number, minor: number): number {
  return Number(
    ((BigInt(major) & 0xfffn) << 8n) | (BigInt(minor) & 0xffn) | ((BigInt(minor) & ~0xffn) << 12n) | ((BigInt(major) & ~0xfffn) << 32n),
  );
}

function clampU32(value: number | undefined): number {
  return Number.isFinite(value) && value! > 0 ? Math.min(Math.floor(value!), 0xffffffff) : 0;
}

function ended(entry: NodeJS.ReadableStream): Promise<void> {
  return new Promise<void>((done, fail) => (entry.once('end', done), entry.once('error', fail)));
}

function run(command: string, args: string[], env?: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(env ? { env: { ...process.env, ...env } } : {}) });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  return new Promise((done, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => done({ code, stderr }));
  });
}
