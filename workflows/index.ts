// Every workflow the workers register. Deterministic code only (see eslint.config.mjs).
export { refreshHost } from './hosts';
export { hostSelfTest } from './hostSelfTest';
export { createImageSnapshot } from './imageSnapshot';
export { validateGithubConnection } from './github';
export { reconcileSnapshots } from './reconcile';
export { deleteSnapshot } from './deleteSnapshot';
export { buildGoldenSnapshot } from './goldenBuild';
export { setDefaultSnapshot } from './setDefault';
export { sandbox } from './sandbox';
export type { HostSelfTestRequest, HostSelfTestResult } from './hostSelfTest';
export type { RefreshHostRequest } from './hosts';
export type { ImageSnapshotRequest, ImageSnapshotResult } from './imageSnapshot';
export type { GithubConnectionRequest } from './github';
export type { DeleteSnapshotRequest } from './deleteSnapshot';
export type { GoldenBuildRequest, GoldenBuildResult } from './goldenBuild';
export type { SetDefaultRequest } from './setDefault';
export type { SandboxRequest, SandboxStatus, JobRequest, JobResult, PromoteRequest, PromoteResult } from './sandbox';
