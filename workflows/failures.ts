// How workflows fail and refuse: typed, non-retryable, with the field and hint the CLI prints.
import { ApplicationFailure, isCancellation } from '@temporalio/workflow';
import { describeFailure, type ErrorCode, type SnapflowErrorShape } from '../lib/errors';

/** Fails the run, or refuses the Update, with a typed reason: retrying cannot help. */
export function reject(code: ErrorCode, message: string, more: Omit<SnapflowErrorShape, 'code' | 'message'> = {}): never {
  const detail = { field: more.field, hint: more.hint, ...(more.output ? { output: more.output } : {}) };
  throw ApplicationFailure.create({ type: code, message, nonRetryable: true, details: [detail] });
}

/** Rethrows a failed step with its own typed reason (not "activity task failed"). */
export function asFailure(err: unknown): never {
  const f = describeFailure(err);
  return reject(f.code, f.message, f);
}

/** What went wrong, in our shape; an operator's cancellation is CANCELLED. */
export function failureOf(err: unknown): SnapflowErrorShape {
  return isCancellation(err) ? { code: 'CANCELLED', message: 'cancelled by an operator' } : describeFailure(err);
}
