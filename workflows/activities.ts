// Typed activity proxies, grouped by where they run and named timeout profiles — no inline numbers.
import { proxyActivities, type ActivityInterfaceFor, type ActivityOptions } from '@temporalio/workflow';
import type { DockerActivities } from '../activities/docker';
import type { CatalogActivities } from '../activities/catalog';
import { taskQueues } from '../lib/ids';

export const profiles = {
  /** Probes: fail fast when no worker polls the queue, never retry. */
  probe: { startToCloseTimeout: '15 seconds', scheduleToStartTimeout: '5 seconds', retry: { maximumAttempts: 1 } },
  /** Short calls (catalog writes, create/remove): a few quick retries. */
  quick: {
    startToCloseTimeout: '30 seconds',
    scheduleToStartTimeout: '2 minutes',
    retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 6 },
  },
  /** Moving image bytes (push/pull): heartbeated, bounded retries with backoff. */
  transfer: {
    startToCloseTimeout: '20 minutes',
    heartbeatTimeout: '30 seconds',
    scheduleToStartTimeout: '2 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
  },
  /** Work inside a sandbox (exec, commit): heartbeated, few retries. */
  build: {
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '30 seconds',
    scheduleToStartTimeout: '2 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3 },
  },
} satisfies Record<string, ActivityOptions>;

type Profile = keyof typeof profiles;

/** Every host activity has a profile; adding one without a profile is a compile error. */
const hostProfiles: Record<keyof DockerActivities, Profile> = {
  describeHost: 'quick',
  createTempSandbox: 'quick',
  execInSandbox: 'build',
  commitSandbox: 'build',
  pushImage: 'transfer',
  removeSandbox: 'quick',
  removeLocalImage: 'quick',
};

type HostProxy = ActivityInterfaceFor<DockerActivities>;

/** Docker activities on one host's task queue (host affinity), each with its profile. */
export function hostActivities(hostId: string): HostProxy {
  const taskQueue = taskQueues.host(hostId);
  const byProfile: Record<Profile, HostProxy> = {
    probe: proxyActivities<DockerActivities>({ ...profiles.probe, taskQueue }),
    quick: proxyActivities<DockerActivities>({ ...profiles.quick, taskQueue }),
    transfer: proxyActivities<DockerActivities>({ ...profiles.transfer, taskQueue }),
    build: proxyActivities<DockerActivities>({ ...profiles.build, taskQueue }),
  };
  return Object.fromEntries(
    (Object.keys(hostProfiles) as Array<keyof DockerActivities>).map((name) => [name, byProfile[hostProfiles[name]][name]]),
  ) as unknown as HostProxy;
}

/** The same host activities with the probe profile: answers fast or says the host is not there. */
export function hostProbe(hostId: string): Pick<HostProxy, 'describeHost'> {
  return proxyActivities<DockerActivities>({ ...profiles.probe, taskQueue: taskQueues.host(hostId) });
}

/** Catalog activities run on the control queue. */
export const catalog = proxyActivities<CatalogActivities>({ ...profiles.quick, taskQueue: taskQueues.control });
