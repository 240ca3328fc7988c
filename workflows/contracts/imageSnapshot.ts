// The image snapshot's interface (workflows/imageSnapshot.ts): request, result and the query for what it was asked.
import type { Duration } from '@temporalio/common';
import { defineQuery } from '@temporalio/workflow';
import type { ValidatedImageSnapshot } from '../../lib/validation';
import type { RolloutRequest } from './rollout';
import type { ActorClaim } from '../../lib/actorClaim';

/** `--replace --rollout`: the old snapshot's agents move through a canary rollout instead of all at once. */
export type AgentRolloutOptions = Pick<RolloutRequest, 'canary' | 'batchSize' | 'healthTimeout' | 'auto'>;

/** A validated create (lib/validation/imageSnapshot.ts) plus what the client decided before starting the run. */
export interface ImageSnapshotRequest extends ValidatedImageSnapshot {
  /** Chosen by the client, so it can answer with the id at once while the run is still `pending`. */
  snapshotId: string;
  /** The image lives on the GHCR host: a live GitHub connection is required. */
  requiresGithub: boolean;
  /** `--replace`: the snapshot whose defaults, pins and agents move to this one once it is active. */
  replaces?: string;
  /** With `replaces`: hand the agents to a rollout (canary first) instead of moving them with the defaults. */
  agentRollout?: AgentRolloutOptions;
  actor: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
  /** The run's own deadline; past it the snapshot fails with TIMED_OUT instead of staying `pending`. */
  deadline?: Duration;
}

export interface ImageSnapshotResult {
  snapshotId: string;
  status: 'active';
  reused: boolean;
  digest?: string;
  storedRef?: string;
  /** The rollout that took over the replaced snapshot's agents (`--replace --rollout`). */
  rollout?: { workflowId: string; agents: string[] };
}

/** What a running image snapshot was asked for: a concurrent create of the same name compares against it. */
export const imageSnapshotRequestQuery = defineQuery<ImageSnapshotRequest>('request');
