// The one module of typed failures. Imported by workflows too: keep it free of Node builtins.
import { ApplicationFailure, TimeoutFailure } from '@temporalio/common';

/** Every failure a user or operator can see, by code. Persisted as-is in the catalog. */
export const ERROR_CODES = [
  'CONFIG_INVALID',
  'VALIDATION_FAILED',
  'NOT_FOUND',
  'CONFLICT',
  'DATABASE_UNAVAILABLE',
  'MIGRATIONS_PENDING',
  'TEMPORAL_UNAVAILABLE',
  'DOCKER_UNAVAILABLE',
  'DOCKER_REJECTED',
  'IMAGE_NOT_FOUND',
  'IMAGE_TOO_LARGE',
  'ENTRYPOINT_NOT_FOUND',
  'ENTRYPOINT_EXITED',
  'REGISTRY_AUTH_FAILED',
  'STORAGE_UNAVAILABLE',
  'GOLDEN_STORAGE_NOT_CONFIGURED',
  'STORAGE_GC_NOT_CONFIGURED',
  'GITHUB_APP_NOT_CONFIGURED',
  'GITHUB_CONNECTION_MISSING',
  'GITHUB_CONNECTION_EXPIRED',
  'GITHUB_ACCOUNT_MISMATCH',
  'SKILLS_NOT_CONFIGURED',
  'INSUFFICIENT_HOST_MEMORY',
  'PRELOAD_FAILED',
  'NIX_UNAVAILABLE',
  'VERIFY_FAILED',
  'PERMISSION_DENIED',
  'PLAN_REQUIRED',
  'HANDLE_MISMATCH',
  'SANDBOX_BUSY',
  'SANDBOX_STOPPED',
  'SANDBOX_CLASS_UNSUPPORTED',
  'EXEC_FAILED',
  'VM_UNAVAILABLE',
  'VM_BOOT_FAILED',
  'VM_UNRESPONSIVE',
  'VM_SNAPSHOT_FAILED',
  'VM_PROFILE_MISMATCH',
  'VM_AGENT_PROTOCOL',
  'STATE_CORRUPT',
  'JOB_TIMED_OUT',
  'TIMED_OUT',
  'CANCELLED',
  'WORKFLOW_GONE',
  'UNAUTHENTICATED',
  'RATE_LIMITED',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface SnapflowErrorShape {
  code: ErrorCode;
  message: string;
  field?: string;
  hint?: string;
  /** A job that failed after it ran (JOB_TIMED_OUT): what it wrote until then. */
  output?: { stdout: string; stderr: string };
}

export class SnapflowError extends Error implements SnapflowErrorShape {
  readonly code: ErrorCode;
  readonly field?: string;
  readonly hint?: string;
  readonly output?: { stdout: string; stderr: string };

  constructor(shape: SnapflowErrorShape) {
    super(shape.message);
    this.name = 'SnapflowError';
    this.code = shape.code;
    this.field = shape.field;
    this.hint = shape.hint;
    if (shape.output) this.output = shape.output;
  }

  toJSON(): SnapflowErrorShape {
    return { code: this.code, message: this.message, field: this.field, hint: this.hint, ...(this.output ? { output: this.output } : {}) };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/**
 * Turn a SnapflowError into a non-retryable ApplicationFailure at the activity boundary, keeping
 * field and hint in the failure details so clients and the UI can show them.
 */
export function toNonRetryableFailure(err: SnapflowError): ApplicationFailure {
  return ApplicationFailure.create({
    message: err.message,
    type: err.code,
    nonRetryable: true,
    details: [{ field: err.field, hint: err.hint }],
  });
}

/**
 * Walk a Temporal failure chain (WorkflowFailedError → ActivityFailure → ApplicationFailure) to our shape.
 * Unknown failures keep the innermost message: that is the one that says what actually went wrong.
 */
/**
 * Snapshot storage is not configured: golden features are disabled (the client, the control plane), or the host named
 * in `where` cannot do what needs storage. The one answer to a missing SNAPFLOW_STORAGE_URL, wherever it is noticed.
 */
export function storageNotConfigured(where?: { hostId: string; what: string }): SnapflowError {
  return new SnapflowError({
    code: 'GOLDEN_STORAGE_NOT_CONFIGURED',
    message: where
      ? `snapshot storage is not configured on host ${where.hostId}, so ${where.what} is not possible`
      : 'golden snapshots are disabled because snapshot storage is not configured',
    hint: `set SNAPFLOW_STORAGE_URL, SNAPFLOW_STORAGE_USERNAME and SNAPFLOW_STORAGE_PASSWORD${where ? ' for the host worker' : ''}`,
  });
}

export function describeFailure(err: unknown): SnapflowErrorShape {
  let current: unknown = err;
  let innermost = err instanceof Error ? err.message : String(err);
  for (let depth = 0; current && depth < 8; depth++) {
    if (current instanceof SnapflowError) return current.toJSON();
    if (current instanceof ApplicationFailure && isErrorCode(current.type)) {
      const detail = (current.details?.[0] ?? {}) as Pick<SnapflowErrorShape, 'field' | 'hint' | 'output'>;
      return {
        code: current.type,
        message: current.message,
        field: detail.field,
        hint: detail.hint,
        ...(detail.output ? { output: detail.output } : {}),
      };
    }
    if (current instanceof TimeoutFailure) {
      const kind = String(current.timeoutType ?? 'unknown')
        .toLowerCase()
        .replace(/_/g, '-');
      return {
        code: 'TIMED_OUT',
        message:
          kind === 'schedule-to-start'
            ? 'no worker picked up the task in time (is the worker for that queue running?)'
            : `a step timed out (${kind})`,
      };
    }
    if (current instanceof Error && current.message) innermost = current.message;
    current = (current as { cause?: unknown }).cause;
  }
  return { code: 'INTERNAL', message: innermost };
}
