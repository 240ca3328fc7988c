// A vm's large state files (guest RAM, disk overlay) as content-addressed chunks: the host's chunk store, and the
// `snapflow-chunks` tool (tools/chunks, Go: Node has neither zstd nor SEEK_DATA) that splits a file into it and
// assembles one from it. A chunk is named by the sha256 of its compressed bytes, so snapshots share chunks and a
// save writes only the chunks that changed since the state its machine came from.
//
// The store is `<cacheDir>/vm-chunks/<hex>`: one file per chunk, its mtime the LRU clock (touchChunks, evictChunks).
// The tool's temporary files there start with a dot.
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, realpathSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SnapflowError } from '../../lib/errors';
import { privateDir } from './machine';

export interface ChunkMap {
  format: 1;
  /** The file's length; what no chunk covers reads as zeros. */
  size: number;
  chunkBytes: number;
  /** Sorted by i; chunk i starts at i * chunkBytes. raw: sha256 hex of its bytes; blob: `sha256:<hex>` of its zstd. */
  chunks: Array<{ i: number; raw: string; blob: string; bytes: number }>;
}

export interface SplitResult extends ChunkMap {
  /** Blobs this split added to the store (the ones an upload must send, unless storage has them). */
  written: string[];
  readBytes: number;
  ms: number;
}

/** assembleFile could not run: these chunks are not in the store. Fetch them and call it again. */
export class MissingChunks extends Error {
  readonly blobs: string[];
  constructor(blobs: string[]) {
    super(`${blobs.length} chunk${blobs.length === 1 ? ' is' : 's are'} not in the store: ${blobs.join(', ')}`);
    this.name = 'MissingChunks';
    this.blobs = blobs;
  }
}

const BLOB = /^sha256:([0-9a-f]{64})$/;
const CHUNK_FILE = /^[0-9a-f]{64}$/;
// The tool's own temporary files; one this old belongs to a run that died.
const TEMP_FILE = /^\.tmp-/;
const STALE_TEMP_MS = 60 * 60 * 1000;
// A map is about 170 bytes a chunk: this is a 1.5 TiB file at the default chunk size.
const MAX_STDOUT = 1 << 30;
const MAX_STDERR = 64 << 10;

/** The tool, looked up where provisioning puts it (like vmTools). */
export function chunkTool(toolsDir = resolve(__dirname, '..', '..', '.tools', 'vm')): string {
  const tool = join(toolsDir, 'snapflow-chunks');
  if (!existsSync(tool)) {
    throw new SnapflowError({
      code: 'VM_UNAVAILABLE',
      message: `the vm chunk tool is missing (looked for ${tool})`,
      hint: 'run bash scripts/provision.sh',
    });
  }
  return realpathSync(tool);
}

/** The host's chunk store under `cacheDir`, made 0700 (or checked, when it is there). */
export function chunkStore(cacheDir: string): string {
  return privateDir(join(cacheDir, 'vm-chunks'), 'SNAPFLOW_CACHE_DIR');
}

/** Where chunk `blob` (`sha256:<hex>`) lives in `store`. */
export function chunkFile(store: string, blob: string): string {
  const hex = BLOB.exec(blob)?.[1];
  if (!hex) throw new SnapflowError({ code: 'STATE_CORRUPT', message: `not a chunk digest: ${JSON.stringify(blob).slice(0, 80)}` });
  return join(store, hex);
}

/** Splits `file` into `store`. With `prev` (the map of the state the file came from), unchanged chunks are reused. */
export async function splitFile(input: {
  file: string;
  store: string;
  prev?: ChunkMap;
  chunkBytes?: number;
  maxSize?: number;
  /** The uid the file must belong to, with a single name (a file QEMU's user wrote: nothing it linked in). */
  owner?: number;
  tool?: string;
}): Promise<SplitResult> {
  const args = ['split', '--in', input.file, '--store', input.store];
  if (input.owner !== undefined) args.push('--owner', String(input.owner));
  if (input.chunkBytes !== undefined) args.push('--chunk', String(input.chunkBytes));
  if (input.maxSize !== undefined) args.push('--max-size', String(input.maxSize));
  return withMapFile(input.prev, async (prevFile) => {
    if (prevFile) args.push('--prev', prevFile);
    const run = await runTool(input.tool ?? chunkTool(), args);
    if (run.code !== 0) {
      throw new SnapflowError({ code: 'VM_SNAPSHOT_FAILED', message: `splitting ${input.file} into chunks failed: ${run.stderr}` });
    }
    return JSON.parse(run.stdout) as SplitResult;
  });
}

/**
 * Creates `out` (it must not exist) from `map`'s chunks in `store`: sparse, every chunk checked against the map.
 * Throws MissingChunks naming the chunks the store lacks, STATE_CORRUPT when a chunk file does not hold what the map
 * says; on any failure `out` is not left behind.
 */
export async function assembleFile(input: {
  map: ChunkMap;
  store: string;
  out: string;
  owner?: { uid: number; gid: number };
  /** Fill `out`, which exists already (empty, of the map's size), instead of creating it; it is not removed on failure. */
  into?: boolean;
  tool?: string;
}): Promise<{ written: number; ms: number }> {
  const args = ['assemble', '--store', input.store, '--out', input.out];
  if (input.owner) args.push('--uid', String(input.owner.uid), '--gid', String(input.owner.gid));
  if (input.into) args.push('--into');
  return withMapFile(input.map, async (mapFile) => {
    const run = await runTool(input.tool ?? chunkTool(), [...args, '--map', mapFile!]);
    if (run.code === 0) return JSON.parse(run.stdout) as { written: number; ms: number };
    if (run.code === 3) {
      const blobs = run.stderr
        .split('\n')
        .map((line) => /^missing chunk (sha256:[0-9a-f]{64})$/.exec(line)?.[1])
        .filter((blob): blob is string => !!blob);
      if (blobs.length) throw new MissingChunks(blobs);
    }
    if (run.code === 4) throw new SnapflowError({ code: 'STATE_CORRUPT', message: `assembling ${input.out}: ${run.stderr}` });
    throw new SnapflowError({ code: 'VM_SNAPSHOT_FAILED', message: `assembling ${input.out} from chunks failed: ${run.stderr}` });
  });
}

/** Marks chunks as just used (the LRU clock eviction reads). A chunk not in the store is skipped. */
export function touchChunks(store: string, blobs: Iterable<string>): void {
  const now = new Date();
  for (const blob of blobs) {
    try {
      utimesSync(chunkFile(store, blob), now, now);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/**
 * Removes the least recently used chunks until the store holds at most `maxBytes`, never one in `keep` (blob
 * digests: what a running save or restore needs). The store may stay above the bound when `keep` alone exceeds it.
 * Temporary files of dead runs go first.
 */
export function evictChunks(
  store: string,
  opts: { maxBytes: number; keep: Set<string> },
): { removed: string[]; bytes: number; remaining: number } {
  const now = Date.now();
  const chunks: Array<{ name: string; size: number; mtimeMs: number }> = [];
  let total = 0;
  let freed = 0;
  for (const name of readdirSync(store)) {
    let st;
    try {
      st = lstatSync(join(store, name));
    } catch {
      continue; // removed meanwhile
    }
    if (!st.isFile()) continue;
    if (TEMP_FILE.test(name)) {
      if (now - st.mtimeMs > STALE_TEMP_MS && removeFile(join(store, name))) freed += st.size;
      else total += st.size;
      continue;
    }
    if (!CHUNK_FILE.test(name)) continue;
    total += st.size;
    chunks.push({ name, size: st.size, mtimeMs: st.mtimeMs });
  }
  chunks.sort((a, b) => a.mtimeMs - b.mtimeMs || a.name.localeCompare(b.name));
  const removed: string[] = [];
  for (const chunk of chunks) {
    if (total <= opts.maxBytes) break;
    const blob = `sha256:${chunk.name}`;
    if (opts.keep.has(blob)) continue;
    if (removeFile(join(store, chunk.name))) {
      removed.push(blob);
      freed += chunk.size;
    }
    total -= chunk.size;
  }
  return { removed, bytes: freed, remaining: total };
}

function removeFile(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Hands the tool a map as a file in a private temporary directory, removed afterwards. */
async function withMapFile<T>(map: ChunkMap | undefined, work: (file: string | undefined) => Promise<T>): Promise<T> {
  if (!map) return work(undefined);
  const dir = mkdtempSync(join(tmpdir(), 'sfchunks-'));
  try {
    const file = join(dir, 'map.json');
    const { format, size, chunkBytes, chunks } = map; // only the map, not a split's extra fields
    writeFileSync(file, JSON.stringify({ format, size, chunkBytes, chunks }), { mode: 0o600 });
    return await work(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the tool with argv (no shell); stdout is its JSON answer, stderr its one-line reasons. */
function runTool(tool: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    child.stdout.on('data', (b: Buffer) => {
      outBytes += b.length;
      if (outBytes > MAX_STDOUT) child.kill('SIGKILL');
      else out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => {
      if (errBytes < MAX_STDERR) err.push(b);
      errBytes += b.length;
    });
    child.on('error', (e) =>
      reject(
        new SnapflowError({ code: 'VM_UNAVAILABLE', message: `cannot run ${tool}: ${e.message}`, hint: 'run bash scripts/provision.sh' }),
      ),
    );
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString('utf8').slice(0, MAX_STDERR).trim();
      if (outBytes > MAX_STDOUT) {
        reject(new SnapflowError({ code: 'VM_SNAPSHOT_FAILED', message: `${tool} answered more than ${MAX_STDOUT} bytes` }));
      } else if (code === null) {
        reject(new SnapflowError({ code: 'VM_SNAPSHOT_FAILED', message: `${tool} ${args[0]} was killed by ${signal}` }));
      } else {
        resolvePromise({ code, stdout: Buffer.concat(out).toString('utf8'), stderr });
      }
    });
  });
}
