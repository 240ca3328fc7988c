// A unix socket that speaks one JSON object per line: what QMP and the guest agent both use (the agent also sends
// binary output frames, agentFrames.ts). The other end is a guest (or QEMU serving one): every line and frame is
// bounded, and each byte is scanned once, however it is chunked.
import { connect, type Socket } from 'node:net';
import { SnapflowError } from '../../lib/errors';
import { ChannelReader, type OnOutputFrame } from './agentFrames';

/**
 * Far above any real frame: the agent sends ≤ 256 KiB of output per binary frame (an agent that predates them,
 * ≤ 64 KiB per JSON line, ~87 KiB as base64).
 */
export const MAX_FRAME_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Splits a byte stream into lines of at most `maxLineBytes` (the newline not counted). Keeps the unfinished line as
 * the chunks it came in and only looks at bytes it has not seen: linear in the input, bounded in memory.
 */
export class LineReader {
  private parts: Buffer[] = [];
  private pending = 0;

  constructor(
    private readonly maxLineBytes: number,
    /** Names the peer in the error: "guest agent", "QMP". */
    private readonly peer: string,
  ) {}

  /** Calls `onLine` for every line `chunk` completes; throws VM_AGENT_PROTOCOL once a line passes the limit. */
  push(chunk: Buffer, onLine: (line: Buffer) => void): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline < 0 ? chunk.length : newline;
      if (this.pending + end - start > this.maxLineBytes) throw this.tooLong();
      if (newline < 0) {
        this.parts.push(chunk.subarray(start));
        this.pending += chunk.length - start;
        return;
      }
      const line = this.parts.length ? Buffer.concat([...this.parts, chunk.subarray(start, newline)]) : chunk.subarray(start, newline);
      this.parts = [];
      this.pending = 0;
      start = newline + 1;
      onLine(line);
    }
  }

  private tooLong(): SnapflowError {
    return new SnapflowError({
      code: 'VM_AGENT_PROTOCOL',
      message: `${this.peer} sent a frame longer than ${this.maxLineBytes} bytes (the frame limit); the connection was dropped`,
    });
  }
}

export class LineSocket {
  private closed = false;
  private paused = false;
  private readonly closeListeners: Array<(err: Error) => void> = [];

  private constructor(
    private readonly socket: Socket,
    onMessage: (message: Record<string, unknown>) => void,
    reader: LineReader | ChannelReader,
  ) {
    const end = (err?: Error): void => {
      if (this.closed) return;
      this.closed = true;
      for (const listener of this.closeListeners) listener(err ?? new Error('connection closed'));
    };
    socket.on('data', (data: Buffer) => {
      if (this.closed) return;
      try {
        reader.push(data, (line) => {
          const message = parseObject(line);
          if (message && !this.closed) onMessage(message);
        });
      } catch (err) {
        end(err as Error); // listeners hear the protocol failure first, then the socket goes
        socket.destroy();
      }
    });
    socket.on('error', end);
    socket.on('close', () => end());
  }

  /** Connects, failing after `timeoutMs` (a socket file without a listener refuses at once). */
  static open(
    path: string,
    onMessage: (message: Record<string, unknown>) => void,
    opts: {
      timeoutMs?: number;
      peer: string;
      maxFrameBytes?: number;
      /** Binary output frames between the lines (the guest agent's), with the connection's key: where their data goes. */
      frames?: { key: Buffer; onOutputFrame: OnOutputFrame };
    },
  ): Promise<LineSocket> {
    const timeoutMs = opts.timeoutMs ?? 5_000;
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const timer = setTimeout(() => (socket.destroy(), reject(new Error(`connect ${path}: timed out`))), timeoutMs);
      socket.once('error', (err) => (clearTimeout(timer), reject(err)));
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        const max = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
        const { frames } = opts;
        const reader = frames ? new ChannelReader(max, opts.peer, frames.key, frames.onOutputFrame) : new LineReader(max, opts.peer);
        resolve(new LineSocket(socket, onMessage, reader));
      });
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Reads nothing more until `done` settles (the peer's writes wait meanwhile); one pause at a time. */
  pauseUntil(done: Promise<unknown>): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.socket.pause();
    void done
      .catch(() => undefined)
      .then(() => {
        this.paused = false;
        this.socket.resume();
      });
  }

  onClose(listener: (err: Error) => void): void {
    this.closeListeners.push(listener);
  }

  send(message: object): void {
    if (this.closed) throw new Error('connection closed');
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Anything else on the line (half a line from before a reconnect) is not a message. */
function parseObject(line: Buffer): Record<string, unknown> | undefined {
  let start = 0;
  while (start < line.length && (line[start] === 0x20 || line[start] === 0x0d || line[start] === 0x09)) start++;
  if (line[start] !== 0x7b /* { */) return undefined;
  try {
    const value: unknown = JSON.parse(line.toString('utf8', start));
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
