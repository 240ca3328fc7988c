// What a commit-then-stall run did, per activity type: how many calls were stalled after their commit, and what
// each retry answered compared with the attempt whose answer was lost.
import type { StallRecord } from '../../workers/stall';

export interface StallSummary {
  type: string;
  stalled: number;
  /** Retries that answered what the stalled attempt had (canonical JSON: key order does not count). */
  same: number;
  /** Retries that answered something else: `workflow/activity: stalled → retried`. */
  others: string[];
  /** Retries that failed although the stalled attempt had succeeded: `workflow/activity: error`. */
  failed: string[];
  /** Stalls with no retry recorded (the run ended meanwhile, or its worker was killed). */
  unseen: number;
  /** The stalled calls without a recorded retry, `workflow/activity`. */
  unseenCalls: string[];
}

/** One row per stalled type, sorted by type; a call's last retry is what its caller got. */
export function stallSummary(records: StallRecord[]): StallSummary[] {
  const key = (r: StallRecord) => `${r.workflowId}/${r.runId}/${r.activityId}`;
  const retries = new Map<string, StallRecord>();
  for (const r of records) if (r.event === 'retried') retries.set(key(r), r);
  const byType = new Map<string, StallSummary>();
  for (const s of records.filter((r) => r.event === 'stalled')) {
    const t = byType.get(s.type) ?? { type: s.type, stalled: 0, same: 0, others: [], failed: [], unseen: 0, unseenCalls: [] };
    byType.set(s.type, t);
    t.stalled++;
    const call = `${s.workflowId}/${s.activityId}`;
    const retry = retries.get(key(s));
    if (!retry) {
      t.unseen++;
      t.unseenCalls.push(call);
    } else if (retry.error) t.failed.push(`${call}: ${retry.error}`);
    else if ((retry.digest ?? retry.result) === (s.digest ?? s.result)) t.same++;
    else t.others.push(`${call}: ${s.result} → ${retry.result}`);
  }
  return [...byType.values()].sort((a, b) => (a.type < b.type ? -1 : 1));
}
