// Docker's multiplexed exec stream (attach without a TTY): each frame is an 8-byte header — stream (1 stdout,
// 2 stderr; 0 stdin is never sent back), three zero bytes, the payload length big-endian — then the payload.
// Demultiplexed here as the bytes arrive: a payload is handed on in the pieces it came in, as views of the socket's
// own buffers, so 30 MB of output is never gathered or copied on the way (docker-modem's demuxStream concatenates
// its whole buffer on every chunk, then pushes each frame through a PassThrough).
import type { OutputStream } from '../lib/jobOutput';

const HEADER_BYTES = 8;
const STREAMS: Record<number, OutputStream | 'stdin'> = { 0: 'stdin', 1: 'stdout', 2: 'stderr' };

export class ExecDemuxer {
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private have = 0;
  private remaining = 0;
  private stream: OutputStream | 'stdin' = 'stdout';
  /** A header naming no stream: the exec has a TTY after all; everything from there on is stdout, as it comes. */
  private raw = false;

  constructor(private readonly onData: (stream: OutputStream, piece: Buffer) => void) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.raw) return this.onData('stdout', at ? chunk.subarray(at) : chunk);
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - at);
        if (this.stream !== 'stdin') this.onData(this.stream, chunk.subarray(at, at + n));
        this.remaining -= n;
        at += n;
        continue;
      }
      const n = Math.min(HEADER_BYTES - this.have, chunk.length - at);
      chunk.copy(this.header, this.have, at, at + n);
      this.have += n;
      at += n;
      if (this.have < HEADER_BYTES) return;
      this.have = 0;
      const stream = STREAMS[this.header[0]!];
      if (!stream) {
        this.raw = true;
        this.onData('stdout', Buffer.from(this.header));
        continue;
      }
      this.stream = stream;
      this.remaining = this.header.readUInt32BE(4);
    }
  }
}
