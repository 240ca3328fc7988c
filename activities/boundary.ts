// The activity layer's two rules.
//
// 1. One failure boundary: a typed SnapflowError fails the same way on every retry, so it becomes a non-retryable
//    ApplicationFailure; anything else (a dropped connection, a timeout) stays retryable.
// 2. Every activity is safe to run twice. An attempt can commit its effect and still be retried (its answer was lost,
//    or it outlived its timeout on a slow host), so each writer finds what its first attempt left and returns that
//    attempt's result, never a second effect and never a refusal of its own write:
//    - catalog writes run through `catalog/effects.ts#once` under `attemptKey()` (workflow id, run id, activity id:
//      the same on every attempt of one call, local activities included), which stores the result with the effect;
//    - host work (Docker, QEMU, registry, files) is keyed by deterministic names (container and VM ids, image tags,
//      content digests, state file paths) and looks for the thing before making it; removals treat "gone" as done.
import { Context } from '@temporalio/activity';
import { once } from '../catalog/effects';
import type { Db } from '../db/client';
import { SnapflowError, toNonRetryableFailure, type ErrorCode } from '../lib/errors';

/** Runs an activity's work, turning a SnapflowError it throws into a non-retryable failure. */
export async function boundary<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw err instanceof SnapflowError ? toNonRetryableFailure(err) : err;
  }
}

/** Fails the activity now, typed and without retries (for host work that is not wrapped in `boundary`). */
export function fail(code: ErrorCode, message: string, hint?: string): never {
  throw toNonRetryableFailure(new SnapflowError({ code, message, hint }));
}

/**
 * This activity call's identity, the same on every attempt (workflow id, run id, activity type and id); undefined
 * outside an activity (a test or the client calling the catalog function directly).
 */
export function attemptKey(): string | undefined {
  let info;
  try {
    info = Context.current().info;
  } catch {
    return undefined;
  }
  if (!info.workflowExecution) return undefined;
  const { workflowId, runId } = info.workflowExecution;
  return `${workflowId}/${runId}/${info.activityType}/${info.activityId}`;
}

/** A catalog write of an activity, inside the failure boundary, run once per activity call (rule 2 above). */
export function writeOnce<T>(db: Db, work: (tx: Db) => Promise<T>): Promise<T> {
  return boundary(() => once(db, attemptKey(), work));
}
