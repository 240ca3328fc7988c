// The one seam between the sandbox entity workflow and the runtimes that run sandboxes: every backend has these
// verbs, each an activity named `<backend><Verb>` on the host's task queue (containerBoot, vmBoot, …), so no two
// backends ever register the same name and the workflow never asks which one it has (workflows/backends.ts).
import { fail } from '../boundary';
import type { LogRef } from '../../catalog/logs';
import type { ExecResult } from '../docker';
import type { HandleClaim } from '../handles';
import type { HostFacts } from '../../lib/hosts';
import { backendActivityName, type SandboxBackendName, type SandboxHandle } from '../../lib/sandboxHandle';

export type { SandboxBackendName, SandboxHandle } from '../../lib/sandboxHandle';
export type { ExecResult } from '../docker';

export interface BootSandbox extends HandleClaim {
  /** Stable per sandbox start (sandbox id + generation): a retried boot finds what it booted. */
  key: string;
  image: string;
  size: string;
  workflowId: string;
  /** An image snapshot's long-lived process: booted = still running `settleSeconds` after the start. */
  entrypoint?: string;
  settleSeconds?: number;
}

export interface RestoreSandbox extends HandleClaim {
  key: string;
  /** A saved session or golden machine: in snapshot storage, or host-cache-only (`snapflow.local/…`). */
  stateRef: string;
  workspace: string;
  workflowId: string;
}

export interface ExecJob extends HandleClaim {
  handle: SandboxHandle;
  command: string[];
  env?: Record<string, string>;
  workdir?: string;
  /** Killed with its processes past this long; its output is heartbeated as it comes. */
  timeoutMs?: number;
  /** Where the job's whole output is kept (the log store); omitted → the result carries only tails. */
  log?: LogRef;
}

export interface SaveSession extends HandleClaim {
  handle: SandboxHandle;
  /** Repository path inside snapshot storage, e.g. `snapflow/sessions/ws/<sandbox>`. */
  repository: string;
  tag: string;
  /** Keep the sandbox running after the save (true), or let the save stop it. */
  keepRunning: boolean;
  /** Refuse before saving anything when snapshot storage is not configured (a golden lives there). */
  requireStorage?: boolean;
}

export interface SavedSession {
  /** What a cached copy on this host is found by. */
  localRef: string;
  storedRef: string | null;
  digest: string | null;
  /** A saved machine's profile (vm); absent for a committed image. */
  machineProfile?: string;
  /** A saved machine's size (zstd) and how long the save took (vm): the host's session-save metrics read them. */
  bytes?: number;
  savedMs?: number;
}

export interface StopSandbox extends HandleClaim {
  handle: SandboxHandle;
}

/** What placement reads about a backend on this host, beside the host's engine facts. */
export type BackendFacts = Pick<HostFacts, 'memoryReservedMiB'> & Partial<Pick<HostFacts, 'vm'>>;

export interface SandboxBackend {
  /** Starts a sandbox from an image (on this host's engine); IMAGE_NOT_FOUND when the image is not here. */
  boot(input: BootSandbox): Promise<SandboxHandle>;
  /** Continues a saved session or machine; SANDBOX_CLASS_UNSUPPORTED where the backend saves none to continue. */
  restore(input: RestoreSandbox): Promise<SandboxHandle>;
  /** A user's job, its output heartbeated as it comes (lib/jobOutput.ts). */
  exec(input: ExecJob): Promise<ExecResult>;
  saveSession(input: SaveSession): Promise<SavedSession>;
  /** Ends what runs (idempotent: one already gone counts as stopped); saved sessions stay. */
  stop(input: StopSandbox): Promise<void>;
  facts(): Promise<BackendFacts>;
}

/** The verbs the workflow calls as activities; `facts` is read by the host's describeHost for placement. */
export const BACKEND_VERBS = ['boot', 'restore', 'exec', 'saveSession', 'stop'] as const;
export type BackendVerb = (typeof BACKEND_VERBS)[number];

/** The verbs a backend answers, as the activity names it registers them under. */
export type BackendActivities<N extends SandboxBackendName> = {
  [V in BackendVerb as `${N}${Capitalize<V>}`]: SandboxBackend[V];
};

/** A backend's verbs under its own activity names. */
export function backendActivities<N extends SandboxBackendName>(name: N, backend: SandboxBackend): BackendActivities<N> {
  const verbs: readonly BackendVerb[] = BACKEND_VERBS;
  return Object.fromEntries(verbs.map((verb) => [backendActivityName(name, verb), backend[verb].bind(backend)])) as BackendActivities<N>;
}

/** Refused where the handle names another backend: a call never acts on another runtime's sandbox. */
export function requireBackend(handle: SandboxHandle, backend: SandboxBackendName): string {
  if (handle?.backend !== backend)
    fail('HANDLE_MISMATCH', `a ${backend} backend was handed a ${String(handle?.backend)} sandbox handle`, 'a bug in the caller');
  return handle.id;
}
