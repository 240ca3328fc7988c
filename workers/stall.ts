// Chaos only: "commit, then stall". With SNAPFLOW_CHAOS_STALL set, the first attempt of a chosen activity does its
// work (its effect commits) and then sleeps past its own deadline before it reports, so Temporal times it out and
// runs it again: the retry path after a committed attempt is exercised on purpose, not by luck. Never on otherwise.
//   SNAPFLOW_CHAOS_STALL=*                       the first call of every activity type, once per worker process
//   SNAPFLOW_CHAOS_STALL=setDefault,startVmSandbox  every first attempt of these types
//   SNAPFLOW_CHAOS_STALL_LOG=/path/stalls.jsonl   one line per stall and per retry that followed one
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { appendFileSync } from 'node:fs';

/** Past the deadline by this much, so the timeout has certainly fired before the stalled attempt answers. */
const MARGIN_MS = 2_000;

export interface StallRecord {
  event: 'stalled' | 'retried';
  type: string;
  workflowId: string;
  activityId: string;
  attempt: number;
  /** The attempt's result as JSON (stalled: what was lost; retried: what the caller got), clipped. */
  result?: string;
  error?: string;
}

/** The interceptor when SNAPFLOW_CHAOS_STALL is set, else none. */
export function stallInterceptors(env: NodeJS.ProcessEnv = process.env): ActivityInterceptorsFactory[] {
  const spec = env.SNAPFLOW_CHAOS_STALL?.trim();
  if (!spec) return [];
  const everyType = spec === '*';
  const types = new Set(spec.split(',').map((t) => t.trim()));
  const stalledTypes = new Set<string>();
  const stalledCalls = new Set<string>();
  const log = (r: StallRecord): void => {
    if (env.SNAPFLOW_CHAOS_STALL_LOG) appendFileSync(env.SNAPFLOW_CHAOS_STALL_LOG, `${JSON.stringify(r)}\n`);
  };
  const clip = (v: unknown): string => (JSON.stringify(v) ?? 'undefined').slice(0, 300);
  const factory: ActivityInterceptorsFactory = (ctx) => ({
    inbound: {
      async execute(input, next) {
        const info = ctx.info;
        const workflowId = info.workflowExecution?.workflowId ?? '';
        const call = `${workflowId}/${info.workflowExecution?.runId ?? ''}/${info.activityId}`;
        const base = { type: info.activityType, workflowId, activityId: info.activityId, attempt: info.attempt };
        if (stalledCalls.has(call)) {
          // A retry of a call this process stalled: report what the caller gets this time.
          try {
            const result = await next(input);
            log({ event: 'retried', ...base, result: clip(result) });
            return result;
          } catch (err) {
            log({ event: 'retried', ...base, error: (err as Error).message.slice(0, 300) });
            throw err;
          }
        }
        const once = info.retryPolicy?.maximumAttempts === 1; // at-most-once work (a user's job, a probe): never
        const chosen = everyType ? !stalledTypes.has(info.activityType) : types.has(info.activityType);
        if (once || !chosen || info.attempt !== 1) return next(input);
        const result = await next(input);
        stalledTypes.add(info.activityType);
        stalledCalls.add(call);
        const deadline = Math.min(info.startToCloseTimeoutMs, info.heartbeatTimeoutMs || Infinity);
        log({ event: 'stalled', ...base, result: clip(result) });
        await new Promise((r) => setTimeout(r, deadline + MARGIN_MS));
        return result; // too late: the server (or, for a local activity, the worker) already scheduled the retry
      },
    },
  });
  return [factory];
}
