// Who may do what: workspaces with a plan, their members with a role, agents pointing at a snapshot,
// and the audit trail of every decision. Kept apart from db/schema.ts (the snapshot catalog) by concern.
import { sql } from 'drizzle-orm';
import {
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
  uuid,
} from 'drizzle-orm/pg-core';
import { RESERVED_WORKSPACE_IDS } from '../lib/ids';
import { NAME_PATTERN, SLUG_PATTERN } from '../lib/validation/slugs';
import { DECISIONS, PLANS, ROLES } from '../lib/vocabulary';
import { snapshots } from './schema';

export const plan = pgEnum('plan', PLANS);
export const role = pgEnum('member_role', ROLES);
export const decision = pgEnum('audit_decision', DECISIONS);

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();

export const workspaces = pgTable(
  'workspaces',
  {
    /** The same slug snapshots, sandboxes and configs use as their workspace. */
    id: text('id').primaryKey(),
    plan: plan('plan').notNull().default('free'),
    /** Sandbox defaults; null: the built-in ones (15 minutes idle, 24 hours of life). */
    sandboxIdleTimeoutSeconds: integer('sandbox_idle_timeout_seconds'),
    sandboxMaxLifetimeSeconds: integer('sandbox_max_lifetime_seconds'),
    createdAt: createdAt(),
  },
  // Not `system`, nor a name snapshot storage uses for its own repositories (`snapflow/golden/…`, `snapflow/sessions/…`).
  (t) => [
    check(
      'workspaces_id_slug',
      sql`${t.id} ~ ${sql.raw(`'${SLUG_PATTERN}'`)} AND ${t.id} NOT IN (${sql.raw(RESERVED_WORKSPACE_IDS.map((id) => `'${id}'`).join(', '))})`,
    ),
    check('workspaces_sandbox_idle_timeout_positive', sql`${t.sandboxIdleTimeoutSeconds} > 0`),
    check('workspaces_sandbox_max_lifetime_positive', sql`${t.sandboxMaxLifetimeSeconds} > 0`),
  ],
);

export const members = pgTable(
  'members',
  {
    workspace: text('workspace')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    userId: text('user_id').notNull(),
    role: role('role').notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ name: 'members_pkey', columns: [t.workspace, t.userId] }), index('members_user_idx').on(t.userId)],
);

/**
 * The GitHub accounts (user or organisation logins, lowercase) whose App installations a workspace may connect.
 * Set by operators; a connect or validate of any other account's installation is refused.
 */
export const workspaceGithubAccounts = pgTable(
  'workspace_github_accounts',
  {
    workspace: text('workspace').notNull(),
    account: text('account').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ name: 'workspace_github_accounts_pkey', columns: [t.workspace, t.account] }),
    check('workspace_github_accounts_lowercase', sql`${t.account} = lower(${t.account})`),
  ],
);

/** An agent runs on one snapshot; a rollout moves agents, remembering where each came from. */
export const agents = pgTable(
  'agents',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    workspace: text('workspace')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    snapshotId: uuid('snapshot_id')
      .notNull()
      .references(() => snapshots.id),
    previousSnapshotId: uuid('previous_snapshot_id').references(() => snapshots.id),
    /** What a canary of this agent runs to prove it healthy (argv); null: only the entrypoint staying up and `true`. */
    healthCommand: jsonb('health_command').$type<string[]>(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    createdAt: createdAt(),
  },
  (t) => [
    unique('agents_workspace_name_key').on(t.workspace, t.name),
    check('agents_name_slug', sql`${t.name} ~ ${sql.raw(`'${NAME_PATTERN}'`)}`),
    check('agents_health_command_array', sql`${t.healthCommand} IS NULL OR jsonb_typeof(${t.healthCommand}) = 'array'`),
    index('agents_snapshot_idx').on(t.snapshotId),
  ],
);

/** Every authorization decision and the change it allowed: who, what, on what, when, from which run. */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    workspace: text('workspace').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    target: text('target'),
    decision: decision('decision').notNull(),
    reason: text('reason'),
    workflowId: text('workflow_id'),
    runId: text('run_id'),
    createdAt: createdAt(),
  },
  (t) => [index('audit_events_scope_idx').on(t.workspace, t.id.desc())],
);

/**
 * API tokens: each names its user, optionally narrowed to one workspace and a role there, with an expiry. Only the
 * sha256 of the token is stored (it is shown once); revoked and expired tokens stay as rows for the audit trail.
 */
export const apiTokens = pgTable(
  'api_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: text('user_id').notNull(),
    /** hex sha256 of the whole token. */
    tokenHash: text('token_hash').notNull(),
    /** The token's first characters, to tell tokens apart in a list (not enough to use one). */
    prefix: text('prefix').notNull(),
    /** Made by the operator bootstrap (or by an operator for an operator): acts as an operator. */
    operator: boolean('operator').notNull().default(false),
    workspace: text('workspace').references(() => workspaces.id, { onDelete: 'cascade' }),
    role: role('role'),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    createdBy: text('created_by').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    unique('api_tokens_hash_key').on(t.tokenHash),
    index('api_tokens_user_idx').on(t.userId),
    check('api_tokens_role_needs_workspace', sql`${t.role} IS NULL OR ${t.workspace} IS NOT NULL`),
    check('api_tokens_operator_unscoped', sql`NOT ${t.operator} OR ${t.workspace} IS NULL`),
  ],
);

export type Workspace = typeof workspaces.$inferSelect;
export type WorkspaceGithubAccount = typeof workspaceGithubAccounts.$inferSelect;
export type Member = typeof members.$inferSelect;
export type Agent = typeof agents.$inferSelect;
export type AuditEvent = typeof auditEvents.$inferSelect;
export type ApiToken = typeof apiTokens.$inferSelect;
