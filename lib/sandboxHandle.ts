// A running sandbox's handle: which backend runs it and that backend's id for it. The workflow and the host pass it
// as this typed value; only where one string must stand for it (the catalog's container column, the status a user
// reads, and runs recorded before handles were typed) is it written as text: a container by its id, any other
// backend as `<backend>:<id>`.
import { SANDBOX_CLASSES, type SandboxClass } from './vocabulary';

/** A sandbox backend is named by the sandbox class it runs. */
export type SandboxBackendName = SandboxClass;

export interface SandboxHandle {
  backend: SandboxBackendName;
  id: string;
}

export function handleText(handle: SandboxHandle): string {
  return handle.backend === 'container' ? handle.id : `${handle.backend}:${handle.id}`;
}

/** The handle a text names; a Docker container id never holds a colon, so text without a known prefix is one. */
export function parseHandleText(text: string): SandboxHandle {
  const at = text.indexOf(':');
  const backend = at < 0 ? undefined : SANDBOX_CLASSES.find((c) => c !== 'container' && c === text.slice(0, at));
  return backend ? { backend, id: text.slice(at + 1) } : { backend: 'container', id: text };
}

/** A backend's activity for a verb: `vm` + `exec` → `vmExec` (activities/sandbox/backend.ts registers them so). */
export function backendActivityName(backend: SandboxBackendName, verb: string): string {
  return `${backend}${verb.charAt(0).toUpperCase()}${verb.slice(1)}`;
}

/**
 * The activities that run a user's job and heartbeat its output: each backend's `exec`, and the name runs recorded
 * before the backend seam (and scratch containers) call. The client reads a running job's output from these.
 */
export const JOB_ACTIVITY_NAMES: readonly string[] = ['execInSandbox', ...SANDBOX_CLASSES.map((c) => backendActivityName(c, 'exec'))];
