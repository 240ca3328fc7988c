// Queries and Updates, in a module without activity proxies so clients can import it safely.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ImageSnapshotRequest } from './imageSnapshot';
import type { HealthReport, RolloutControl, RolloutStatus } from './rollout';
import type { JobRequest, JobResult, PromoteRequest, PromoteResult, SandboxCall, SandboxStatus } from './sandbox';

/** What a running image snapshot was asked for: a concurrent create of the same name compares against it. */
export const imageSnapshotRequestQuery = defineQuery<ImageSnapshotRequest>('request');

// ---- Sandbox entity workflow (workflows/sandbox.ts) ----

/** Runs a command inside the sandbox; rejected unless the sandbox is idle. */
export const runJobUpdate = defineUpdate<JobResult, [JobRequest]>('runJob');
/** Commits the idle sandbox as a workspace golden snapshot; rejected while a job runs or for `container` class. */
export const promoteUpdate = defineUpdate<PromoteResult, [PromoteRequest]>('promote');
/** Starts a stopped sandbox again, by the restore order; returns the new status (with the decision). */
export const resumeUpdate = defineUpdate<SandboxStatus, [SandboxCall]>('resume');
/** Removes the sandbox's container and ends its workflow; rejected while a job runs. */
export const destroyUpdate = defineUpdate<SandboxStatus, [SandboxCall]>('destroy');
export const sandboxStatusQuery = defineQuery<SandboxStatus>('status');

// ---- Snapshot rollout to agents (workflows/rollout.ts) ----

/** A canary agent's health on the new snapshot; rejected unless the rollout is waiting for that agent's report. */
export const reportHealthUpdate = defineUpdate<RolloutStatus, [HealthReport]>('reportHealth');
/** Holds the rollout before its next batch (the canary check still runs). Updates, so each is authorized and answered. */
export const pauseRolloutUpdate = defineUpdate<RolloutStatus, [RolloutControl]>('pause');
export const resumeRolloutUpdate = defineUpdate<RolloutStatus, [RolloutControl]>('resume');
/** Stops the rollout and moves every agent it moved back to the snapshot it came from. */
export const abortRolloutUpdate = defineUpdate<RolloutStatus, [RolloutControl]>('abort');
export const rolloutStatusQuery = defineQuery<RolloutStatus>('rolloutStatus');
