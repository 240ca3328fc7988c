// The sandbox entity's interface (workflows/sandbox.ts): its request, status and the Updates and Query it answers.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DefaultState } from '../../catalog/defaults';
import type { SandboxRow } from '../../catalog/sandboxes';
import type { RestoreDecision } from '../../lib/restoreOrder';
import type { SandboxHandle } from '../../lib/sandboxHandle';
import type { SandboxState } from '../../lib/vocabulary';
import type { ActorClaim } from '../../lib/actorClaim';

/** What a sandbox gets when neither it nor its workspace says otherwise. */
export const SANDBOX_DEFAULTS = {
  idleTimeoutMs: 15 * 60_000,
  maxLifetimeMs: 24 * 3_600_000,
  jobTimeoutMs: 30 * 60_000,
} as const;

/** The sandbox's catalog row (catalog/sandboxes.ts), its id named `sandboxId`, and who asks for it. */
export interface SandboxRequest extends Omit<SandboxRow, 'id'> {
  sandboxId: string;
  /**
   * The external issue key (e.g. "ENG-42") whose pinned golden comes first: the first run saves the issue's row
   * (created on first use) and registers the sandbox under it. Runs recorded before that carried `issueId` instead.
   */
  issue?: string;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
  /** An idle running sandbox stops after this long without an Update (a `vm` saves its session first). */
  idleTimeoutMs?: number;
  /** A running sandbox, keep-alive or not, stops once its container has been up this long. */
  maxLifetimeMs?: number;
  /** Updates handled per run before continuing as new (default 200; tests use a small one). */
  updatesPerRun?: number;
  /** State carried over continue-as-new; absent on the first run. */
  carried?: SandboxCarried;
}

export interface SandboxCarried {
  state: SandboxState;
  hostId?: string;
  /** What runs now, by backend; `containerId` is its text (the catalog's column, and the status a user reads). */
  handle?: SandboxHandle;
  containerId?: string;
  latestSessionSnapshotId?: string;
  jobs: number;
  generation: number;
  lastStart?: RestoreDecision;
  /** The profile it runs since its last start, when that differs from the request's (its agent moved to a new image). */
  profileKey?: string;
  /** Workflow time (ms) the running container started; absent while stopped. */
  startedAt?: number;
  /** A successful job whose session is not saved yet (the save failed): an idle stop saves it. */
  unsavedSequence?: number;
  /** Why the sandbox last stopped on its own, and when (workflow time, ms). */
  lastStop?: { reason: 'idle-timeout' | 'max-lifetime'; at: number; sessionSnapshotId?: string };
  /** A `vm` sandbox runs as a QEMU machine (snapshots hold memory and processes); absent: the recorded container runtime. */
  machines?: boolean;
  /** The last session save, once it is done: its snapshot, or why it failed. */
  lastSession?: { sequence: number; sessionSnapshotId?: string; sessionError?: string };
}

/** Who asks: decided against the workspace's roles inside the workflow (lib/authz.ts). */
export interface SandboxCall {
  actor?: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

export interface JobRequest extends SandboxCall {
  command: string[];
  env?: Record<string, string>;
  workdir?: string;
  /** The job is killed (its process group) past this long; default 30 minutes. */
  timeoutMs?: number;
}

export interface JobResult {
  sequence: number;
  exitCode: number;
  /** Each stream's exact last 64 KiB when the job has a log (`log`); its head on a host that keeps none. */
  stdout: string;
  stderr: string;
  /** The caller cancelled it: its processes were signalled, its log is kept, no session was saved. */
  cancelled?: true;
  /** Where the whole output is (`sandbox logs`): its size, and what a cut at the cap dropped. */
  log?: { id: string; bytes: number; dropped: number; cutAt?: number; incomplete?: true };
  /** Saved only after a successful job on a `vm` sandbox. */
  sessionSnapshotId?: string;
  /** The job succeeded but its session could not be saved: the previous session stays the latest. */
  sessionError?: string;
  /** No keep-alive: the container was stopped after the job. */
  stopped: boolean;
  /** The session snapshot is being saved after this result was returned: the sandbox is `snapshotting` until then. */
  sessionPending?: boolean;
  /** The sandbox was stopped and started again for this job, from here. */
  resumedFrom?: RestoreDecision;
}

export interface PromoteRequest {
  name: string;
  setDefault?: boolean;
  actor?: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

export interface PromoteResult {
  snapshotId: string;
  name: string;
  storedRef: string;
  default?: DefaultState;
}

export interface ForkRequest extends SandboxCall {
  /** The new sandbox's id: the session saved for it is named for it, so a retried fork finds its own. */
  forkId: string;
}

/** Where a fork starts: the source's session snapshot, saved on the spot when the source was running (`live`). */
export interface ForkPoint {
  snapshotId: string;
  live: boolean;
}

export interface SandboxStatus extends SandboxCarried {
  sandboxId: string;
  currentJob?: { sequence: number; command: string[] };
}

/** Runs a command inside the sandbox (starting it again first when it is stopped); rejected while it is busy. */
export const runJobUpdate = defineUpdate<JobResult, [JobRequest]>('runJob');

/** Cancels the running job (Ctrl-C on `sandbox run`): SIGTERM to its process group, SIGKILL after a grace. */
export const cancelJobSignal = defineSignal<[{ sequence?: number }]>('cancelJob');
/**
 * Publishes the sandbox as a workspace golden snapshot: an idle one saved on the spot, a stopped one's latest session
 * as it is (nothing booted); rejected while a job runs or for `container` class.
 */
export const promoteUpdate = defineUpdate<PromoteResult, [PromoteRequest]>('promote');
/**
 * The session a fork starts from: a running sandbox saves its live state (and keeps running), a stopped one answers
 * its latest session without starting. Rejected while a job or a save runs.
 */
export const forkUpdate = defineUpdate<ForkPoint, [ForkRequest]>('fork');
/** Starts a stopped sandbox again, by the restore order; returns the new status (with the decision). */
export const resumeUpdate = defineUpdate<SandboxStatus, [SandboxCall]>('resume');
/** Removes the sandbox's container and ends its workflow; rejected while a job runs. */
export const destroyUpdate = defineUpdate<SandboxStatus, [SandboxCall]>('destroy');
export const sandboxStatusQuery = defineQuery<SandboxStatus>('status');
/** Answers once the sandbox has left `provisioning` (running, or `failed`): sent with the start, no polling. */
export const startedUpdate = defineUpdate<SandboxStatus, []>('started');
