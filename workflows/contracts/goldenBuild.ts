// The golden build's request and result (workflows/goldenBuild.ts).
import type { HostCacheOutcome } from './hostCache';
import type { ActorClaim } from '../../lib/actorClaim';

export interface GoldenBuildRequest {
  workspace: string;
  trigger: 'build-now' | 'schedule';
  actor?: string;
  /** Proof that `actor` is who asks (lib/actorClaim.ts), checked by the authorization step. */
  claim?: ActorClaim;
  /** Given by build-now callers; scheduled runs draw one (deterministically) in the workflow. */
  buildId?: string;
}

export interface GoldenSnapshotRef {
  snapshotId: string;
  name: string;
  size: string;
  runtime: string;
  profileKey: string;
  /** A `vm` target's golden is a saved machine: the machine profile it restores onto. */
  machineProfile?: string;
}

export interface GoldenBuildResult {
  buildId: string;
  status: 'succeeded' | 'skipped';
  reason?: string;
  message?: string;
  figures?: Record<string, number | string>;
  hostId?: string;
  storedRef?: string;
  snapshots: GoldenSnapshotRef[];
  /** Where the new image is cached, where pre-warming failed, what was evicted. */
  cache?: HostCacheOutcome;
}
