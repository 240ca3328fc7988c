// The one way a host streams output into the log store: a job's (container or vm), a snapshot build's, a golden
// build's. Bytes, never strings: what a job wrote is kept as written. Chunks go out in order (a chunk per 256 KiB or
// per 50 ms of output), each under its own sequence number, so a retried append is a no-op in the store. One append
// is in flight at a time and takes every chunk that queued up behind it (up to BATCH_BYTES): a fast producer costs a
// few big INSERTs, not one per chunk, and a slow one still sees each chunk written within ~50 ms.
import type { LogChunk, LogClose, LogRef, LogSink, LogStream } from '../catalog/logs';

/** Default per-log cap (SNAPFLOW_LOG_CAP_BYTES): past it a job runs on, and only the last TAIL_BYTES are kept. */
export const DEFAULT_LOG_CAP_BYTES = 1024 * 1024 * 1024;
/** What is always kept of the end of a log, and of each stream in a job's result. */
export const TAIL_BYTES = 64 * 1024;
const CHUNK_BYTES = 256 * 1024;
/** At most this much goes in one append: a handful of chunks, one statement, one round trip. */
const BATCH_BYTES = 8 * CHUNK_BYTES;
const FLUSH_MS = 50;
const APPEND_ATTEMPTS = 4;

export interface LogOptions {
  capBytes?: number;
  /** Called after every append reached the store (the activity heartbeats then: the log is the progress). */
  onFlushed?: (bytes: number) => void;
}

/** What a job's result says of its log. */
export interface LogResult {
  id: string;
  bytes: number;
  dropped: number;
  cutAt?: number;
  /** The store refused appends past retries; the log holds less than the job wrote. */
  incomplete?: true;
}

interface Pending {
  stream: LogStream;
  at: Date;
  parts: Buffer[];
  bytes: number;
}

type Numbered = Omit<LogChunk, 'at'> & { at: Date };

/** The last `limit` bytes pushed, as the segments they came in (with their stream): views, never copies. */
class ByteTail {
  private segments: Array<{ stream: LogStream; at: Date; data: Buffer }> = [];
  bytes = 0;
  constructor(private readonly limit: number) {}

  push(stream: LogStream, data: Buffer): void {
    if (data.length >= this.limit) {
      this.segments = [{ stream, at: new Date(), data: data.subarray(data.length - this.limit) }];
      this.bytes = this.limit;
      return;
    }
    this.segments.push({ stream, at: new Date(), data });
    this.bytes += data.length;
    while (this.bytes - this.segments[0]!.data.length >= this.limit) this.bytes -= this.segments.shift()!.data.length;
    const over = this.bytes - this.limit;
    if (over > 0) {
      const first = this.segments[0]!;
      this.segments[0] = { ...first, data: first.data.subarray(over) };
      this.bytes = this.limit;
    }
  }

  take(): Array<{ stream: LogStream; at: Date; data: Buffer }> {
    return this.segments;
  }

  text(stream: LogStream): string {
    return Buffer.concat(this.segments.filter((s) => s.stream === stream).map((s) => s.data)).toString('utf8');
  }
}

export class JobLog {
  private seq = 0;
  private total = 0;
  private kept = 0;
  private cutAt: number | undefined;
  private pending: Pending | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void>;
  private incomplete = false;
  /** The cut's note and end are written once. */
  private ended = false;
  /** Bytes handed to the store and not yet written. */
  private queued = 0;
  /** Numbered chunks waiting for the next append, and whether an append loop is on the chain to take them. */
  private queue: Numbered[] = [];
  private appending = false;
  /** The end of the whole log past a cut: what the log keeps after its cut note. */
  private readonly end = new ByteTail(TAIL_BYTES);
  /** Each stream's own end: what the job result carries. */
  private readonly tails = { stdout: new ByteTail(TAIL_BYTES), stderr: new ByteTail(TAIL_BYTES) };
  private readonly cap: number;

  constructor(
    private readonly sink: LogSink | undefined,
    private readonly ref: LogRef | undefined,
    private readonly opts: LogOptions = {},
  ) {
    this.cap = opts.capBytes ?? DEFAULT_LOG_CAP_BYTES;
    this.seq = ref?.seqBase ?? 0;
    this.chain = this.write(() => sink!.open(ref!));
  }

  get id(): string | undefined {
    return this.ref?.id;
  }

  /**
   * The bytes a stream wrote, as they come. Kept by reference until they are written: the caller hands over a
   * buffer it does not write to again (every source here does: socket reads, demuxed frames, fresh `Buffer.from`s).
   */
  push(stream: 'stdout' | 'stderr', data: Buffer): void {
    if (!data.length) return;
    this.tails[stream].push(stream, data);
    const room = this.cap - this.kept;
    this.total += data.length;
    if (room >= data.length) return this.keep(stream, data);
    if (room > 0) this.keep(stream, data.subarray(0, room));
    this.cutAt ??= this.cap;
    this.end.push(stream, room > 0 ? data.subarray(room) : data);
  }

  /** A line of the log's own (a build step's name, a cut note): stream `note`, outside the cap. */
  note(text: string): void {
    this.flushPending();
    this.enqueue([{ stream: 'note', at: new Date(), data: Buffer.from(text) }]);
  }

  /** Each stream's last TAIL_BYTES, decoded. */
  tail(stream: 'stdout' | 'stderr'): string {
    return this.tails[stream].text(stream);
  }

  /** Writes what was handed over, leaving the log open for the next writer (a build's next step). */
  async flush(): Promise<void> {
    this.flushPending();
    await this.chain;
  }

  /** Writes what is left (past a cut: the exact note, then the true end), closes the log, says where it is. */
  async finish(close: Omit<LogClose, 'bytes' | 'dropped' | 'cutAt'>): Promise<LogResult | undefined> {
    const figures = this.writeEnd();
    this.chain = this.chain.then(() => this.write(() => this.sink!.close(this.ref!.id, { ...close, ...figures })));
    await this.chain;
    if (!this.ref || !this.sink) return undefined;
    return { id: this.ref.id, ...figures, ...(this.incomplete ? { incomplete: true as const } : {}) };
  }

  /**
   * Writes what is left past a cut (the exact note, then the true end) and leaves the log open for the next writer:
   * a build step's output under its own cap.
   */
  async endSegment(): Promise<void> {
    this.writeEnd();
    await this.chain;
  }

  private writeEnd(): { bytes: number; dropped: number; cutAt?: number } {
    this.flushPending();
    const dropped = this.cutAt !== undefined ? this.total - this.kept - this.end.bytes : 0;
    if (this.cutAt !== undefined && !this.ended) {
      const end = this.end.take();
      this.enqueue([
        {
          stream: 'note',
          at: new Date(),
          data: Buffer.from(
            `\n…[log cut at byte ${this.cutAt} of ${this.total}: ${dropped} bytes dropped; the last ${this.end.bytes} bytes follow]\n`,
          ),
        },
        ...end,
      ]);
    }
    this.ended = true;
    return { bytes: this.total, dropped, ...(this.cutAt !== undefined ? { cutAt: this.cutAt } : {}) };
  }

  private keep(stream: LogStream, data: Buffer): void {
    this.kept += data.length;
    if (!this.sink) return;
    if (this.pending && this.pending.stream !== stream) this.flushPending();
    this.pending ??= { stream, at: new Date(), parts: [], bytes: 0 };
    this.pending.parts.push(data);
    this.pending.bytes += data.length;
    if (this.pending.bytes >= CHUNK_BYTES) this.flushPending();
    else this.timer ??= setTimeout(() => this.flushPending(), FLUSH_MS);
  }

  private flushPending(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.pending;
    this.pending = undefined;
    // The one copy of the bytes on the host: the pieces become one chunk (a lone piece is kept as it is).
    if (p) this.enqueue([{ stream: p.stream, at: p.at, data: p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts, p.bytes) }]);
  }

  private enqueue(chunks: Array<{ stream: LogStream; at: Date; data: Buffer }>): void {
    if (!this.sink || !this.ref || !chunks.length) return;
    for (const c of chunks) {
      this.queue.push({ ...c, seq: this.seq++ });
      this.queued += c.data.length;
    }
    if (this.appending) return; // the loop on the chain takes these too
    this.appending = true;
    this.chain = this.chain.then(() => this.appendQueued());
  }

  /** Appends what is queued, a batch at a time, until nothing is left (chunks queued meanwhile included). */
  private async appendQueued(): Promise<void> {
    const logId = this.ref!.id;
    while (this.queue.length) {
      let bytes = 0;
      let count = 0;
      while (count < this.queue.length && (count === 0 || bytes + this.queue[count]!.data.length <= BATCH_BYTES)) {
        bytes += this.queue[count]!.data.length;
        count++;
      }
      const batch = this.queue.splice(0, count);
      await this.write(() => this.sink!.append(logId, batch));
      this.queued -= bytes;
      this.opts.onFlushed?.(bytes);
    }
    this.appending = false;
  }

  /** True while more than `limit` bytes wait for the store: a producer that can pause should, until `drained()`. */
  behind(limit = 16 * CHUNK_BYTES): boolean {
    return this.queued > limit;
  }

  /** Resolves once everything handed over so far is written. */
  async drained(): Promise<void> {
    await this.chain;
  }

  /** A store that stays down past a few tries costs the log its completeness, never the job. */
  private async write(step: () => Promise<void>): Promise<void> {
    if (!this.sink || !this.ref || this.incomplete) return;
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch {
        if (attempt >= APPEND_ATTEMPTS) {
          this.incomplete = true;
          return;
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }
}
