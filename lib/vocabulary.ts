// The domain's states, kinds and roles: string unions, persisted as they are (db/ builds its enums from these).
// Pure data, shared by every layer.

export const SNAPSHOT_KINDS = ['image', 'session', 'golden'] as const;
export const SNAPSHOT_STATUSES = ['pending', 'active', 'failed', 'deleting', 'deleted'] as const;
export const SNAPSHOT_ORIGINS = ['user', 'job', 'build-now', 'schedule', 'promote'] as const;
export const SANDBOX_CLASSES = ['vm', 'container'] as const;
export const SANDBOX_STATES = ['provisioning', 'idle', 'busy', 'snapshotting', 'promoting', 'stopped', 'failed'] as const;
export const HOST_STATUSES = ['online', 'draining', 'offline'] as const;
export const GITHUB_CONNECTION_STATUSES = ['connected', 'expired', 'missing'] as const;
export const GOLDEN_BUILD_STATUSES = ['running', 'succeeded', 'failed', 'skipped'] as const;
export const GOLDEN_BUILD_TRIGGERS = ['build-now', 'schedule'] as const;
export const PLANS = ['free', 'paid'] as const;
export const ROLES = ['admin', 'member'] as const;
export const DECISIONS = ['allowed', 'denied'] as const;

export type SnapshotKind = (typeof SNAPSHOT_KINDS)[number];
export type SnapshotStatus = (typeof SNAPSHOT_STATUSES)[number];
export type SnapshotOrigin = (typeof SNAPSHOT_ORIGINS)[number];
export type SandboxClass = (typeof SANDBOX_CLASSES)[number];
export type SandboxState = (typeof SANDBOX_STATES)[number];
export type HostStatus = (typeof HOST_STATUSES)[number];
export type GithubConnectionStatus = (typeof GITHUB_CONNECTION_STATUSES)[number];
export type GoldenBuildStatus = (typeof GOLDEN_BUILD_STATUSES)[number];
export type GoldenBuildTrigger = (typeof GOLDEN_BUILD_TRIGGERS)[number];
export type Plan = (typeof PLANS)[number];
export type Role = (typeof ROLES)[number];
export type Decision = (typeof DECISIONS)[number];
