// The guest agent's channel as the host reads it: JSON lines and binary output frames on one stream, split anywhere by
// the socket, from a guest that may be hostile or may be a connection picked up in the middle of an earlier one's
// frame. And Docker's exec stream, demultiplexed the same way: every byte exact, nothing gathered.
import { randomBytes } from 'node:crypto';
import { ChannelReader, FRAME_MAGIC, outputFrameHeader, type OutputFrame } from '../activities/vm/agentFrames';
import { ExecDemuxer } from '../activities/execStream';

const MiB = 1024 * 1024;
const KEY = 'k'.repeat(24);

interface Seen {
  lines: string[];
  frames: Array<OutputFrame & { data: Buffer }>;
}

function reader(max = MiB): { reader: ChannelReader; seen: Seen } {
  const seen: Seen = { lines: [], frames: [] };
  const r = new ChannelReader(max, 'guest agent', Buffer.from(KEY), (frame) => {
    const entry = { ...frame, data: Buffer.alloc(0) };
    seen.frames.push(entry);
    return (piece) => (entry.data = Buffer.concat([entry.data, piece]));
  });
  return { reader: r, seen };
}

function feed(r: ChannelReader, seen: Seen, input: Buffer, chunkBytes: number): void {
  for (let at = 0; at < input.length; at += chunkBytes) r.push(input.subarray(at, at + chunkBytes), (l) => seen.lines.push(l.toString()));
}

const frame = (stream: 'stdout' | 'stderr', id: string, data: Buffer, key = KEY): Buffer =>
  Buffer.concat([outputFrameHeader(stream, id, key, data.length), data]);

test('lines and frames split anywhere come out whole, in order, byte-exact (data holding newlines and the magic too)', () => {
  const tricky = Buffer.concat([Buffer.from('{"not":"a line"}\n'), FRAME_MAGIC, randomBytes(3000)]);
  const input = Buffer.concat([
    Buffer.from('{"id":"p1","pong":true}\n'),
    frame('stdout', 'j-1', tricky),
    frame('stderr', 'j-1', Buffer.from('oops\n')),
    Buffer.from('{"id":"j-1","exitCode":0}\n'),
  ]);
  for (const size of [1, 2, 5, 11, 12, 13, 64, 4096, input.length]) {
    const { reader: r, seen } = reader();
    feed(r, seen, input, size);
    expect(seen.lines).toEqual(['{"id":"p1","pong":true}', '{"id":"j-1","exitCode":0}']);
    expect(seen.frames.map((f) => [f.stream, f.id, f.bytes])).toEqual([
      ['stdout', 'j-1', tricky.length],
      ['stderr', 'j-1', 5],
    ]);
    expect(seen.frames[0]!.data.equals(tricky)).toBe(true);
    expect(seen.frames[1]!.data.toString()).toBe('oops\n');
  }
});

test('a frame over the limit is refused typed as soon as its header arrives, before any of its data', () => {
  const { reader: r, seen } = reader(64 * 1024);
  const header = outputFrameHeader('stdout', 'j-1', KEY, 64 * 1024 + 1);
  expect(() => feed(r, seen, header, 5)).toThrow(
    expect.objectContaining({ code: 'VM_AGENT_PROTOCOL', message: expect.stringContaining('frame longer than 65536 bytes') }),
  );
  expect(seen.frames).toEqual([]);
  // Exactly the limit passes; an endless line is still refused by the same limit.
  const ok = reader(64 * 1024);
  feed(ok.reader, ok.seen, frame('stdout', 'j-1', Buffer.alloc(64 * 1024, 1)), 4096);
  expect(ok.seen.frames[0]!.data.length).toBe(64 * 1024);
  expect(() => feed(ok.reader, ok.seen, Buffer.alloc(64 * 1024 + 1, 'a'), 4096)).toThrow(
    expect.objectContaining({ code: 'VM_AGENT_PROTOCOL' }),
  );
});

test("a connection that starts in the middle of an earlier one's frame, and meets its frames, reads its own exact", () => {
  // What an earlier connection left: the tail of a frame (random bytes full of 0xF5, a header cut short, a false
  // magic), then whole frames under its key, one of whose data forges a header with a length far past the limit.
  const forged = outputFrameHeader('stdout', 'j-2', 'x'.repeat(24), 512 * MiB);
  const stray = Buffer.concat([
    Buffer.alloc(300, 0xf5),
    randomBytes(5000),
    outputFrameHeader('stdout', 'j-old', KEY, 100).subarray(0, 9),
    Buffer.from([0xf5, 0x53, 0x46, 0x42, 9, 9]),
    frame('stdout', 'j-old', Buffer.concat([forged, Buffer.from('old bytes')]), 'o'.repeat(24)),
    frame('stderr', 'j-2', Buffer.from('not ours either'), 'o'.repeat(24)),
    Buffer.from('\n'),
  ]);
  const input = Buffer.concat([stray, frame('stdout', 'j-2', Buffer.from('fresh')), Buffer.from('{"id":"j-2","exitCode":3}\n')]);
  for (const size of [1, 7, 13, 4096, input.length]) {
    const { reader: r, seen } = reader();
    feed(r, seen, input, size);
    expect(seen.frames.map((f) => [f.id, f.data.toString()])).toEqual([['j-2', 'fresh']]);
    expect(seen.lines.at(-1)).toBe('{"id":"j-2","exitCode":3}');
  }
});

test('64 MiB of frames, and 2 MiB of stray 0xF5 bytes, cost a scan linear in the input (data is never scanned)', () => {
  const indexOf = Buffer.prototype.indexOf;
  let scanned = 0;
  const spy = jest.spyOn(Buffer.prototype, 'indexOf').mockImplementation(function (this: Buffer, ...args: unknown[]) {
    const from = typeof args[1] === 'number' ? args[1] : 0;
    const found = indexOf.apply(this, args as Parameters<Buffer['indexOf']>);
    scanned += (found < 0 ? this.length : found + 1) - from;
    return found;
  });
  try {
    const frames = Buffer.concat(Array.from({ length: 256 }, () => frame('stdout', 'j-1', Buffer.alloc(256 * 1024, 'a'))));
    let bytes = 0;
    const r = new ChannelReader(MiB, 'guest agent', Buffer.from(KEY), () => (piece) => (bytes += piece.length));
    for (let at = 0; at < frames.length; at += 4096) r.push(frames.subarray(at, at + 4096), () => undefined);
    expect(bytes).toBe(64 * MiB);
    // Only the chunk a frame ends in is searched, from that end on: at most a chunk per frame, twice.
    expect(scanned).toBeLessThanOrEqual(256 * 2 * 4096);

    const stray = Buffer.alloc(4096, 0xf5);
    const garbage = new ChannelReader(MiB, 'guest agent', Buffer.from(KEY), () => undefined);
    scanned = 0;
    let lines = 0;
    for (let at = 0; at < 2 * MiB; at += stray.length) garbage.push(stray, () => lines++);
    expect(lines).toBe(0);
    expect(scanned).toBeLessThanOrEqual(2 * 2 * MiB);
  } finally {
    spy.mockRestore();
  }
});

test("Docker's exec stream split anywhere: each stream's bytes exact and in order, as views of the input", () => {
  const out = randomBytes(70_000);
  const err = Buffer.from('warning\n');
  const header = (stream: number, n: number) =>
    Buffer.from([stream, 0, 0, 0, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const input = Buffer.concat([
    header(1, 40_000),
    out.subarray(0, 40_000),
    header(2, err.length),
    err,
    header(1, 30_000),
    out.subarray(40_000),
  ]);
  for (const size of [1, 3, 8, 9, 4096, input.length]) {
    const got = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    let copies = 0;
    const demux = new ExecDemuxer((stream, piece) => {
      got[stream].push(piece);
      if (piece.buffer !== input.buffer) copies++;
    });
    for (let at = 0; at < input.length; at += size) demux.push(input.subarray(at, at + size));
    expect(Buffer.concat(got.stdout).equals(out)).toBe(true);
    expect(Buffer.concat(got.stderr).toString()).toBe('warning\n');
    expect(copies).toBe(0);
  }
  // A stream that is not multiplexed (a TTY) comes through whole as stdout.
  const raw: Buffer[] = [];
  const tty = new ExecDemuxer((_, piece) => raw.push(piece));
  tty.push(Buffer.from('plain tty output\n'));
  expect(Buffer.concat(raw).toString()).toBe('plain tty output\n');
});
