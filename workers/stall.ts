// Chaos only: "commit, then stall". With SNAPFLOW_CHAOS_STALL set, the first attempt of a chosen activity does its
// work (its effect commits) and then sleeps past its own deadline before it reports, so Temporal times it out and
// runs it again: the retry path after a committed attempt is exercised on purpose, not by luck. Never on otherwise.
//   SNAPFLOW_CHAOS_STALL=*                       the first call of every activity type
//   SNAPFLOW_CHAOS_STALL=writes                  the first call of every type that changes something (activities/writers.ts)
//   SNAPFLOW_CHAOS_STALL=setDefault,vmBoot         every first attempt of these types
//   SNAPFLOW_CHAOS_STALL_LOG=/path/stalls.jsonl   one line per stall and per retry that followed one
// Local activities are stalled too: their worker, not the server, times them out and retries them in-process.
// The log is also the memory: a worker started again (after a crash, or another process polling the same queue)
// reads it, so a type is stalled once per log, not once per process, and a retry that lands there is still recorded.
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { writingActivities } from '../activities/writers';

/** Past the deadline by this much, so the timeout has certainly fired before the stalled attempt answers. */
const MARGIN_MS = 2_000;

export interface StallRecord {
  event: 'stalled' | 'retried';
  type: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  /** When the record was written (ms since the epoch). */
  at: number;
  /** Whether the activity is a local one (its worker times it out) or scheduled by the server. */
  local: boolean;
  /** The attempt's result as canonical JSON (keys sorted; stalled: what was lost, retried: what the caller got), clipped. */
  result?: string;
  /** sha256 of the whole canonical result: two attempts answered the same exactly when these are equal. */
  digest?: string;
  error?: string;
}

/** JSON with every object's keys sorted, so a result read back from jsonb (which reorders keys) compares equal. */
export function canonicalJson(value: unknown): string {
  return (
    JSON.stringify(value, (_key, v: unknown) =>
      v && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
    ) ?? 'undefined'
  );
}

/** The records a stall log holds so far (none if it does not exist yet). */
export function readStallLog(path: string): StallRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const records: StallRecord[] = [];
  for (const line of text.split('\n')) {
    try {
      if (line) records.push(JSON.parse(line) as StallRecord);
    } catch {
      // a line cut short by a killed worker
    }
  }
  return records;
}

/** The interceptor when SNAPFLOW_CHAOS_STALL is set, else none. */
export function stallInterceptors(env: NodeJS.ProcessEnv = process.env): ActivityInterceptorsFactory[] {
  const spec = env.SNAPFLOW_CHAOS_STALL?.trim();
  if (!spec) return [];
  const logPath = env.SNAPFLOW_CHAOS_STALL_LOG;
  const firstOfType = spec === '*' || spec === 'writes';
  const types = new Set(spec === 'writes' ? writingActivities : spec.split(',').map((t) => t.trim()));
  const earlier = logPath ? readStallLog(logPath).filter((r) => r.event === 'stalled') : [];
  const stalledTypes = new Set(earlier.map((r) => r.type));
  const stalledCalls = new Set(earlier.map((r) => `${r.workflowId}/${r.runId}/${r.activityId}`));
  const log = (r: StallRecord): void => {
    if (logPath) appendFileSync(logPath, `${JSON.stringify(r)}\n`);
  };
  const answer = (v: unknown) => {
    const json = canonicalJson(v);
    return { result: json.slice(0, 300), digest: createHash('sha256').update(json).digest('hex') };
  };
  const factory: ActivityInterceptorsFactory = (ctx) => ({
    inbound: {
      async execute(input, next) {
        const info = ctx.info;
        const workflowId = info.workflowExecution?.workflowId ?? '';
        const runId = info.workflowExecution?.runId ?? '';
        const call = `${workflowId}/${runId}/${info.activityId}`;
        const base = {
          type: info.activityType,
          workflowId,
          runId,
          activityId: info.activityId,
          attempt: info.attempt,
          local: info.isLocal,
        };
        if (stalledCalls.has(call)) {
          // A retry of a call that was stalled: report what the caller gets this time.
          try {
            const result = await next(input);
            log({ event: 'retried', ...base, at: Date.now(), ...answer(result) });
            return result;
          } catch (err) {
            log({ event: 'retried', ...base, at: Date.now(), error: (err as Error).message.slice(0, 300) });
            throw err;
          }
        }
        const once = info.retryPolicy?.maximumAttempts === 1; // at-most-once work (a user's job, a probe): never
        const chosen = (spec === '*' || types.has(info.activityType)) && !(firstOfType && stalledTypes.has(info.activityType));
        if (once || !chosen || info.attempt !== 1) return next(input);
        // Claimed before the work, so concurrent first calls run plainly; given back if this one fails (nothing committed).
        if (firstOfType) stalledTypes.add(info.activityType);
        let result: unknown;
        try {
          result = await next(input);
        } catch (err) {
          if (firstOfType) stalledTypes.delete(info.activityType);
          throw err;
        }
        stalledCalls.add(call);
        // Silent from here on: a heartbeat would keep a heartbeating attempt alive past its heartbeat timeout.
        (ctx as unknown as { heartbeatFn: () => void }).heartbeatFn = () => undefined;
        const deadline = Math.min(info.startToCloseTimeoutMs, info.heartbeatTimeoutMs || Infinity);
        log({ event: 'stalled', ...base, at: Date.now(), ...answer(result) });
        await new Promise((r) => setTimeout(r, deadline + MARGIN_MS));
        return result; // too late: the server (or, for a local activity, the worker) already scheduled the retry
      },
    },
  });
  return [factory];
}
