// A running job's output as it streams: the exec activity heartbeats the tail of each stream with the number of
// characters written so far, and a client turns successive heartbeats into the chunks it has not seen yet.
// Pure: no Node builtins (the activity decodes bytes before it gets here).

export type OutputStream = 'stdout' | 'stderr';

export interface OutputChunk {
  stream: OutputStream;
  /** Bytes exactly as the job wrote them when read from its log; text when rebuilt from heartbeats or a result. */
  data: string | Uint8Array;
}

/** What the exec activity heartbeats while a job runs. */
export interface JobOutputProgress {
  step: string;
  stdout: { total: number; tail: string };
  stderr: { total: number; tail: string };
}

/** Characters of each stream kept in a heartbeat: a caller that polls late skips the middle, never the end. */
export const OUTPUT_TAIL_CHARS = 16 * 1024;

/** Keeps a stream's total length and its last OUTPUT_TAIL_CHARS characters. */
export class OutputTail {
  total = 0;
  tail = '';

  push(text: string): void {
    this.total += text.length;
    this.tail = (this.tail + text).slice(-OUTPUT_TAIL_CHARS);
  }

  snapshot(): { total: number; tail: string } {
    return { total: this.total, tail: this.tail };
  }
}

/** Remembers what a caller has seen of each stream and hands out only the rest. */
export class OutputReader {
  private readonly seen: Record<OutputStream, number> = { stdout: 0, stderr: 0 };

  /** New characters in a heartbeat; a gap longer than the tail is marked, not invented. */
  fromProgress(progress: JobOutputProgress): OutputChunk[] {
    return (['stdout', 'stderr'] as const).flatMap((stream) => {
      const { total, tail } = progress[stream] ?? { total: 0, tail: '' };
      const fresh = total - this.seen[stream];
      if (fresh <= 0) return [];
      this.seen[stream] = total;
      const data = fresh <= tail.length ? tail.slice(tail.length - fresh) : `…[${fresh - tail.length} characters skipped]\n${tail}`;
      return [{ stream, data }];
    });
  }

  /** What the final result holds beyond what was streamed (the result keeps the head of a long output). */
  fromResult(result: Record<OutputStream, string>): OutputChunk[] {
    return (['stdout', 'stderr'] as const).flatMap((stream) => {
      const rest = result[stream].slice(this.seen[stream]);
      this.seen[stream] += rest.length;
      return rest ? [{ stream, data: rest }] : [];
    });
  }
}
