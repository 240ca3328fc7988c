// Chaos only, bundled into the workflow code only when a chaos run asks (scripts/bundle-workflows.ts `stallTimeoutMs`):
// a commit-then-stall run waits out each stalled attempt's deadline, and the catalog and create/remove calls allow
// 30 s, so it lowers that start-to-close (never a heartbeat timeout, never a probe's, never a longer one) to keep
// the run short. Workflow code: no Node builtins, nothing but the options it passes on.
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/common';
import type { WorkflowInterceptorsFactory } from '@temporalio/workflow';

/** Start-to-close of the short calls as the product sets them (the quick profile and the local activities). */
const SHORT_MS = 30_000;

function toMs(value: ActivityOptions['startToCloseTimeout']): number | undefined {
  if (typeof value === 'number') return value;
  const match = typeof value === 'string' ? /^(\d+) seconds?$/.exec(value) : null;
  return match ? Number(match[1]) * 1000 : undefined;
}

function shortened<T extends ActivityOptions | LocalActivityOptions>(options: T, ms: number): T {
  const heartbeat = 'heartbeatTimeout' in options && options.heartbeatTimeout !== undefined;
  const start = toMs(options.startToCloseTimeout);
  if (heartbeat || options.retry?.maximumAttempts === 1 || start === undefined || start > SHORT_MS) return options;
  return { ...options, startToCloseTimeout: Math.min(start, ms) };
}

/** The interceptors of a bundle whose short calls get `ms` instead. */
export function shortCallTimeouts(ms: number): WorkflowInterceptorsFactory {
  return () => ({
    outbound: [
      {
        scheduleActivity: (input, next) => next({ ...input, options: shortened(input.options, ms) }),
        scheduleLocalActivity: (input, next) => next({ ...input, options: shortened(input.options, ms) }),
      },
    ],
  });
}
