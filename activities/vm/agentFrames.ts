// The guest agent's binary output frames (guest/agent/frames.go), mixed on one connection with its JSON lines.
// A frame is a 12-byte header, the job's id and the connection's key, then the output bytes:
//
//   0..3 magic F5 53 46 42 ("\xF5SFB") · 4 type (1 output) · 5 stream (1 stdout, 2 stderr) · 6 id length ·
//   7 key length · 8..11 data length (big-endian) · then the id, the key and the data
//
// 0xF5 never occurs in UTF-8, so never inside a JSON line: wherever it appears a frame may start. The guest is hostile:
// a frame's data is bounded by the frame limit (more fails the connection `VM_AGENT_PROTOCOL`), the whole header is
// checked (its key included) before any of its data is believed, and the data is handed on in the pieces it arrived
// in, never gathered.
import { timingSafeEqual } from 'node:crypto';
import { SnapflowError } from '../../lib/errors';

export const FRAME_MAGIC = Buffer.from([0xf5, 0x53, 0x46, 0x42]);
export const FRAME_OUTPUT = 1;
export const FRAME_FIXED_BYTES = 12;
/** Longest id or key a frame may carry (the host's are 26 and 24 bytes). */
export const MAX_FRAME_TAG = 64;
/** What an exec request sends as `frames` to ask for binary output frames; an agent that predates them ignores it. */
export const FRAMES_BINARY = 1;

const NEWLINE = 0x0a;
const STREAMS = { 1: 'stdout', 2: 'stderr' } as const;

export interface OutputFrame {
  stream: 'stdout' | 'stderr';
  id: string;
  /** Data bytes that follow the header. */
  bytes: number;
}

/**
 * Called with each output frame's header (its key already checked), before its data: answers where the data goes (in
 * the pieces it arrives in, each a view of the socket's own buffer), or undefined to skip it.
 */
export type OnOutputFrame = (frame: OutputFrame) => ((piece: Buffer) => void) | undefined;

/** The header of an output frame (the agent's side, for tests and tools that speak the protocol). */
export function outputFrameHeader(stream: 'stdout' | 'stderr', id: string, key: string, bytes: number): Buffer {
  const idBytes = Buffer.from(id);
  const keyBytes = Buffer.from(key);
  const fixed = Buffer.alloc(FRAME_FIXED_BYTES);
  FRAME_MAGIC.copy(fixed);
  fixed[4] = FRAME_OUTPUT;
  fixed[5] = stream === 'stdout' ? 1 : 2;
  fixed[6] = idBytes.length;
  fixed[7] = keyBytes.length;
  fixed.writeUInt32BE(bytes, 8);
  return Buffer.concat([fixed, idBytes, keyBytes]);
}

/**
 * Splits the agent's byte stream into JSON lines (at most `maxFrameBytes`, the newline not counted) and binary output
 * frames (data of at most `maxFrameBytes`). Linear in the input, however it is chunked; holds at most one unfinished
 * line and one header. A 0xF5 that does not begin a well-formed header carrying this connection's key is a stray byte,
 * and what follows it is read again as ordinary bytes: a connection that starts in the middle of an earlier one's
 * frame, or meets that connection's frames (another key), skips them without losing one of its own, and no bytes a
 * job wrote can pass for a header. A header with the key and a length over the limit is refused.
 */
export class ChannelReader {
  private parts: Buffer[] = [];
  private pending = 0;
  private state: 'line' | 'header' | 'data' = 'line';
  private readonly head = Buffer.alloc(FRAME_FIXED_BYTES + 2 * MAX_FRAME_TAG);
  private have = 0;
  private need = FRAME_FIXED_BYTES;
  /** Where the header being read began in the current chunk, or -1 when it began in an earlier one. */
  private headAt = -1;
  private remaining = 0;
  private sink: ((piece: Buffer) => void) | undefined;

  constructor(
    private readonly maxFrameBytes: number,
    /** Names the peer in the error: "guest agent". */
    private readonly peer: string,
    /** This connection's key: a frame carries it, or is none. */
    private readonly key: Buffer,
    private readonly onFrame: OnOutputFrame,
  ) {}

  /** Calls `onLine` for every line `chunk` completes and `onFrame`'s sink for every frame's data. */
  push(chunk: Buffer, onLine: (line: Buffer) => void): void {
    // The next newline and the next magic byte at or after the scan position: each searched for again only once the
    // scan has passed it, so every byte is looked at once per kind, however frames and lines alternate.
    let newline = -2;
    let magic = -2;
    let at = 0;
    this.headAt = -1;
    while (at < chunk.length) {
      if (this.state === 'data') {
        const n = Math.min(this.remaining, chunk.length - at);
        this.sink?.(chunk.subarray(at, at + n));
        this.remaining -= n;
        at += n;
        if (this.remaining === 0) this.endFrame();
        continue;
      }
      if (this.state === 'header') {
        at = this.readHeader(chunk, at, onLine);
        continue;
      }
      if (newline !== -1 && newline < at) newline = chunk.indexOf(NEWLINE, at);
      if (magic !== -1 && magic < at) magic = chunk.indexOf(FRAME_MAGIC[0]!, at);
      const end = Math.min(newline < 0 ? chunk.length : newline, magic < 0 ? chunk.length : magic);
      if (this.pending + end - at > this.maxFrameBytes) throw this.tooLong('line');
      if (end === magic) {
        // A frame begins: whatever line came before it never ended, so it is not a message.
        this.parts = [];
        this.pending = 0;
        this.state = 'header';
        this.have = 0;
        this.need = FRAME_FIXED_BYTES;
        this.headAt = magic;
        at = magic;
      } else if (end === newline) {
        const line = this.parts.length ? Buffer.concat([...this.parts, chunk.subarray(at, newline)]) : chunk.subarray(at, newline);
        this.parts = [];
        this.pending = 0;
        at = newline + 1;
        onLine(line);
      } else {
        this.parts.push(chunk.subarray(at));
        this.pending += chunk.length - at;
        return;
      }
    }
  }

  /** Takes header bytes from `chunk` at `at`; returns where the scan goes on. */
  private readHeader(chunk: Buffer, at: number, onLine: (line: Buffer) => void): number {
    const h = this.head;
    const n = Math.min(this.need - this.have, chunk.length - at);
    chunk.copy(h, this.have, at, at + n);
    const from = this.have;
    this.have += n;
    at += n;
    if (from < FRAME_FIXED_BYTES) {
      // Checked as the bytes come: a stray 0xF5 is given up on at the first byte that does not fit.
      for (let i = Math.max(from, 1); i < this.have; i++) if (!fits(h, i)) return this.notAFrame(at, i + 1, onLine);
      if (this.have < FRAME_FIXED_BYTES) return at;
      this.need = FRAME_FIXED_BYTES + h[6]! + h[7]!;
      if (this.have < this.need) return this.readHeader(chunk, at, onLine);
    } else if (this.have < this.need) {
      return at;
    }
    const idEnd = FRAME_FIXED_BYTES + h[6]!;
    const key = h.subarray(idEnd, this.need);
    if (key.length !== this.key.length || !timingSafeEqual(key, this.key)) return this.notAFrame(at, this.need, onLine);
    this.remaining = h.readUInt32BE(8);
    if (this.remaining > this.maxFrameBytes) throw this.tooLong('frame');
    this.sink = this.onFrame({ stream: STREAMS[h[5] as 1 | 2], id: h.toString('latin1', FRAME_FIXED_BYTES, idEnd), bytes: this.remaining });
    this.state = 'data';
    if (this.remaining === 0) this.endFrame();
    return at;
  }

  /**
   * The header's first `upTo` bytes are no frame: its 0xF5 was a stray byte, and what followed it is read again as
   * ordinary bytes (in place when the header began in this chunk, else from the copy the header kept).
   */
  private notAFrame(at: number, upTo: number, onLine: (line: Buffer) => void): number {
    this.state = 'line';
    if (this.headAt >= 0) return this.headAt + 1;
    const rest = Buffer.from(this.head.subarray(1, upTo));
    this.push(rest, onLine);
    this.headAt = -1; // a header the copy began is not in this chunk
    return at - (this.have - upTo);
  }

  private endFrame(): void {
    this.state = 'line';
    this.sink = undefined;
  }

  private tooLong(what: 'line' | 'frame'): SnapflowError {
    return new SnapflowError({
      code: 'VM_AGENT_PROTOCOL',
      message: `${this.peer} sent a ${what} longer than ${this.maxFrameBytes} bytes (the frame limit); the connection was dropped`,
    });
  }
}

/** Whether byte `i` of a fixed header can be what it is: the magic, an output frame, a stream, tag lengths. */
function fits(h: Buffer, i: number): boolean {
  const b = h[i]!;
  if (i < 4) return b === FRAME_MAGIC[i];
  if (i === 4) return b === FRAME_OUTPUT;
  if (i === 5) return b === 1 || b === 2;
  if (i === 6 || i === 7) return b >= 1 && b <= MAX_FRAME_TAG;
  return true;
}
