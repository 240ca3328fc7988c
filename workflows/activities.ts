// Typed activity proxies, grouped by where they run and named timeout profiles — no inline numbers.
import {
  ActivityCancellationType,
  proxyActivities,
  proxyLocalActivities,
  type ActivityInterfaceFor,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { DockerActivities } from '../activities/docker';
import type { CatalogActivities } from '../activities/catalog';
import type { ConnectionActivities } from '../activities/connections';
import type { ImageActivities } from '../activities/images';
import type { RetirementActivities } from '../activities/retirement';
import type { StorageGcActivities } from '../activities/storageGc';
import type { DefaultActivities } from '../activities/defaults';
import type { GoldenCatalogActivities } from '../activities/goldenCatalog';
import type { GoldenHostActivities } from '../activities/golden';
import type { HostCacheActivities } from '../activities/hostCache';
import type { RunActivities } from '../activities/runs';
import type { AuthzActivities } from '../activities/authz';
import type { AgentActivities } from '../activities/agents';
import type { RestoreActivities } from '../activities/restore';
import type { SandboxActivities } from '../activities/sandboxes';
import type { VmSandboxActivities } from '../activities/sandbox/vm/machines';
import { taskQueues } from '../lib/ids';
import { SIZE_PRESETS, findPreset } from '../lib/presets';

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
    heartbeatTimeout: '15 seconds',
    scheduleToStartTimeout: '2 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
  },
  /** Starting a sandbox (create, start, a short entrypoint check): no heartbeats, a few quick retries. */
  boot: {
    startToCloseTimeout: '2 minutes',
    scheduleToStartTimeout: '2 minutes',
    retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 4 },
  },
  /** Work inside a sandbox (exec, commit): heartbeated, few retries. */
  build: {
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '15 seconds',
    scheduleToStartTimeout: '2 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3 },
  },
} satisfies Record<string, ActivityOptions>;

type Profile = keyof typeof profiles;

/** Every host activity has a profile; adding one without a profile is a compile error. */
const hostProfiles: Record<keyof DockerActivities, Profile> = {
  describeHost: 'quick',
  createTempSandbox: 'quick',
  awaitEntrypoint: 'quick',
  execInSandbox: 'build',
  commitSandbox: 'build',
  pushImage: 'transfer',
  removeSandbox: 'quick',
  removeLocalImage: 'quick',
};

type HostProxy = ActivityInterfaceFor<DockerActivities>;

/** One proxy per activity, each with its own timeout profile, on one task queue. */
function bindProfiles<A extends object>(taskQueue: string, byName: Record<keyof A, Profile>): ActivityInterfaceFor<A> {
  const proxies = new Map<Profile, ActivityInterfaceFor<A>>();
  const proxyFor = (p: Profile): ActivityInterfaceFor<A> => {
    if (!proxies.has(p)) proxies.set(p, proxyActivities<A>({ ...profiles[p], taskQueue }));
    return proxies.get(p)!;
  };
  return Object.fromEntries(
    (Object.keys(byName) as Array<keyof A & string>).map((name) => [name, proxyFor(byName[name])[name]]),
  ) as unknown as ActivityInterfaceFor<A>;
}

/** Docker activities on one host's task queue (host affinity), each with its profile. */
export function hostActivities(hostId: string): HostProxy {
  return bindProfiles<DockerActivities>(taskQueues.host(hostId), hostProfiles);
}

/**
 * A user's job runs at most once: if the host worker dies mid-command, the job fails (EXEC_FAILED) instead of
 * silently running the command a second time. The caller decides whether running it again is safe.
 */
export function hostJobActivities(hostId: string, jobTimeoutMs?: number): Pick<HostProxy, 'execInSandbox'> {
  // A job with a timeout is killed inside the sandbox at its deadline; the activity gets room to report that.
  return proxyActivities<DockerActivities>(jobOptions(hostId, jobTimeoutMs));
}

/** A job's options: it runs at most once, and a job with a timeout gets room past it for its kill to report. */
export function jobOptions(hostId: string, jobTimeoutMs?: number): ActivityOptions {
  const startToCloseTimeout = jobTimeoutMs === undefined ? profiles.build.startToCloseTimeout : jobTimeoutMs + JOB_KILL_MARGIN_MS;
  return {
    ...profiles.build,
    startToCloseTimeout,
    retry: { maximumAttempts: 1 },
    // A cancelled job still answers (its exit, its log): the workflow waits for that answer.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    taskQueue: taskQueues.host(hostId),
  };
}

/** Time past a job's own timeout for the kill, the end of its output and the answer. */
const JOB_KILL_MARGIN_MS = 2 * 60_000;

/** The same host activities with the probe profile: answers fast or says the host is not there. */
export function hostProbe(hostId: string): Pick<HostProxy, 'describeHost'> {
  return proxyActivities<DockerActivities>({ ...profiles.probe, taskQueue: taskQueues.host(hostId) });
}

const imageProfiles: Record<keyof ImageActivities, Profile> = {
  resolveImage: 'quick',
  pullImage: 'transfer',
  verifyEntrypoint: 'quick',
  bootCheck: 'boot',
  storeImage: 'transfer',
};

/** Image snapshot steps on one host's queue: credentials are obtained on that host, never passed in. */
export function hostImageActivities(hostId: string): ActivityInterfaceFor<ImageActivities> {
  return bindProfiles<ImageActivities>(taskQueues.host(hostId), imageProfiles);
}

/** The upload of an image whose size the pull reported: timeouts follow its bytes. */
export function hostImageUpload(hostId: string, bytes: number): Pick<ActivityInterfaceFor<ImageActivities>, 'storeImage'> {
  const timeouts = sizedTimeouts({ mebibytes: bytes / 2 ** 20 });
  return proxyActivities<ImageActivities>({ ...profiles.transfer, ...timeouts, taskQueue: taskQueues.host(hostId) });
}

const goldenProfiles: Record<keyof GoldenHostActivities, Profile> = {
  preloadRepos: 'build',
  embedSkills: 'build',
  buildDeps: 'build',
  verifyBoot: 'quick',
};

/** Golden build steps inside the temporary sandbox on one host. */
export function hostGoldenActivities(hostId: string): ActivityInterfaceFor<GoldenHostActivities> {
  return bindProfiles<GoldenHostActivities>(taskQueues.host(hostId), goldenProfiles);
}

/**
 * Timeouts for work whose length grows with what it moves, so a loaded host gets the time the work needs instead of
 * one constant: a floor, plus the bytes at a slow rate (an emulated guest on a busy host moves a RAM image at a
 * few MiB/s). Heartbeats are sent every few seconds whatever the size; their timeout leaves room for a starved
 * worker process and grows a little with the work (a larger machine pauses longer between progress reports).
 * Deterministic: from workflow inputs and earlier results (a size preset's RAM, the pulled image's size).
 */
export function sizedTimeouts(work: { mebibytes: number }): Pick<ActivityOptions, 'startToCloseTimeout' | 'heartbeatTimeout'> {
  const mib = Math.max(0, work.mebibytes);
  return {
    startToCloseTimeout: SIZED.floorMs + Math.ceil(mib * SIZED.msPerMiB),
    heartbeatTimeout: SIZED.heartbeatFloorMs + Math.ceil(mib * SIZED.heartbeatMsPerMiB),
  };
}

/** 10 min + 0.5 s per MiB (2 MiB/s); heartbeats 30 s + 1 s per 128 MiB. A small 2 GiB machine: 27 min, 46 s. */
const SIZED = { floorMs: 10 * 60_000, msPerMiB: 500, heartbeatFloorMs: 30_000, heartbeatMsPerMiB: 1000 / 128 };

type VmSteps = Pick<VmSandboxActivities, 'startVmSandbox' | 'restoreVmSandbox' | 'snapshotVmSandbox'>;

/**
 * A vm sandbox's machine on one host: boot, restore a saved machine, save one (exec and remove are the host's own).
 * Each moves the machine's RAM (unpacking its root, loading or saving its memory), so its timeouts follow the size's RAM.
 */
export function hostVmActivities(hostId: string, size: string): ActivityInterfaceFor<VmSteps> {
  return proxyActivities<VmSteps>(machineOptions(hostId, size));
}

/** Moving a machine's RAM (boot, restore, save) on one host: timeouts follow the size's RAM. */
export function machineOptions(hostId: string, size: string): ActivityOptions {
  const memoryMiB = findPreset(size)?.memoryMiB ?? Math.max(...SIZE_PRESETS.map((p) => p.memoryMiB)); // unknown: the largest
  return { ...profiles.transfer, ...sizedTimeouts({ mebibytes: memoryMiB }), taskQueue: taskQueues.host(hostId) };
}

const cacheProfiles: Record<keyof HostCacheActivities, Profile> = {
  cacheSnapshot: 'transfer',
  evictSnapshot: 'quick',
};

/** Pre-warming and evicting cached snapshots in one host's engine. */
export function hostCacheActivities(hostId: string): ActivityInterfaceFor<HostCacheActivities> {
  return bindProfiles<HostCacheActivities>(taskQueues.host(hostId), cacheProfiles);
}

/** Catalog activities run on the control queue. */
export const catalog = proxyActivities<CatalogActivities>({ ...profiles.quick, taskQueue: taskQueues.control });

/** GitHub connection checks (GitHub API + catalog) run on the control queue too. */
export const connections = proxyActivities<ConnectionActivities>({ ...profiles.quick, taskQueue: taskQueues.control });

/** Questions about other workflow runs (the reconciler), answered by Temporal on the control queue. */
export const runs = proxyActivities<RunActivities>({ ...profiles.quick, taskQueue: taskQueues.control });

/** Delete steps (catalog + snapshot storage) run on the control queue. */
export const retirement = proxyActivities<RetirementActivities>({ ...profiles.quick, taskQueue: taskQueues.control });

/** Storage garbage collection walks the whole storage directory: heartbeated, like a transfer (control queue). */
export const storageGc = proxyActivities<StorageGcActivities>({ ...profiles.transfer, taskQueue: taskQueues.control });

/**
 * Short catalog calls made by workflows that run on the control worker, which also hosts these activities:
 * as local activities they skip a server round trip each (~30 ms on the dev server; a golden build makes
 * nine of them). Each is idempotent, so a local retry is as safe as a scheduled one.
 */
const local: LocalActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 6 },
};

/** Golden build records, registration and host cache (control worker, local). */
export const golden = proxyLocalActivities<GoldenCatalogActivities>(local);

/** Compare-and-set of the one default per (workspace, size, profile) (control worker, local). */
export const defaults = proxyLocalActivities<DefaultActivities>(local);

/** The sandbox row, session snapshots (control worker, local). */
export const sandboxCatalog = proxyLocalActivities<SandboxActivities>(local);

/** What restore resolution needs about a sandbox, in one query (control worker, local). */
export const restore = proxyLocalActivities<RestoreActivities>(local);

/** Who may do what: the first step of every workflow that changes something (control worker, local). */
export const access = proxyLocalActivities<AuthzActivities>(local);

/** Agents a rollout moves onto a snapshot and back, and the snapshot it rolls out (control worker, local). */
export const agentCatalog = proxyLocalActivities<AgentActivities>(local);
