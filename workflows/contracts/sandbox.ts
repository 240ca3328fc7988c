// The sandbox entity's interface (workflows/sandbox.ts): its request, status and the Updates and Query it answers.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { DefaultState } from '../../catalog/defaults';
import type { SandboxRow } from '../../catalog/sandboxes';
import type { RestoreDecision } from '../../lib/restoreOrder';
import type { SandboxState } from '../../lib/vocabulary';

/** The sandbox's catalog row (catalog/sandboxes.ts), its id named `sandboxId`, and who asks for it. */
export interface SandboxRequest extends Omit<SandboxRow, 'id'> {
  sandboxId: string;
  actor: string;
  /** Updates handled per run before continuing as new (default 200; tests use a small one). */
  updatesPerRun?: number;
  /** State carried over continue-as-new; absent on the first run. */
  carried?: SandboxCarried;
}

export interface SandboxCarried {
  state: SandboxState;
  hostId?: string;
  containerId?: string;
  latestSessionSnapshotId?: string;
  jobs: number;
  generation: number;
  lastStart?: RestoreDecision;
  /** The profile it runs since its last start, when that differs from the request's (its agent moved to a new image). */
  profileKey?: string;
}

/** Who asks: decided against the workspace's roles inside the workflow (lib/authz.ts). */
export interface SandboxCall {
  actor?: string;
}

export interface JobRequest extends SandboxCall {
  command: string[];
  env?: Record<string, string>;
  workdir?: string;
}

export interface JobResult {
  sequence: number;
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Saved only after a successful job on a `vm` sandbox. */
  sessionSnapshotId?: string;
  /** The job succeeded but its session could not be saved: the previous session stays the latest. */
  sessionError?: string;
  /** No keep-alive: the container was stopped after the job. */
  stopped: boolean;
}

export interface PromoteRequest {
  name: string;
  setDefault?: boolean;
  actor?: string;
}

export interface PromoteResult {
  snapshotId: string;
  name: string;
  storedRef: string;
  default?: DefaultState;
}

export interface SandboxStatus extends SandboxCarried {
  sandboxId: string;
  currentJob?: { sequence: number; command: string[] };
}

/** Runs a command inside the sandbox; rejected unless the sandbox is idle. */
export const runJobUpdate = defineUpdate<JobResult, [JobRequest]>('runJob');
/** Commits the idle sandbox as a workspace golden snapshot; rejected while a job runs or for `container` class. */
export const promoteUpdate = defineUpdate<PromoteResult, [PromoteRequest]>('promote');
/** Starts a stopped sandbox again, by the restore order; returns the new status (with the decision). */
export const resumeUpdate = defineUpdate<SandboxStatus, [SandboxCall]>('resume');
/** Removes the sandbox's container and ends its workflow; rejected while a job runs. */
export const destroyUpdate = defineUpdate<SandboxStatus, [SandboxCall]>('destroy');
export const sandboxStatusQuery = defineQuery<SandboxStatus>('status');
