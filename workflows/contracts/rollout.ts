// The snapshot rollout's interface (workflows/rollout.ts): request, status, result and its controls.
import type { Duration } from '@temporalio/common';
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ActorClaim } from '../../lib/actorClaim';

export interface RolloutRequest {
  workspace: string;
  snapshotId: string;
  /** Agent names in rollout order (the first `canary` of them are the canary), or every agent of the workspace. */
  agents: string[] | 'all';
  /** Agents moved first and checked before anyone else moves (default 1). */
  canary?: number;
  /** Agents moved per batch after a healthy canary (default 2). */
  batchSize?: number;
  /** How long to wait for the canary's health (default 10 minutes); silence counts as unhealthy. */
  healthTimeout?: Duration;
  /**
   * Check the canary's health itself instead of waiting for a report: a sandbox of the snapshot runs its entrypoint,
   * which must stay up, and each canary agent's health command as a job; then the sandbox is removed.
   */
  auto?: boolean;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

/** A canary's health; `actor` is who reports it, authorized inside the workflow like every other change. */
export interface HealthReport {
  agent: string;
  ok: boolean;
  detail?: string;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
}

/** Who pauses, resumes or aborts, and why (authorized inside the workflow; shown in the status and the result). */
export interface RolloutControl {
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
  reason?: string;
}

export type RolloutPhase =
  'authorizing' | 'resolving' | 'canary' | 'health' | 'rolling' | 'rolling-back' | 'completed' | 'rolled-back' | 'aborted' | 'failed';

export interface RolloutStatus {
  snapshotId: string;
  phase: RolloutPhase;
  canary: string[];
  /** On the snapshot because this rollout moved them (and not moved back). */
  moved: string[];
  /** Still to move. */
  pending: string[];
  /** Already on the snapshot when the rollout began: never moved, never moved back. */
  already: string[];
  movedBack: string[];
  /** Moved to another snapshot by someone else while this rollout ran: left where they are. */
  skipped: string[];
  paused: boolean;
  health: HealthReport[];
  /** Why it was rolled back, aborted or failed. */
  reason?: string;
}

export interface RolloutResult {
  status: 'completed' | 'rolled-back' | 'aborted';
  snapshotId: string;
  moved: string[];
  movedBack: string[];
  already: string[];
  skipped: string[];
  health: HealthReport[];
  reason?: string;
}

/** A canary agent's health; rejected unless the rollout is waiting for that agent's report. */
export const reportHealthUpdate = defineUpdate<RolloutStatus, [HealthReport]>('reportHealth');
/** Holds the rollout before its next batch (the canary check still runs). Updates, so each is authorized and answered. */
export const pauseRolloutUpdate = defineUpdate<RolloutStatus, [RolloutControl]>('pause');
export const resumeRolloutUpdate = defineUpdate<RolloutStatus, [RolloutControl]>('resume');
/** Stops the rollout and moves every agent it moved back to the snapshot it came from. */
export const abortRolloutUpdate = defineUpdate<RolloutStatus, [RolloutControl]>('abort');
export const rolloutStatusQuery = defineQuery<RolloutStatus>('rolloutStatus');
