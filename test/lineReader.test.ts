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

test('64 MiB in 4 KiB chunks is scanned once, byte for byte, with or without newlines (no rescanning)', () => {
  const chunk = Buffer.alloc(4096, 'a');
  const withNewlines = Buffer.from(chunk);
  withNewlines[4095] = 0x0a;
  // Counts the bytes every newline search looks at: a reader that rescans its buffer looks at each byte many times.
  const indexOf = Buffer.prototype.indexOf;
  let scanned = 0;
  const spy = jest.spyOn(Buffer.prototype, 'indexOf').mockImplementation(function (this: Buffer, ...args: unknown[]) {
    const from = typeof args[1] === 'number' ? args[1] : 0;
    const found = indexOf.apply(this, args as Parameters<Buffer['indexOf']>);
    scanned += (found < 0 ? this.length : found + 1) - from;
    return found;
  });
  const scan = (bytes: number, piece: Buffer, limit: number): number => {
    const reader = new LineReader(limit, 'test');
    let lines = 0;
    scanned = 0;
    for (let at = 0; at < bytes; at += piece.length) reader.push(piece, () => lines++);
    expect(lines).toBe(piece === withNewlines ? bytes / piece.length : 0);
    return scanned;
  };
  try {
    // One line of 64 MiB that never ends (the limit set above it, so all of it is buffered), and 16,384 short lines.
    expect(scan(64 * MiB, chunk, 128 * MiB)).toBe(64 * MiB);
    expect(scan(64 * MiB, withNewlines, MiB)).toBe(64 * MiB);
  } finally {
    spy.mockRestore();
  }
});
