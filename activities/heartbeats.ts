// Heartbeats of long host work: a steady beat while a long call runs, and a running job's output as it comes
// (its callers read that output from the heartbeat details, lib/jobOutput.ts).
import { Context } from '@temporalio/activity';
import { OutputTail, type JobOutputProgress, type OutputStream } from '../lib/jobOutput';

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

/**
 * A running job's output, heartbeated as it comes (the tail of each stream, at most every OUTPUT_HEARTBEAT_MS) and at
 * least every 5 s while it is quiet. `stop()` sends the last of it.
 */
export function outputHeartbeats(step: string): { push: (stream: OutputStream, text: string) => void; stop: () => void } {
  const ctx = Context.current();
  const tails = { stdout: new OutputTail(), stderr: new OutputTail() };
  let changed = true;
  let lastBeat = 0;
  const beat = (force = false) => {
    if (!changed && !force) return;
    changed = false;
    lastBeat = Date.now();
    ctx.heartbeat({ step, stdout: tails.stdout.snapshot(), stderr: tails.stderr.snapshot() } satisfies JobOutputProgress);
  };
  beat(true);
  // At least a beat a second while quiet: a cancel reaches an activity only in a heartbeat's answer.
  const timer = setInterval(() => beat(Date.now() - lastBeat > 1_000), OUTPUT_HEARTBEAT_MS);
  return {
    push: (stream, text) => {
      tails[stream].push(text);
      changed = true;
    },
    stop: () => {
      clearInterval(timer);
      beat();
    },
  };
}
