// A host's sandbox activities: the Docker calls, both backends' verbs under their own names, and the three calls
// every backend answers by one name (the host's facts, and exec and removal by handle text, which runs recorded
// before typed handles and the golden build's scratch containers call). Nothing here is registered twice.
import type Docker from 'dockerode';
import type { StorageConfig } from '../../lib/config';
import type { HostFacts } from '../../lib/hosts';
import { parseHandleText } from '../../lib/sandboxHandle';
import type { LogSink } from '../../catalog/logs';
import { createDockerActivities, jobLogs, type ExecInSandbox, type ExecResult, type RemoveSandbox } from '../docker';
import { backendActivities, type SandboxBackend } from './backend';
import { createContainerBackend } from './container';
import { createVmSandbox, type VmSandboxDeps } from './vm/machines';

export interface HostSandboxDeps extends Omit<VmSandboxDeps, 'docker'> {
  docker: Docker;
  dockerHost: string;
  storage?: StorageConfig;
  /** Caps the memory this host offers (SNAPFLOW_HOST_MEMORY_MIB). */
  memoryLimitMiB?: number;
  /** Where jobs' output is kept whole (both backends); omitted → results carry only tails. */
  logSink?: LogSink;
  /** Bytes kept per log before it is cut (SNAPFLOW_LOG_CAP_BYTES). */
  logCapBytes?: number;
}

export function createHostSandboxActivities(deps: HostSandboxDeps) {
  const {
    describeHost: engineFacts,
    execInSandbox,
    removeSandbox,
    ...docker
  } = createDockerActivities({
    docker: deps.docker,
    hostId: deps.hostId,
    dockerHost: deps.dockerHost,
    storage: deps.storage,
    memoryLimitMiB: deps.memoryLimitMiB,
    logs: deps.logSink,
    logCapBytes: deps.logCapBytes,
  });
  const container = createContainerBackend({ docker: { ...docker, describeHost: engineFacts, execInSandbox, removeSandbox } });
  const vm = createVmSandbox({ ...deps, logs: jobLogs(deps.logSink, deps.logCapBytes) });
  const backends: Record<string, SandboxBackend> = { container, vm: vm.backend };
  const routed = {
    /** The engine's facts, with what each backend holds beside them (placement reads both). */
    async describeHost(): Promise<HostFacts> {
      const facts = await engineFacts();
      for (const backend of Object.values(backends)) {
        const extra = await backend.facts();
        Object.assign(facts, { ...extra, memoryReservedMiB: facts.memoryReservedMiB + extra.memoryReservedMiB });
      }
      return facts;
    },
    execInSandbox(input: ExecInSandbox): Promise<ExecResult> {
      return parseHandleText(input.containerId).backend === 'vm' ? vm.byText.exec(input) : execInSandbox(input);
    },
    removeSandbox(input: RemoveSandbox): Promise<void> {
      return parseHandleText(input.containerId).backend === 'vm' ? vm.byText.remove(input) : removeSandbox(input);
    },
  };
  return {
    activities: joinActivities({ docker, routed, container: backendActivities('container', container), vm: vm.activities }),
    /** Saved machines for the host cache's pre-warm and eviction. */
    vmStates: { cache: vm.activities.cacheVmState, evict: vm.activities.evictVmState },
  };
}

/** Activity groups as one registration; a name in two groups is a bug, refused here rather than one silently winning. */
export function joinActivities<G extends Record<string, object>>(groups: G): UnionToIntersection<G[keyof G]> {
  const joined: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  for (const [group, activities] of Object.entries(groups)) {
    for (const [name, fn] of Object.entries(activities)) {
      if (name in joined) throw new Error(`activity ${name} is registered by both ${from[name]} and ${group}`);
      joined[name] = fn;
      from[name] = group;
    }
  }
  return joined as UnionToIntersection<G[keyof G]>;
}

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
