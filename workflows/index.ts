// Every workflow the workers register. Deterministic code only (see eslint.config.mjs).
export { refreshHost } from './hosts';
export { hostSelfTest } from './hostSelfTest';
export type { HostSelfTestRequest, HostSelfTestResult } from './hostSelfTest';
export type { RefreshHostRequest } from './hosts';
