// A vm state file as content-addressed chunks, through the real snapflow-chunks binary: a sparse file goes into the
// store and comes back byte-equal and still sparse; a save after a small change writes only what changed; eviction
// keeps what is in use and honours its bound; a damaged chunk never becomes a restored file.
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assembleFile,
  chunkFile,
  chunkStore,
  evictChunks,
  MissingChunks,
  splitFile,
  touchChunks,
  type ChunkMap,
} from '../activities/vm/chunks';
import { SnapflowError } from '../lib/errors';

const MiB = 1 << 20;
const CHUNK = 256 * 1024;

let dir: string;
let store: string;
let file: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sf-chunks-'));
  store = chunkStore(join(dir, 'cache'));
  file = join(dir, 'ram');
  // 64 MiB, 9 MiB of it random in three regions (one not chunk-aligned), the rest a hole.
  const fd = openSync(file, 'wx', 0o600);
  ftruncateSync(fd, 64 * MiB);
  writeSync(fd, randomBytes(4 * MiB), 0, 4 * MiB, 0);
  writeSync(fd, randomBytes(3 * MiB), 0, 3 * MiB, 20 * MiB + 12345);
  writeSync(fd, randomBytes(2 * MiB), 0, 2 * MiB, 62 * MiB);
  closeSync(fd);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const data of createReadStream(path)) hash.update(data as Buffer);
  return hash.digest('hex');
}

const blobs = (map: ChunkMap) => new Set(map.chunks.map((c) => c.blob));

let first: ChunkMap;
let second: ChunkMap;

test('a sparse file is split into its data chunks and assembled back byte-equal and sparse', async () => {
  expect(statSync(store).mode & 0o777).toBe(0o700);
  const split = await splitFile({ file, store });
  first = split;
  // 16 + 13 (3 MiB starting off a boundary spans 13 chunks) + 8 chunks; the hole is never read.
  expect(split.size).toBe(64 * MiB);
  expect(split.chunkBytes).toBe(CHUNK);
  expect(split.chunks.map((c) => c.i)).toEqual([
    ...Array.from({ length: 16 }, (_, k) => k),
    ...Array.from({ length: 13 }, (_, k) => 80 + k),
    ...Array.from({ length: 8 }, (_, k) => 248 + k),
  ]);
  expect(split.written).toHaveLength(37);
  expect(split.readBytes).toBe(37 * CHUNK);
  for (const blob of split.written) expect(statSync(chunkFile(store, blob)).mode & 0o777).toBe(0o600);

  const out = join(dir, 'restored');
  const assembled = await assembleFile({ map: split, store, out });
  // Chunks partly hole are written whole (zeros included): what matters is that the holes between stay holes.
  expect(assembled.written).toBe(37 * CHUNK);
  expect(await sha256(out)).toBe(await sha256(file));
  expect(statSync(out).blocks * 512).toBeLessThan(12 * MiB);
  expect(statSync(out).mode & 0o777).toBe(0o600);
  unlinkSync(out);
});

test('a split against the previous map after changing 1 MiB writes only the changed chunks', async () => {
  const unchanged = await splitFile({ file, store, prev: first });
  expect(unchanged.written).toEqual([]);
  expect(unchanged.chunks).toEqual(first.chunks);

  const fd = openSync(file, 'r+');
  writeSync(fd, randomBytes(MiB), 0, MiB, 2 * MiB); // chunks 8..11
  closeSync(fd);
  const split = await splitFile({ file, store, prev: first });
  second = split;
  const changed = split.chunks.filter((c, k) => c.raw !== first.chunks[k]?.raw);
  expect(changed.map((c) => c.i)).toEqual([8, 9, 10, 11]);
  expect([...split.written].sort()).toEqual(changed.map((c) => c.blob).sort());

  const out = join(dir, 'restored-2');
  await assembleFile({ map: split, store, out });
  expect(await sha256(out)).toBe(await sha256(file));
  unlinkSync(out);
});

test('eviction removes the least recently used chunks down to the bound and never one it must keep', () => {
  const all = [...new Set([...blobs(first), ...blobs(second)])];
  // A clock of our own: chunk k was last used k seconds after the oldest; then two of the oldest are used again.
  const base = Math.floor(Date.now() / 1000) - 3600;
  all.forEach((blob, k) => utimesSync(chunkFile(store, blob), base + k, base + k));
  const keep = new Set(all.slice(0, 2));
  touchChunks(store, all.slice(2, 4));
  const sizeOf = (blob: string) => statSync(chunkFile(store, blob)).size;
  const total = all.reduce((sum, blob) => sum + sizeOf(blob), 0);
  const maxBytes = Math.floor(total / 2);
  // What least-recently-used means here: oldest first, the two just touched last, the kept ones never.
  const expected: string[] = [];
  let left = total;
  for (const blob of [...all.slice(4), ...all.slice(2, 4)]) {
    if (left <= maxBytes) break;
    expected.push(blob);
    left -= sizeOf(blob);
  }

  const result = evictChunks(store, { maxBytes, keep });
  expect(result.removed).toEqual(expected);
  expect(result.remaining).toBe(left);
  expect(result.remaining).toBeLessThanOrEqual(maxBytes);
  expect(result.bytes).toBe(total - left);
  for (const blob of result.removed) expect(existsSync(chunkFile(store, blob))).toBe(false);
  for (const blob of [...keep, ...all.slice(2, 4)]) expect(existsSync(chunkFile(store, blob))).toBe(true);

  // Kept means kept, even when that leaves the store above its bound.
  const kept = evictChunks(store, { maxBytes: 0, keep: new Set(all) });
  expect(kept).toEqual({ removed: [], bytes: 0, remaining: left });
});

test('a missing chunk is named for the caller to fetch, and a damaged one fails STATE_CORRUPT; no output is left', async () => {
  // The eviction above removed some of the first map's chunks: the store names exactly those.
  const present = first.chunks.filter((c) => existsSync(chunkFile(store, c.blob)));
  const out = join(dir, 'restored-3');
  const missing = await assembleFile({ map: first, store, out }).catch((err: unknown) => err);
  expect(missing).toBeInstanceOf(MissingChunks);
  expect(new Set((missing as MissingChunks).blobs)).toEqual(new Set(first.chunks.filter((c) => !present.includes(c)).map((c) => c.blob)));
  expect(existsSync(out)).toBe(false);

  // A map of what is left, with one byte flipped in one of its chunk files.
  const map: ChunkMap = { ...first, chunks: present };
  const damaged = present[present.length - 1]!.blob;
  const victim = chunkFile(store, damaged);
  const data = readFileSync(victim);
  data[data.length >> 1]! ^= 0x01;
  const fd = openSync(victim, 'r+');
  writeSync(fd, data, 0, data.length, 0);
  closeSync(fd);
  const corrupt = await assembleFile({ map, store, out }).catch((err: unknown) => err);
  expect(corrupt).toBeInstanceOf(SnapflowError);
  expect((corrupt as SnapflowError).code).toBe('STATE_CORRUPT');
  expect((corrupt as SnapflowError).message).toContain(damaged);
  expect(existsSync(out)).toBe(false);
});
