// Deterministic workflow ids and task queue names: the same request never starts two runs.
// Imported by workflows: no Node builtins.

/** Task queues are versioned and named for what polls them. */
export const taskQueues = {
  control: 'snapflow-control-v1',
  host: (hostId: string): string => `snapflow-host-v1-${hostId}`,
} as const;

export const workflowIds = {
  imageSnapshot: (workspace: string, name: string): string => `image-snapshot/${workspace}/${name}`,
  /** One delete per snapshot id: a repeated delete joins the running one. */
  snapshotDelete: (snapshotId: string): string => `snapshot-delete/${snapshotId}`,
  /** One run of each kind at a time: a second `storage gc` joins the running one. */
  storageGc: (dryRun: boolean): string => `storage-gc/${dryRun ? 'dry-run' : 'collect'}`,
  /** One connect/validate at a time per workspace. */
  githubConnection: (workspace: string): string => `github-connection/${workspace}`,
  /** Build now joins a build already running for the workspace instead of starting a second one. */
  goldenBuild: (workspace: string): string => `golden-build/${workspace}`,
  /** Schedules append the fire time to this. */
  goldenScheduledBuild: (workspace: string): string => `golden-build/${workspace}/scheduled`,
  /**
   * Keyed by the version being written: two concurrent set-defaults that saw the same version map to the
   * same id, so Temporal itself lets only one of them start.
   */
  setDefault: (workspace: string, size: string, profileKey: string, nextVersion: number): string =>
    `set-default/${workspace}/${size}/${profileKey}/v${nextVersion}`,
  sandbox: (sandboxId: string): string => `sandbox/${sandboxId}`,
  /** One rollout of a snapshot per workspace at a time: starting it again joins the running one. */
  rollout: (workspace: string, snapshotId: string): string => `rollout/${workspace}/${snapshotId}`,
  /** One refresh per host at a time; a new one may start after the last closed. */
  hostRefresh: (hostId: string): string => `host-refresh/${hostId}`,
  /** One pin (or unpin: no snapshot) of an issue: the same request asked twice at once joins one run. */
  issuePin: (workspace: string, issue: string, snapshot?: string): string =>
    snapshot ? `issue-pin/${workspace}/${issue}/pin/${snapshot}` : `issue-pin/${workspace}/${issue}/unpin`,
  /** Draining or undraining a host: the same change asked twice at once joins one run. */
  hostPlacement: (hostId: string, status: string): string => `host-placement/${hostId}/${status}`,
  /** A self-test is a one-off by nature: the caller supplies the unique part. */
  hostSelfTest: (hostId: string, nonce: string): string => `host-self-test/${hostId}/${nonce}`,
} as const;

/** Temporal Schedules snapflow owns. */
export const scheduleIds = {
  reconcile: 'snapflow-reconcile-snapshots',
  golden: (workspace: string): string => `snapflow-golden-${workspace}`,
} as const;

/** The Temporal search attributes snapflow sets; all Keyword, all non-secret. */
export const SEARCH_ATTRIBUTES = ['SnapshotName', 'SnapshotKind', 'WorkspaceId', 'SandboxSize', 'Runtime'] as const;
export type SearchAttributeName = (typeof SEARCH_ATTRIBUTES)[number];

/** Scope of catalog rows that belong to operators rather than one workspace. */
export const SYSTEM_SCOPE = 'system';

/**
 * Snapshot storage repositories: `snapflow/<workspace>/<name>` (image snapshots), `snapflow/golden/<workspace>`,
 * `snapflow/sessions/<workspace>/<sandbox>` and `snapflow/self-test` (host self-tests, the system's). A workspace
 * named like one of those second segments would share its repositories, so those ids are reserved.
 */
export const STORAGE_NAMESPACE = 'snapflow';
export const RESERVED_WORKSPACE_IDS = [SYSTEM_SCOPE, 'golden', 'sessions', 'self-test', STORAGE_NAMESPACE] as const;

/** The workspace a stored reference (`registry/snapflow/…@sha256:…`) belongs to, or undefined if it is not one of ours. */
export function storageOwner(storedRef: string): string | undefined {
  const path = storedRef.split('@')[0]!.replace(/:[\w.-]+$/, '');
  const [, namespace, first, second] = path.split('/');
  if (namespace !== STORAGE_NAMESPACE || !first) return undefined;
  if (first === 'self-test') return SYSTEM_SCOPE;
  if (first === 'golden' || first === 'sessions') return second || undefined;
  return first;
}

/** Label put on every container snapflow creates, so leftovers can be found and swept by id. */
export const CONTAINER_LABEL = 'io.snapflow.managed';
/** The workflow a temporary sandbox belongs to: the sweep keeps it while that workflow runs. */
export const WORKFLOW_LABEL = 'io.snapflow.workflow-id';
/** The sandbox a container was made for, and its workspace (empty for a build's or a check's container). */
export const SANDBOX_LABEL = 'io.snapflow.sandbox-id';
export const WORKSPACE_LABEL = 'io.snapflow.workspace';
