// A saved machine in snapshot storage: one OCI artifact per state (its own media types, so no engine mistakes it for
// an image): its device-state file as the first layer, then each RAM and overlay chunk it names as a blob of its own,
// so the registry stores a chunk once however many states name it, and deleting a state's manifest lets garbage
// collection release the chunks no other state names. The manifest beside a state file travels as an annotation, so
// a host that pulls a state knows what it restores onto without asking anyone.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  fstatSync,
  mkdirSync,
  openAsBlob,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SnapflowError } from '../../lib/errors';
import { Session, type RegistryTarget } from '../registryClient';
import { chunkFile, type ChunkMap } from './chunks';
import type { VmSnapshot } from './types';

/** Each chunk blob a state names, once, with its size. */
export function stateChunks(state: Pick<VmSnapshot, 'ram' | 'overlay'>): Array<{ blob: string; bytes: number }> {
  const seen = new Map<string, number>();
  for (const map of [state.ram, state.overlay] as Array<ChunkMap | undefined>) for (const c of map?.chunks ?? []) seen.set(c.blob, c.bytes);
  return [...seen].map(([blob, bytes]) => ({ blob, bytes }));
}

/** Runs `fn` over `items`, `limit` at a time; the first failure fails the whole. */
async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

export const VM_STATE_ARTIFACT = 'application/vnd.snapflow.vm.state.v1';
export const VM_STATE_LAYER = 'application/vnd.snapflow.vm.state.v1+zstd';
/** One chunk of guest RAM or of a disk overlay, zstd (chunks.ts). */
export const VM_CHUNK_LAYER = 'application/vnd.snapflow.vm.chunk.v1+zstd';
/** Chunks moved to or from snapshot storage at once. */
const TRANSFERS = 8;
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') };
const MANIFEST_ANNOTATION = 'io.snapflow.vm.manifest';

// The host cache of saved machines has one layout, defined here only: `<cacheDir>/vm-states/` holds each state as
// `<sha256(ref), 32 hex>.zst` beside its manifest `.json`; a save in progress as `save-<sha256(localRef), 24 hex>.zst`;
// a pull's or an import's partial copy as `<state>.zst.partial-<pid>`.

/** The folder of the host cache of saved machines under `cacheDir`. */
export function stateCachePath(cacheDir: string): string {
  return join(cacheDir, 'vm-states');
}

/** Where a host keeps the state behind `ref` (a stored ref `registry/repo@sha256:…`, or a local-only `snapflow.local/…:tag`). */
export function cachedStateFile(cacheDir: string, ref: string): string {
  return join(stateCachePath(cacheDir), `${createHash('sha256').update(ref).digest('hex').slice(0, 32)}.zst`);
}

/** Where the save of the machine to be stored as `localRef` writes, one path per snapshot (a retry overwrites it). */
export function savingStateFile(cacheDir: string, localRef: string): string {
  return join(stateCachePath(cacheDir), `save-${createHash('sha256').update(localRef).digest('hex').slice(0, 24)}.zst`);
}

/** The partial copy this process writes before renaming it to `file`. */
function partialOf(file: string): string {
  return `${file}.partial-${process.pid}`;
}

/** A file of the cache that is never a finished state: a save in progress, a partial copy, a temporary file. */
export function isUnfinishedState(name: string): boolean {
  return /^save-|\.partial-|\.tmp$/.test(name);
}

/** The worker pid a pull's partial copy names (`<state>.zst.partial-<pid>`); none for a save's files. */
export function pullPartialPid(name: string): number | undefined {
  const pid = /\.partial-(\d+)$/.exec(name)?.[1];
  return name.startsWith('save-') || !pid ? undefined : Number(pid);
}

/**
 * The host cache of saved machines: 0700, its files 0600. A state holds the guest's whole memory, so whatever
 * secrets a job had are in it.
 */
export function stateCacheDir(cacheDir: string): string {
  const dir = stateCachePath(cacheDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return dir;
}

/** What the cache keeps beside a state file: its manifest, and the digest its bytes must have. */
type CachedManifest = VmSnapshot & { sha256?: string };

const writePrivate = (file: string, body: string): void => writeFileSync(file, body, { mode: 0o600 });

export function hasCachedState(cacheDir: string, ref: string): boolean {
  const file = cachedStateFile(cacheDir, ref);
  return existsSync(file) && existsSync(`${file}.json`);
}

/**
 * Moves a saved state and its manifest to where `ref`'s copy belongs (both renames within one directory tree),
 * recording the state's digest (computed here once, when absent) for the check before each restore.
 */
export async function adoptState(from: string, cacheDir: string, ref: string): Promise<string> {
  const file = cachedStateFile(cacheDir, ref);
  stateCacheDir(cacheDir);
  const manifest = JSON.parse(readFileSync(`${from}.json`, 'utf8')) as CachedManifest;
  const sha256 = manifest.sha256 ?? (await sha256File(from));
  writePrivate(`${file}.json.tmp`, JSON.stringify({ ...manifest, file, sha256 }));
  chmodSync(from, 0o600);
  renameSync(from, file);
  renameSync(`${file}.json.tmp`, `${file}.json`);
  rmSync(`${from}.json`, { force: true });
  return file;
}

/**
 * Copies a state QEMU saved in its own directory to `to` (the worker's, 0600), hashing it on the way: the digest each
 * later restore checks. QEMU's user controls that file, so it is opened without following a link, must be a regular
 * file of `owner` with a single name (no hard link to someone else's file), and is read no further than `maxBytes`.
 */
export async function importSavedState(
  from: string,
  to: string,
  opts: { owner: number; maxBytes: number },
): Promise<{ sha256: string; bytes: number }> {
  const refuse = (why: string): never => {
    throw new SnapflowError({ code: 'VM_SNAPSHOT_FAILED', message: `the saved vm state ${from} ${why}; nothing was kept` });
  };
  let fd: number;
  try {
    fd = openSync(from, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    return refuse(`cannot be opened (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const partial = partialOf(to);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) refuse('is not a regular file');
    if (st.uid !== opts.owner || st.nlink !== 1) refuse(`is not QEMU's own file (uid ${st.uid}, ${st.nlink} links)`);
    if (st.size > opts.maxBytes) refuse(`is larger (${st.size} bytes) than a machine of its RAM saves (${opts.maxBytes})`);
    const hash = createHash('sha256');
    let bytes = 0;
    const source = createReadStream('', { fd, start: 0, end: opts.maxBytes, autoClose: false });
    source.on('data', (chunk: Buffer | string) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    await pipeline(source, createWriteStream(partial, { mode: 0o600 }));
    if (bytes > opts.maxBytes) refuse(`grew past ${opts.maxBytes} bytes while it was copied`);
    renameSync(partial, to);
    return { sha256: `sha256:${hash.digest('hex')}`, bytes };
  } finally {
    closeSync(fd);
    rmSync(partial, { force: true });
  }
}

/** Removes `ref`'s cached state; a VM restored from it already holds its memory, so nothing running depends on it. */
export function evictState(cacheDir: string, ref: string): boolean {
  const file = cachedStateFile(cacheDir, ref);
  if (!existsSync(file) && !existsSync(`${file}.json`)) return false;
  rmSync(`${file}.json`, { force: true });
  rmSync(file, { force: true });
  return true;
}

/**
 * The cached state behind `ref`, checked against its recorded digest before QEMU reads it. A copy that does not
 * match (a flipped bit on disk, a tampered file) is evicted and refused: the next restore fetches it again.
 */
export async function verifiedState(cacheDir: string, ref: string): Promise<string> {
  const file = cachedStateFile(cacheDir, ref);
  const manifest = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as CachedManifest;
  const got = await sha256File(file);
  if (manifest.sha256 && got === manifest.sha256) return file;
  evictState(cacheDir, ref);
  throw new SnapflowError({
    code: 'STATE_CORRUPT',
    message: manifest.sha256
      ? `the cached vm state ${ref.slice(0, 200)} does not match its digest (${got} ≠ ${manifest.sha256}); it has been evicted`
      : `the cached vm state ${ref.slice(0, 200)} has no recorded digest; it has been evicted`,
    hint: 'start the sandbox again: a state in snapshot storage is fetched afresh; a host-only session is lost',
  });
}

const sha256File = async (file: string): Promise<string> => {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return `sha256:${hash.digest('hex')}`;
};

/**
 * Puts a blob into the target repository unless it is there; returns the bytes sent. With `mountFrom` (the repository
 * the machine was restored from), a blob that repository holds is linked across (a cross-repository mount), not sent.
 */
async function uploadBlob(
  session: Session,
  target: RegistryTarget,
  digest: string,
  body: () => Promise<Blob | Buffer>,
  mountFrom?: string,
): Promise<number> {
  const head = await session.send('HEAD', `/v2/${target.repository}/blobs/${digest}`);
  await head.body?.cancel();
  if (head.ok) return 0; // already there (the empty config, a chunk an earlier state has, or a retried upload)
  if (head.status === 401 || head.status === 403) throw await session.authFailed(head);
  const mount = mountFrom && mountFrom !== target.repository ? `?mount=${digest}&from=${encodeURIComponent(mountFrom)}` : '';
  const start = await session.send('POST', `/v2/${target.repository}/blobs/uploads/${mount}`);
  await start.body?.cancel();
  if (start.status === 401 || start.status === 403) throw await session.authFailed(start);
  if (mount && start.status === 201) return 0; // mounted: the registry had it under the source repository
  const location = start.headers.get('location');
  if (start.status !== 202 || !location) throw new Error(`registry ${target.registry} refused a blob upload (${start.status})`);
  const url = new URL(location, `http://${target.registry}`);
  url.searchParams.set('digest', digest);
  const absolute = /^https?:\/\//.test(location) ? url.toString() : `${url.pathname}${url.search}`;
  const data = await body();
  const put = await session.send('PUT', absolute, { 'content-type': 'application/octet-stream' }, data);
  await put.body?.cancel();
  if (put.status !== 201) throw new Error(`registry ${target.registry} answered ${put.status} to a blob upload of ${digest}`);
  return data instanceof Blob ? data.size : data.length;
}

/**
 * Uploads a state (its device-state file, then each chunk the repository lacks, from the host's chunk store
 * `chunks`) as an OCI artifact tagged `tag`; returns the manifest's digest, the stored ref's pin, and the bytes sent.
 * A retried upload re-sends only what is missing.
 */
export async function pushState(
  target: RegistryTarget,
  file: string,
  tag: string,
  opts: {
    chunks: string;
    mountFrom?: string;
    /**
     * Chunks the repository holds already (the previous state stored there named them): not checked one by one. Had
     * one gone since (its state deleted and collected), the registry refuses the manifest and every chunk is checked.
     */
    present?: Set<string>;
  },
): Promise<{ digest: string; bytes: number; uploadedBytes: number }> {
  const session = new Session(target);
  const saved = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as CachedManifest;
  const layerDigest = saved.sha256 ?? (await sha256File(file));
  const bytes = statSync(file).size;
  const configDigest = `sha256:${createHash('sha256').update(EMPTY_CONFIG.bytes).digest('hex')}`;
  await uploadBlob(session, target, configDigest, async () => EMPTY_CONFIG.bytes);
  let uploadedBytes = await uploadBlob(session, target, layerDigest, () => openAsBlob(file));
  const chunks = stateChunks(saved);
  const sendChunks = (present: Set<string>) =>
    inParallel(chunks, TRANSFERS, async ({ blob }) => {
      if (present.has(blob)) return;
      const sent = await uploadBlob(session, target, blob, () => openAsBlob(chunkFile(opts.chunks, blob)), opts.mountFrom);
      uploadedBytes += sent; // after the await: lanes add their own, none overwrites another's
    });
  await sendChunks(opts.present ?? new Set());
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      artifactType: VM_STATE_ARTIFACT,
      config: { mediaType: EMPTY_CONFIG.mediaType, digest: configDigest, size: EMPTY_CONFIG.bytes.length },
      layers: [
        { mediaType: VM_STATE_LAYER, digest: layerDigest, size: bytes },
        ...chunks.map((c) => ({ mediaType: VM_CHUNK_LAYER, digest: c.blob, size: c.bytes })),
      ],
      annotations: { [MANIFEST_ANNOTATION]: JSON.stringify({ ...saved, file: undefined, sha256: undefined }) },
    }),
  );
  const putManifest = () => session.send('PUT', `/v2/${target.repository}/manifests/${tag}`, { 'content-type': MANIFEST_TYPE }, manifest);
  let res = await putManifest();
  if (res.status === 400 && opts.present?.size) {
    await res.body?.cancel();
    await sendChunks(new Set());
    res = await putManifest();
  }
  await res.body?.cancel();
  if (res.status === 401 || res.status === 403) throw await session.authFailed(res);
  if (res.status !== 201)
    throw new Error(`registry ${target.registry} answered ${res.status} to the vm state manifest ${target.repository}:${tag}`);
  return { digest: `sha256:${createHash('sha256').update(manifest).digest('hex')}`, bytes, uploadedBytes };
}

interface StateManifest {
  artifactType?: string;
  layers?: Array<{ mediaType?: string; digest?: string; size?: number }>;
  annotations?: Record<string, string>;
}

/** The artifact's manifest when `digest` names a saved machine, undefined when it names anything else (an image). */
export async function readStateManifest(target: RegistryTarget, digest: string): Promise<StateManifest | undefined> {
  const session = new Session(target);
  const res = await session.send('GET', `/v2/${target.repository}/manifests/${digest}`, { accept: MANIFEST_TYPE });
  if (res.status === 401 || res.status === 403) throw await session.authFailed(res);
  if (res.status === 404) {
    await res.body?.cancel();
    throw new SnapflowError({ code: 'IMAGE_NOT_FOUND', message: `${target.repository}@${digest} is not in ${target.registry}` });
  }
  if (!res.ok) throw new Error(`registry ${target.registry} answered ${res.status} for ${target.repository}@${digest}`);
  const body = Buffer.from(await res.arrayBuffer());
  // The ref pins the manifest by digest: a body that hashes otherwise is not the one that was pushed.
  const got = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  if (digest.startsWith('sha256:') && got !== digest)
    throw new SnapflowError({
      code: 'STATE_CORRUPT',
      message: `snapshot storage answered ${target.repository}@${digest} with a manifest whose digest is ${got}`,
      hint: 'check snapshot storage: it returned something other than what was stored',
    });
  let manifest: StateManifest;
  try {
    manifest = JSON.parse(body.toString('utf8')) as StateManifest;
  } catch {
    return undefined;
  }
  return manifest.artifactType === VM_STATE_ARTIFACT ? manifest : undefined;
}

/** Downloads one blob to `file` (via a partial copy), checking its bytes against its digest; whole or not at all. */
async function pullBlob(session: Session, target: RegistryTarget, digest: string, file: string, partial: string): Promise<number> {
  const res = await session.send('GET', `/v2/${target.repository}/blobs/${digest}`);
  if (res.status === 401 || res.status === 403) throw await session.authFailed(res);
  if (!res.ok || !res.body) throw new Error(`registry ${target.registry} answered ${res.status} for blob ${digest}`);
  try {
    const hash = createHash('sha256');
    let bytes = 0;
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
    body.on('data', (chunk: Buffer) => (hash.update(chunk), (bytes += chunk.length)));
    await pipeline(body, createWriteStream(partial, { mode: 0o600 }));
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== digest) throw new Error(`blob ${target.repository}@${digest} arrived corrupted (${got})`);
    renameSync(partial, file);
    return bytes;
  } finally {
    rmSync(partial, { force: true });
  }
}

/**
 * Fetches the chunks of `state` that the host's chunk store lacks, in parallel; returns how many bytes came.
 * What is already here is never fetched again: a host that restored a workspace's earlier sessions has most of them.
 */
export async function pullChunks(
  target: RegistryTarget,
  state: Pick<VmSnapshot, 'ram' | 'overlay'>,
  chunks: string,
): Promise<{ fetched: number; bytes: number }> {
  const session = new Session(target);
  mkdirSync(chunks, { recursive: true, mode: 0o700 });
  const missing = stateChunks(state).filter((c) => !existsSync(chunkFile(chunks, c.blob)));
  let bytes = 0;
  await inParallel(missing, TRANSFERS, async ({ blob }) => {
    const file = chunkFile(chunks, blob);
    // A temporary name the chunk store's eviction knows (`.tmp-`): a pull killed mid-way leaves nothing for good.
    const got = await pullBlob(session, target, blob, file, join(chunks, `.tmp-${basename(file)}-${process.pid}`));
    bytes += got;
  });
  return { fetched: missing.length, bytes };
}

/**
 * Downloads a saved machine into the host cache (its device state, then the chunks the chunk store lacks), checking
 * the bytes against their digests; whole or not at all.
 */
export async function pullState(
  target: RegistryTarget,
  digest: string,
  cacheDir: string,
  ref: string,
  chunks: string,
): Promise<{ file: string; bytes: number }> {
  const manifest = await readStateManifest(target, digest);
  const layer = manifest?.layers?.[0];
  const saved = manifest?.annotations?.[MANIFEST_ANNOTATION];
  if (!manifest || !layer?.digest || layer.mediaType !== VM_STATE_LAYER || !saved)
    throw new SnapflowError({ code: 'VALIDATION_FAILED', message: `${target.repository}@${digest} is not a saved vm state` });
  const state = JSON.parse(saved) as VmSnapshot;
  const fetched = await pullChunks(target, state, chunks);
  const file = cachedStateFile(cacheDir, ref);
  stateCacheDir(cacheDir);
  const partial = partialOf(file);
  const session = new Session(target);
  const res = await session.send('GET', `/v2/${target.repository}/blobs/${layer.digest}`);
  if (res.status === 401 || res.status === 403) throw await session.authFailed(res);
  if (!res.ok || !res.body) throw new Error(`registry ${target.registry} answered ${res.status} for blob ${layer.digest}`);
  try {
    const hash = createHash('sha256');
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
    body.on('data', (chunk: Buffer) => hash.update(chunk));
    await pipeline(body, createWriteStream(partial, { mode: 0o600 }));
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== layer.digest) throw new Error(`vm state ${target.repository}@${digest} arrived corrupted (${got} ≠ ${layer.digest})`);
    writePrivate(`${file}.json.tmp`, JSON.stringify({ ...state, file, sha256: layer.digest }));
    renameSync(partial, file);
    renameSync(`${file}.json.tmp`, `${file}.json`);
  } finally {
    rmSync(partial, { force: true });
    rmSync(`${file}.json.tmp`, { force: true });
  }
  return { file, bytes: statSync(file).size + fetched.bytes };
}
