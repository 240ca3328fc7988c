// The CLI's exit codes, one per kind of failure, so scripts can branch without parsing messages.
// A type import only: `snapflow --help` must not load the SDK to know them.
import type { ErrorCode } from '../lib/errors';

export const EXIT = {
  ok: 0,
  /** Internal error, or a step that ran and failed (build, verify, exec); `doctor` with a ✗ check. */
  failed: 1,
  /** Usage, validation or configuration: fix the command line or the environment. */
  usage: 2,
  /** Not allowed: the actor's role, the workspace's plan, or credentials refused. */
  denied: 3,
  /** The workspace, snapshot, sandbox, image or run does not exist. */
  notFound: 4,
  /** Temporal, Postgres, Docker, storage or host capacity unavailable, or a timeout: try again later. */
  unavailable: 5,
  /** Conflict with another change, or the sandbox is busy or stopped. */
  conflict: 6,
} as const;

const byCode: Partial<Record<ErrorCode, number>> = {
  VALIDATION_FAILED: EXIT.usage,
  CONFIG_INVALID: EXIT.usage,
  SANDBOX_CLASS_UNSUPPORTED: EXIT.usage,
  GOLDEN_STORAGE_NOT_CONFIGURED: EXIT.usage,
  STORAGE_GC_NOT_CONFIGURED: EXIT.usage,
  GITHUB_APP_NOT_CONFIGURED: EXIT.usage,
  SKILLS_NOT_CONFIGURED: EXIT.usage,
  // The image's files do not fit the size's guest: a larger size or a smaller image, not a retry.
  IMAGE_TOO_LARGE: EXIT.usage,
  UNAUTHENTICATED: EXIT.denied,
  PERMISSION_DENIED: EXIT.denied,
  PLAN_REQUIRED: EXIT.denied,
  HANDLE_MISMATCH: EXIT.denied,
  REGISTRY_AUTH_FAILED: EXIT.denied,
  GITHUB_CONNECTION_MISSING: EXIT.denied,
  GITHUB_CONNECTION_EXPIRED: EXIT.denied,
  GITHUB_ACCOUNT_MISMATCH: EXIT.denied,
  NOT_FOUND: EXIT.notFound,
  IMAGE_NOT_FOUND: EXIT.notFound,
  ENTRYPOINT_NOT_FOUND: EXIT.notFound,
  WORKFLOW_GONE: EXIT.notFound,
  TEMPORAL_UNAVAILABLE: EXIT.unavailable,
  DATABASE_UNAVAILABLE: EXIT.unavailable,
  MIGRATIONS_PENDING: EXIT.unavailable,
  DOCKER_UNAVAILABLE: EXIT.unavailable,
  STORAGE_UNAVAILABLE: EXIT.unavailable,
  INSUFFICIENT_HOST_MEMORY: EXIT.unavailable,
  TIMED_OUT: EXIT.unavailable,
  // A guest broke its channel's protocol (a frame past the limit): the job failed where it ran.
  VM_AGENT_PROTOCOL: EXIT.failed,
  RATE_LIMITED: EXIT.unavailable,
  CONFLICT: EXIT.conflict,
  SANDBOX_BUSY: EXIT.conflict,
  SANDBOX_STOPPED: EXIT.conflict,
};

/** The exit code for a typed failure; anything not listed (INTERNAL, PRELOAD_FAILED, …) is 1. */
export function exitCodeFor(code: string): number {
  return byCode[code as ErrorCode] ?? EXIT.failed;
}

/** The HTTP status the API answers a typed failure with: the same classes as the exit codes, one mapping. */
const httpByExit: Record<number, number> = {
  [EXIT.failed]: 500,
  [EXIT.usage]: 400,
  [EXIT.denied]: 403,
  [EXIT.notFound]: 404,
  [EXIT.unavailable]: 503,
  [EXIT.conflict]: 409,
};

export function httpStatusFor(code: string): number {
  // Two codes HTTP names more precisely than their class: no valid credentials, and too many failed tries.
  if (code === 'UNAUTHENTICATED') return 401;
  if (code === 'RATE_LIMITED') return 429;
  return httpByExit[exitCodeFor(code)] ?? 500;
}

/** `sandbox run`: the job's own exit code, as a shell would report it (1–255). */
export function jobExitCode(exitCode: number): number {
  return Number.isInteger(exitCode) && exitCode > 0 && exitCode < 256 ? exitCode : exitCode === 0 ? EXIT.ok : EXIT.failed;
}
