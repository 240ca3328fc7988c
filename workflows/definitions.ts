// Queries, signals and updates, in a module without activity proxies so clients can import it safely.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ImageSnapshotRequest } from './imageSnapshot';
import type { JobRequest, JobResult, PromoteRequest, PromoteResult, SandboxStatus } from './sandbox';

/** What a running image snapshot was asked for: a concurrent create of the same name compares against it. */
export const imageSnapshotRequestQuery = defineQuery<ImageSnapshotRequest>('request');

// ---- Sandbox entity workflow (workflows/sandbox.ts) ----

/** Runs a command inside the sandbox; rejected unless the sandbox is idle. */
export const runJobUpdate = defineUpdate<JobResult, [JobRequest]>('runJob');
/** Commits the idle sandbox as a workspace golden snapshot; rejected while a job runs or for `container` class. */
export const promoteUpdate = defineUpdate<PromoteResult, [PromoteRequest]>('promote');
/** Starts a stopped sandbox again, by the restore order; returns the new status (with the decision). */
export const resumeUpdate = defineUpdate<SandboxStatus, []>('resume');
/** Removes the sandbox's container and ends its workflow; rejected while a job runs. */
export const destroyUpdate = defineUpdate<SandboxStatus, []>('destroy');
export const sandboxStatusQuery = defineQuery<SandboxStatus>('status');
