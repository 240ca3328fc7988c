// Heartbeats of long host work: a steady beat while a long call runs, and a running job's output as it comes
// (its callers read that output from the heartbeat details, lib/jobOutput.ts).
import { isAscii, isUtf8 } from 'node:buffer';
import { Context } from '@temporalio/activity';
import { OUTPUT_TAIL_CHARS, OutputTail, type JobOutputProgress, type OutputStream } from '../lib/jobOutput';

/** How often a running job's output is heartbeated (the host worker's heartbeat throttle matches it). */
export const OUTPUT_HEARTBEAT_MS = 250;

/** Keeps an activity's heartbeat going while a long call runs. */
export async function withHeartbeat<T>(step: string, work: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat({ step });
  const timer = setInterval(() => ctx.heartbeat({ step }), 5_000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** Bytes kept of a stream for its heartbeat tail: enough for OUTPUT_TAIL_CHARS characters of any width. */
const TAIL_WINDOW_BYTES = 4 * OUTPUT_TAIL_CHARS;

/**
 * A stream's tail fed with bytes: the last TAIL_WINDOW_BYTES are kept (as views) and decoded only when a heartbeat
 * asks, at most every OUTPUT_HEARTBEAT_MS. Decoding everything as it came cost more host CPU than moving it (random
 * bytes decode at ~40 MB/s). `total` counts characters of text (ASCII or UTF-8 pieces, checked natively) and bytes of
 * whatever is not text: the heartbeat's tail is for people watching a run; the bytes themselves are in the log.
 */
class ByteFedTail {
  total = 0;
  private window: Buffer[] = [];
  private bytes = 0;

  push(data: Buffer): void {
    this.total += isAscii(data) || !isUtf8(data) ? data.length : data.toString('utf8').length;
    this.window.push(data);
    this.bytes += data.length;
    while (this.bytes - this.window[0]!.length >= TAIL_WINDOW_BYTES) this.bytes -= this.window.shift()!.length;
  }

  snapshot(): { total: number; tail: string } {
    const text = Buffer.concat(this.window, this.bytes).subarray(-TAIL_WINDOW_BYTES).toString('utf8');
    return { total: this.total, tail: text.slice(-OUTPUT_TAIL_CHARS) };
  }
}

/**
 * A running job's output, heartbeated as it comes (the tail of each stream, at most every OUTPUT_HEARTBEAT_MS) and at
 * least every 5 s while it is quiet. `stop()` sends the last of it. Fed text (`push`) or bytes (`pushBytes`), one
 * kind per call site.
 */
export function outputHeartbeats(step: string): {
  push: (stream: OutputStream, text: string) => void;
  pushBytes: (stream: OutputStream, data: Buffer) => void;
  stop: () => void;
} {
  const ctx = Context.current();
  const tails = { stdout: new OutputTail(), stderr: new OutputTail() };
  const byteTails = { stdout: new ByteFedTail(), stderr: new ByteFedTail() };
  let fedBytes = false;
  let changed = true;
  let lastBeat = 0;
  const beat = (force = false) => {
    if (!changed && !force) return;
    changed = false;
    lastBeat = Date.now();
    const from = fedBytes ? byteTails : tails;
    ctx.heartbeat({ step, stdout: from.stdout.snapshot(), stderr: from.stderr.snapshot() } satisfies JobOutputProgress);
  };
  beat(true);
  // At least a beat a second while quiet: a cancel reaches an activity only in a heartbeat's answer.
  const timer = setInterval(() => beat(Date.now() - lastBeat > 1_000), OUTPUT_HEARTBEAT_MS);
  return {
    push: (stream, text) => {
      tails[stream].push(text);
      changed = true;
    },
    pushBytes: (stream, data) => {
      fedBytes = true;
      byteTails[stream].push(data);
      changed = true;
    },
    stop: () => {
      clearInterval(timer);
      beat();
    },
  };
}
