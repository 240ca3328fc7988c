// The catalog. The database does the guarding: every invariant a user relies on is a constraint here,
// so a bug in an activity fails loudly instead of leaving two defaults or a stuck name behind.
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
  customType,
  type AnyPgColumn,
} from 'drizzle-orm/pg-core';
import { RUNTIMES } from '../lib/presets';
import { NAME_PATTERN, SLUG_PATTERN } from '../lib/validation/slugs';
import {
  GITHUB_CONNECTION_STATUSES,
  GOLDEN_BUILD_STATUSES,
  GOLDEN_BUILD_TRIGGERS,
  HOST_STATUSES,
  SANDBOX_CLASSES,
  SANDBOX_STATES,
  SNAPSHOT_KINDS,
  SNAPSHOT_ORIGINS,
  SNAPSHOT_STATUSES,
} from '../lib/vocabulary';

// ---- State unions, persisted as they are (lib/vocabulary.ts) ----
export { RUNTIMES };

export const snapshotKind = pgEnum('snapshot_kind', SNAPSHOT_KINDS);
export const snapshotStatus = pgEnum('snapshot_status', SNAPSHOT_STATUSES);
export const snapshotOrigin = pgEnum('snapshot_origin', SNAPSHOT_ORIGINS);
export const runtime = pgEnum('runtime', RUNTIMES);
export const sandboxClass = pgEnum('sandbox_class', SANDBOX_CLASSES);
export const sandboxState = pgEnum('sandbox_state', SANDBOX_STATES);
export const hostStatus = pgEnum('host_status', HOST_STATUSES);
export const githubConnectionStatus = pgEnum('github_connection_status', GITHUB_CONNECTION_STATUSES);

/** Snapshot names: lowercase, registry-tag friendly, versioned names encouraged (`api-base.v3`). */
export const SNAPSHOT_NAME_PATTERN = NAME_PATTERN;

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () =>
  timestamp('updated_at', { withTimezone: true })
    .notNull()
    .defaultNow()
    .$onUpdate(() => new Date());

// ---- Tables ----

/** Size presets are data (seeded from lib/presets.ts by migration 0001); everything else references the key. */
export const sizePresets = pgTable(
  'size_presets',
  {
    key: text('key').primaryKey(),
    vcpus: integer('vcpus').notNull(),
    memoryMib: integer('memory_mib').notNull(),
  },
  (t) => [check('size_presets_vcpus_positive', sql`${t.vcpus} > 0`), check('size_presets_memory_positive', sql`${t.memoryMib} > 0`)],
);

export const snapshots = pgTable(
  'snapshots',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** 'system' (lib/ids SYSTEM_SCOPE) or a workspace id. */
    workspace: text('workspace').notNull(),
    name: text('name').notNull(),
    kind: snapshotKind('kind').notNull(),
    sourceImage: text('source_image'),
    resolvedDigest: text('resolved_digest'),
    storedRef: text('stored_ref'),
    /**
     * Set when the snapshot is a saved machine (a vm sandbox's memory and devices, not an image): the QEMU version,
     * machine type, accel, RAM, vCPUs and kernel it restores onto. Null for images.
     */
    machineProfile: text('machine_profile'),
    entrypoint: text('entrypoint').notNull().default('/app/start.sh'),
    runtime: runtime('runtime').notNull(),
    size: text('size')
      .notNull()
      .references(() => sizePresets.key),
    profileKey: text('profile_key').notNull(),
    status: snapshotStatus('status').notNull().default('pending'),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    origin: snapshotOrigin('origin').notNull(),
    /** What this snapshot replaced or was derived from (promote, rebuild). */
    parentSnapshotId: uuid('parent_snapshot_id').references((): AnyPgColumn => snapshots.id),
    sandboxId: uuid('sandbox_id').references((): AnyPgColumn => sandboxes.id),
    workflowId: text('workflow_id'),
    runId: text('run_id'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    // Name unique per workspace among live rows; a tombstone frees the name for reuse.
    uniqueIndex('snapshots_scope_name_live_idx')
      .on(t.workspace, t.name)
      .where(sql`${t.status} <> 'deleted'`),
    // Never "failed" without a typed reason.
    check('snapshots_failed_has_error_code', sql`${t.status} <> 'failed' OR ${t.errorCode} IS NOT NULL`),
    // A session snapshot always knows the sandbox it was saved from.
    check('snapshots_session_has_sandbox', sql`${t.kind} <> 'session' OR ${t.sandboxId} IS NOT NULL`),
    check('snapshots_name_format', sql`${t.name} ~ ${sql.raw(`'${SNAPSHOT_NAME_PATTERN}'`)}`),
    check('snapshots_entrypoint_absolute', sql`left(${t.entrypoint}, 1) = '/'`),
    // Restore resolution and golden selection: newest compatible snapshot of a kind in a workspace.
    index('snapshots_lookup_idx').on(t.workspace, t.kind, t.profileKey, t.status, t.createdAt.desc()),
    index('snapshots_sandbox_idx').on(t.sandboxId),
  ],
);

/** What a default is for (workspace, size, profile) and the snapshot it names: a pointer's columns and a history entry's. */
const defaultColumns = () => ({
  workspace: text('workspace').notNull(),
  size: text('size')
    .notNull()
    .references(() => sizePresets.key),
  profileKey: text('profile_key').notNull(),
  snapshotId: uuid('snapshot_id')
    .notNull()
    .references(() => snapshots.id),
});

/** Exactly one default per (workspace, size, profile); `version` makes every change a compare-and-set. */
export const defaultPointers = pgTable(
  'default_pointers',
  {
    ...defaultColumns(),
    version: integer('version').notNull().default(1),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ name: 'default_pointers_pkey', columns: [t.workspace, t.size, t.profileKey] }),
    check('default_pointers_version_positive', sql`${t.version} > 0`),
    index('default_pointers_snapshot_idx').on(t.snapshotId),
  ],
);

/** Append-only; rollback = set-default to a previous entry's snapshot. */
export const defaultHistory = pgTable(
  'default_history',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    ...defaultColumns(),
    previousSnapshotId: uuid('previous_snapshot_id').references(() => snapshots.id),
    actor: text('actor').notNull(),
    reason: text('reason'),
    workflowId: text('workflow_id'),
    createdAt: createdAt(),
  },
  (t) => [index('default_history_pointer_idx').on(t.workspace, t.size, t.profileKey, t.id.desc())],
);

export const hosts = pgTable(
  'hosts',
  {
    /** Slug, same shape as SNAPFLOW_HOST_ID; the host worker polls taskQueues.host(id). */
    id: text('id').primaryKey(),
    taskQueue: text('task_queue').notNull().unique(),
    dockerEndpoint: text('docker_endpoint').notNull(),
    memoryTotalMib: integer('memory_total_mib').notNull(),
    /** The machine profile this host restores saved vm sandboxes onto, per size; null on a host without QEMU. */
    vmProfiles: jsonb('vm_profiles').$type<Record<string, string>>(),
    status: hostStatus('status').notNull().default('online'),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }).notNull().defaultNow(),
    createdAt: createdAt(),
  },
  (t) => [
    check('hosts_id_slug', sql`${t.id} ~ ${sql.raw(`'${SLUG_PATTERN}'`)}`),
    check('hosts_memory_positive', sql`${t.memoryTotalMib} > 0`),
  ],
);

export const issues = pgTable(
  'issues',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    workspace: text('workspace').notNull(),
    externalKey: text('external_key').notNull(),
    /** Golden snapshot pinned for this issue; first choice in restore resolution's golden step. */
    pinnedSnapshotId: uuid('pinned_snapshot_id').references(() => snapshots.id),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique('issues_scope_external_key_key').on(t.workspace, t.externalKey),
    // "Who uses this snapshot?" (delete, prune, host-cache eviction) looks pins up by snapshot.
    index('issues_pinned_snapshot_idx').on(t.pinnedSnapshotId),
  ],
);

export const sandboxes = pgTable(
  'sandboxes',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    workspace: text('workspace').notNull(),
    class: sandboxClass('class').notNull(),
    size: text('size')
      .notNull()
      .references(() => sizePresets.key),
    runtime: runtime('runtime').notNull(),
    profileKey: text('profile_key').notNull(),
    keepAlive: boolean('keep_alive').notNull().default(false),
    state: sandboxState('state').notNull().default('provisioning'),
    hostId: text('host_id').references(() => hosts.id),
    containerId: text('container_id'),
    latestSessionSnapshotId: uuid('latest_session_snapshot_id').references((): AnyPgColumn => snapshots.id),
    issueId: uuid('issue_id').references(() => issues.id),
    /** The image snapshot the sandbox was created from (`--snapshot`, or its agent's snapshot then); null: the built-in base. */
    baseSnapshotId: uuid('base_snapshot_id').references((): AnyPgColumn => snapshots.id),
    /** The agent it was created for (agents live in db/access.ts): it starts from that agent's snapshot as it is now. */
    agentId: uuid('agent_id'),
    /**
     * `sandbox fork`: the session snapshot of another sandbox this one was made from. A vm fork starts with it as its
     * latest session; a container fork (whose own runs keep no sessions) starts from it on every start.
     */
    forkedFromSnapshotId: uuid('forked_from_snapshot_id').references((): AnyPgColumn => snapshots.id),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    // Session snapshots exist only for VM sandboxes.
    check('sandboxes_snapshot_only_vm', sql`${t.class} = 'vm' OR ${t.latestSessionSnapshotId} IS NULL`),
    index('sandboxes_host_idx').on(t.hostId),
    index('sandboxes_latest_session_idx').on(t.latestSessionSnapshotId),
    index('sandboxes_scope_idx').on(t.workspace),
  ],
);

/** Per workspace. Deliberately no token column: tokens are minted inside activities when needed. */
export const githubConnections = pgTable(
  'github_connections',
  {
    workspace: text('workspace').primaryKey(),
    installationId: bigint('installation_id', { mode: 'number' }).notNull(),
    account: text('account'),
    status: githubConnectionStatus('status').notNull(),
    validatedAt: timestamp('validated_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [check('github_connections_installation_positive', sql`${t.installationId} > 0`)],
);

export interface GoldenTarget {
  size: string;
  runtime: (typeof RUNTIMES)[number];
  /** The image snapshot (by name) the build starts from; absent: the built-in base. */
  base?: string;
  /** `size:runtime:vm`: the golden is a saved vm machine booted from the built image, so sandboxes start warm. */
  machine?: boolean;
}

export const goldenBuildConfigs = pgTable(
  'golden_build_configs',
  {
    workspace: text('workspace').primaryKey(),
    repos: jsonb('repos').$type<string[]>().notNull().default([]),
    embedSkills: boolean('embed_skills').notNull().default(false),
    /** Pre-build dependencies from the repo's tembo.nix. */
    prebuildDeps: boolean('prebuild_deps').notNull().default(false),
    /** Directory on the host workers copied into the image when embedSkills is on. */
    skillsPath: text('skills_path'),
    /** Runs instead of tembo.nix when the image has no Nix; without it, NIX_UNAVAILABLE. */
    depsFallbackCommand: text('deps_fallback_command'),
    targets: jsonb('targets').$type<GoldenTarget[]>().notNull().default([]),
    scheduleCron: text('schedule_cron'),
    scheduleTimeZone: text('schedule_time_zone').notNull().default('UTC'),
    enabled: boolean('enabled').notNull().default(false),
    updatedAt: updatedAt(),
  },
  (t) => [
    check('golden_build_configs_repos_array', sql`jsonb_typeof(${t.repos}) = 'array'`),
    check('golden_build_configs_targets_array', sql`jsonb_typeof(${t.targets}) = 'array'`),
  ],
);

export const goldenBuildStatus = pgEnum('golden_build_status', GOLDEN_BUILD_STATUSES);
export const goldenBuildTrigger = pgEnum('golden_build_trigger', GOLDEN_BUILD_TRIGGERS);

/** Every golden build run, including skipped ones (with the reason and the figures behind it). */
export const goldenBuilds = pgTable(
  'golden_builds',
  {
    id: uuid('id').primaryKey(),
    workspace: text('workspace').notNull(),
    trigger: goldenBuildTrigger('trigger').notNull(),
    status: goldenBuildStatus('status').notNull().default('running'),
    /** Error code or skip reason, e.g. INSUFFICIENT_HOST_MEMORY. */
    reason: text('reason'),
    message: text('message'),
    figures: jsonb('figures').$type<Record<string, number | string>>(),
    snapshotId: uuid('snapshot_id').references(() => snapshots.id),
    workflowId: text('workflow_id').notNull(),
    runId: text('run_id'),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [
    check('golden_builds_reason_when_not_ok', sql`${t.status} in ('running', 'succeeded') OR ${t.reason} IS NOT NULL`),
    index('golden_builds_scope_idx').on(t.workspace, t.startedAt.desc()),
  ],
);

/** Which snapshot is cached on which host; rows vanish with either side. */
export const hostCache = pgTable(
  'host_cache',
  {
    hostId: text('host_id')
      .notNull()
      .references(() => hosts.id, { onDelete: 'cascade' }),
    snapshotId: uuid('snapshot_id')
      .notNull()
      .references(() => snapshots.id, { onDelete: 'cascade' }),
    cachedAt: timestamp('cached_at', { withTimezone: true }).notNull().defaultNow(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'host_cache_pkey', columns: [t.hostId, t.snapshotId] }), index('host_cache_snapshot_idx').on(t.snapshotId)],
);

/** Append-only; written only when a snapshot's state really changes. */
export const snapshotEvents = pgTable(
  'snapshot_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    snapshotId: uuid('snapshot_id')
      .notNull()
      .references(() => snapshots.id),
    type: text('type').notNull(),
    fromStatus: snapshotStatus('from_status'),
    toStatus: snapshotStatus('to_status'),
    message: text('message'),
    actor: text('actor'),
    workflowId: text('workflow_id'),
    runId: text('run_id'),
    createdAt: createdAt(),
  },
  (t) => [index('snapshot_events_snapshot_idx').on(t.snapshotId, t.id)],
);

/**
 * What each committed catalog write of an activity returned, keyed by its attempt-independent identity
 * (workflow id, run id, activity id): a retry after a commit finds its own effect here and returns it, in the same
 * transaction as the effect itself. Kept a day: retries are bounded by minutes.
 */
export const activityEffects = pgTable(
  'activity_effects',
  {
    key: text('key').primaryKey(),
    result: jsonb('result').$type<{ value?: unknown }>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('activity_effects_created_idx').on(t.createdAt)],
);

/** Raw bytes: a log holds what a job wrote, valid UTF-8 or not. */
const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

/**
 * One log per job, image-snapshot build or golden build (`id` says which: `job:<sandbox>:<n>`, `snapshot:<id>`,
 * `golden:<build>`). Totals are written when it closes: `bytes` is everything produced, `dropped` what a cut left out.
 */
export const logs = pgTable(
  'logs',
  {
    id: text('id').primaryKey(),
    kind: text('kind').notNull(),
    /** The sandbox, snapshot or golden build it belongs to. */
    subject: text('subject').notNull(),
    /** A job's sequence number in its sandbox. */
    job: integer('job'),
    open: boolean('open').notNull().default(true),
    /** How it ended: exited, cancelled, timed-out, failed. */
    outcome: text('outcome'),
    exitCode: integer('exit_code'),
    bytes: bigint('bytes', { mode: 'number' }).notNull().default(0),
    dropped: bigint('dropped', { mode: 'number' }).notNull().default(0),
    /** Byte offset of the job's output where the cap cut it, when it did. */
    cutAt: bigint('cut_at', { mode: 'number' }),
    createdAt: createdAt(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [
    check('logs_kind', sql`${t.kind} in ('job', 'snapshot', 'golden')`),
    index('logs_subject_idx').on(t.subject, t.job),
    index('logs_finished_idx').on(t.finishedAt),
  ],
);

/** A log's bytes in write order; (log, seq) is the idempotency key of an append. `stream` note is the log's own word. */
export const logChunks = pgTable(
  'log_chunks',
  {
    logId: text('log_id')
      .notNull()
      .references(() => logs.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    stream: text('stream').notNull(),
    at: timestamp('at', { withTimezone: true }).notNull(),
    data: bytea('data').notNull(),
  },
  (t) => [
    primaryKey({ name: 'log_chunks_pkey', columns: [t.logId, t.seq] }),
    check('log_chunks_stream', sql`${t.stream} in ('stdout', 'stderr', 'note')`),
  ],
);

// ---- Row types ----
export type SizePresetRow = typeof sizePresets.$inferSelect;
export type Snapshot = typeof snapshots.$inferSelect;
export type NewSnapshot = typeof snapshots.$inferInsert;
export type DefaultPointer = typeof defaultPointers.$inferSelect;
export type NewDefaultPointer = typeof defaultPointers.$inferInsert;
export type DefaultHistoryEntry = typeof defaultHistory.$inferSelect;
export type NewDefaultHistoryEntry = typeof defaultHistory.$inferInsert;
export type Host = typeof hosts.$inferSelect;
export type NewHost = typeof hosts.$inferInsert;
export type Sandbox = typeof sandboxes.$inferSelect;
export type NewSandbox = typeof sandboxes.$inferInsert;
export type Issue = typeof issues.$inferSelect;
export type NewIssue = typeof issues.$inferInsert;
export type GithubConnection = typeof githubConnections.$inferSelect;
export type NewGithubConnection = typeof githubConnections.$inferInsert;
export type GoldenBuildConfig = typeof goldenBuildConfigs.$inferSelect;
export type NewGoldenBuildConfig = typeof goldenBuildConfigs.$inferInsert;
export type HostCacheEntry = typeof hostCache.$inferSelect;
export type SnapshotEvent = typeof snapshotEvents.$inferSelect;
export type NewSnapshotEvent = typeof snapshotEvents.$inferInsert;
