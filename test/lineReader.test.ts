// The frame reader every guest channel goes through: lines come out whole however the bytes are chunked, a line
// past the limit is refused typed, and the cost is linear in the input (a reader that rescans its buffer on every
// chunk takes over 20 s of CPU for one 64 MiB line).
import { LineReader } from '../activities/vm/lineSocket';

const MiB = 1024 * 1024;

function feed(reader: LineReader, input: Buffer, chunkBytes: number): string[] {
  const lines: string[] = [];
  for (let at = 0; at < input.length; at += chunkBytes) reader.push(input.subarray(at, at + chunkBytes), (l) => lines.push(l.toString()));
  return lines;
}

test('lines split anywhere come out whole and in order', () => {
  const input = Buffer.from('{"a":1}\n\n{"b":"two"}\npartial');
  for (const size of [1, 2, 3, 7, input.length]) {
    expect(feed(new LineReader(64, 'test'), input, size)).toEqual(['{"a":1}', '', '{"b":"two"}']);
  }
});

test('a line of exactly the limit passes; one byte more is refused typed, before its newline arrives', () => {
  expect(feed(new LineReader(8, 'guest agent'), Buffer.from('12345678\n'), 3)).toEqual(['12345678']);
  const reader = new LineReader(8, 'guest agent');
  expect(() => feed(reader, Buffer.from('123456789'), 4)).toThrow(
    expect.objectContaining({ code: 'VM_AGENT_PROTOCOL', message: expect.stringContaining('longer than 8 bytes') }),
  );
});

test('64 MiB in 4 KiB chunks costs time linear in the size, with or without newlines', () => {
  const chunk = Buffer.alloc(4096, 'a');
  const withNewlines = Buffer.from(chunk);
  withNewlines[4095] = 0x0a;
  const time = (bytes: number, piece: Buffer, limit: number): number => {
    const reader = new LineReader(limit, 'test');
    const started = process.hrtime.bigint();
    let lines = 0;
    for (let at = 0; at < bytes; at += piece.length) reader.push(piece, () => lines++);
    expect(lines).toBe(piece === withNewlines ? bytes / piece.length : 0);
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  // One line of 64 MiB that never ends (the limit set above it, so all of it is buffered and none rescanned).
  const long = time(64 * MiB, chunk, 128 * MiB);
  const short = time(64 * MiB, withNewlines, MiB);
  // Generous for a loaded machine; the rescanning reader took 21.6 s for the first case.
  expect(long).toBeLessThan(5_000);
  expect(short).toBeLessThan(5_000);
  // Linear: four times the input costs about four times as much, not sixteen.
  const quarter = Math.max(1, time(16 * MiB, chunk, 128 * MiB));
  expect(time(64 * MiB, chunk, 128 * MiB) / quarter).toBeLessThan(10);
});
