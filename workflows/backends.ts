// The sandbox backends as the entity workflow calls them: one typed table from a sandbox's class to the backend that
// runs it and the timeout profile of each of its verbs (activities/sandbox/backend.ts). The workflow never asks which
// backend it has beyond this table.
import { proxyActivities, type ActivityInterfaceFor, type ActivityOptions } from '@temporalio/workflow';
import type { BackendActivities, BackendVerb, SandboxBackend, SandboxBackendName } from '../activities/sandbox/backend';
import { backendActivityName } from '../lib/sandboxHandle';
import type { SandboxClass } from '../lib/vocabulary';
import { taskQueues } from '../lib/ids';
import { jobOptions, machineOptions, profiles } from './activities';

export type BackendCalls = ActivityInterfaceFor<Pick<SandboxBackend, BackendVerb>>;

interface BackendEntry {
  /** Its sessions save memory and processes, and promotion saves the running machine (else: no sessions at all). */
  snapshots: boolean;
  /** Each verb's options on one host; `exec` is a job's (runs at most once). */
  options: (hostId: string, size: string) => Record<Exclude<BackendVerb, 'exec'>, ActivityOptions>;
}

const BACKENDS: Record<SandboxBackendName, BackendEntry> = {
  container: {
    snapshots: false,
    options: (hostId) => {
      const on = (p: ActivityOptions) => ({ ...p, taskQueue: taskQueues.host(hostId) });
      return { boot: on(profiles.boot), restore: on(profiles.quick), saveSession: on(profiles.transfer), stop: on(profiles.quick) };
    },
  },
  vm: {
    snapshots: true,
    options: (hostId, size) => {
      const machine = machineOptions(hostId, size);
      return { boot: machine, restore: machine, saveSession: machine, stop: { ...profiles.quick, taskQueue: taskQueues.host(hostId) } };
    },
  },
};

/** The backend of each sandbox class. */
export const BACKEND_OF_CLASS: Record<SandboxClass, SandboxBackendName> = { container: 'container', vm: 'vm' };

export function backendTraits(name: SandboxBackendName): Pick<BackendEntry, 'snapshots'> {
  return { snapshots: BACKENDS[name].snapshots };
}

/** Backend `name`'s verbs on one host, each with its options; `jobTimeoutMs` bounds `exec`. */
export function backendOn(name: SandboxBackendName, hostId: string, size: string, jobTimeoutMs?: number): BackendCalls {
  const options = BACKENDS[name].options(hostId, size);
  const verb = <V extends BackendVerb>(v: V, o: ActivityOptions) => {
    const activity = backendActivityName(name, v) as keyof BackendActivities<typeof name>;
    return proxyActivities<BackendActivities<typeof name>>(o)[activity] as unknown as BackendCalls[V];
  };
  return {
    boot: verb('boot', options.boot),
    restore: verb('restore', options.restore),
    exec: verb('exec', jobOptions(hostId, jobTimeoutMs)),
    saveSession: verb('saveSession', options.saveSession),
    stop: verb('stop', options.stop),
  };
}
