// Every workflow the workers register. Deterministic code only (see eslint.config.mjs).
export { changeHostPlacement, refreshHost } from './hosts';
export { hostSelfTest } from './hostSelfTest';
export { createImageSnapshot } from './imageSnapshot';
export { validateGithubConnection } from './github';
export { reconcileSnapshots } from './reconcile';
export { deleteSnapshot } from './deleteSnapshot';
export { storageGarbageCollection } from './storageGc';
export { buildGoldenSnapshot } from './goldenBuild';
export { setDefaultSnapshot } from './setDefault';
export { sandbox } from './sandbox';
export { rolloutSnapshot } from './rollout';
export { pinIssue } from './issuePins';
export type { HostSelfTestRequest, HostSelfTestResult } from './contracts/hostSelfTest';
export type { HostPlacementRequest, HostPlacementResult, RefreshHostRequest } from './contracts/hosts';
export type { AgentRolloutOptions, ImageSnapshotRequest, ImageSnapshotResult } from './contracts/imageSnapshot';
export type { GithubConnectionRequest } from './contracts/github';
export type { DeleteSnapshotRequest } from './contracts/deleteSnapshot';
export type { StorageGcRequest, StorageGcResult } from './contracts/storageGc';
export type { GoldenBuildRequest, GoldenBuildResult } from './contracts/goldenBuild';
export type { SetDefaultRequest } from './contracts/setDefault';
export type { IssuePinRequest, IssuePinResult } from './contracts/issuePins';
export type {
  SandboxRequest,
  SandboxStatus,
  JobRequest,
  JobResult,
  PromoteRequest,
  PromoteResult,
  ForkPoint,
  ForkRequest,
} from './contracts/sandbox';
export type { RolloutRequest, RolloutResult, RolloutStatus, RolloutPhase, HealthReport, RolloutControl } from './contracts/rollout';
