// The one failure boundary of activities: a typed SnapflowError fails the same way on every retry, so it becomes a
// non-retryable ApplicationFailure; anything else (a dropped connection, a timeout) stays retryable.
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
