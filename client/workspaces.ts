// Workspaces, their plan and their members. Operators create workspaces and set plans; a workspace's admins
// manage its members. Each change is decided and audited like any other (client/access.ts).
import { and, desc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/client';
import { auditEvents, members, workspaces, type AuditEvent, type Member, type Workspace } from '../db/access';
import { PLANS, ROLES, type Plan, type Role } from '../lib/vocabulary';
import type { Config } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import { screenText, validateField, validationError } from '../lib/validation';
import { audited, requireAccess } from './access';
import { allowedGithubAccounts, replaceAllowedGithubAccounts } from '../catalog/connections';

const USER = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
const user = (field: string, value: unknown): string => {
  const v = screenText(field, value, 'a user id: letters, digits, ".", "_", "@" or "-", e.g. alice@example.com', 128);
  if (!USER.test(v))
    throw validationError(field, `${field} is not a user id`, 'letters, digits, ".", "_", "@" or "-", e.g. alice@example.com');
  return v;
};
const oneOf = <T extends string>(field: string, value: unknown, allowed: readonly T[]): T => {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw validationError(field, `${field} must be one of ${allowed.join(', ')}`, `e.g. --${field} ${allowed[0]}`);
  return value as T;
};
const checkWorkspaceSlug = (value: unknown): string => {
  const id = validateField('workspace', value);
  if (id === SYSTEM_SCOPE)
    throw validationError('workspace', `"${SYSTEM_SCOPE}" is the operators' workspace, not a workspace`, 'choose another id, e.g. acme');
  return id;
};

/** A GitHub user or organisation login (enterprise slugs follow the same rule); compared lowercase, as GitHub does. */
const GITHUB_LOGIN = /^[a-z0-9](?:[a-z0-9-]{0,38})$/;
const githubAccount = (value: unknown): string => {
  const v = screenText('allow', value, 'a GitHub user or organisation login, e.g. acme-org', 39).toLowerCase();
  if (!GITHUB_LOGIN.test(v))
    throw validationError('allow', `${JSON.stringify(v.slice(0, 40))} is not a GitHub login`, 'letters, digits and "-", e.g. acme-org');
  return v;
};

/** A workspace always keeps one admin: the admins' rows are locked so two concurrent removals cannot both pass. */
async function keepAnAdmin(tx: Pick<Db, 'select'>, workspace: string, userId: string, verb: 'remove' | 'demote'): Promise<void> {
  const admins = await tx
    .select({ userId: members.userId })
    .from(members)
    .where(and(eq(members.workspace, workspace), eq(members.role, 'admin')))
    .for('update');
  if (admins.length === 1 && admins[0]!.userId === userId) {
    throw new SnapflowError({
      code: 'CONFLICT',
      field: 'user',
      message: `${userId} is the last admin of ${workspace}; cannot ${verb} them`,
      hint: `make someone else admin first: snapflow member add <user> --role admin --workspace ${workspace}`,
    });
  }
}

export class WorkspaceClient {
  constructor(
    private readonly db: Db,
    private readonly config: Config,
  ) {}

  /** Operators only: a workspace with its first admin. */
  async create(input: { id: string; plan?: string; admin: string }): Promise<Workspace> {
    const id = checkWorkspaceSlug(input.id);
    const plan = oneOf<Plan>('plan', input.plan === undefined ? 'free' : input.plan, PLANS);
    const admin = user('admin', input.admin);
    return audited(this.db, this.config, SYSTEM_SCOPE, 'workspace.manage', `create ${id}`, async (tx) => {
      const [row] = await tx.insert(workspaces).values({ id, plan }).onConflictDoNothing().returning();
      if (!row)
        throw new SnapflowError({
          code: 'CONFLICT',
          field: 'workspace',
          message: `workspace ${id} already exists`,
          hint: 'choose another id, or add members to it',
        });
      await tx.insert(members).values({ workspace: id, userId: admin, role: 'admin' });
      return row;
    });
  }

  /** Operators only: free ↔ paid. */
  async setPlan(input: { id: string; plan: string }): Promise<Workspace> {
    const id = checkWorkspaceSlug(input.id);
    const plan = oneOf<Plan>('plan', input.plan, PLANS);
    return audited(this.db, this.config, SYSTEM_SCOPE, 'workspace.manage', `${id} plan ${plan}`, async (tx) => {
      const [row] = await tx.update(workspaces).set({ plan }).where(eq(workspaces.id, id)).returning();
      if (!row) throw new SnapflowError({ code: 'NOT_FOUND', field: 'workspace', message: `no workspace ${id}` });
      return row;
    });
  }

  /** Operators see every workspace; anyone else the ones they belong to. */
  async list(): Promise<Workspace[]> {
    if (this.config.operators.includes(this.config.actor)) return this.db.select().from(workspaces).orderBy(workspaces.id);
    const mine = (await this.db.select({ id: members.workspace }).from(members).where(eq(members.userId, this.config.actor))).map(
      (m) => m.id,
    );
    return mine.length ? this.db.select().from(workspaces).where(inArray(workspaces.id, mine)).orderBy(workspaces.id) : [];
  }

  async addMember(input: { workspace: string; user: string; role?: string }): Promise<Member> {
    const workspace = checkWorkspaceSlug(input.workspace);
    const userId = user('user', input.user);
    const role = oneOf<Role>('role', input.role === undefined ? 'member' : input.role, ROLES);
    return audited(this.db, this.config, workspace, 'workspace.manage', `${userId} as ${role}`, async (tx) => {
      if (role !== 'admin') await keepAnAdmin(tx, workspace, userId, 'demote');
      const [row] = await tx
        .insert(members)
        .values({ workspace: workspace, userId, role })
        .onConflictDoUpdate({ target: [members.workspace, members.userId], set: { role } })
        .returning();
      return row!;
    });
  }

  async removeMember(input: { workspace: string; user: string }): Promise<void> {
    const workspace = checkWorkspaceSlug(input.workspace);
    const userId = user('user', input.user);
    await audited(this.db, this.config, workspace, 'workspace.manage', `remove ${userId}`, async (tx) => {
      await keepAnAdmin(tx, workspace, userId, 'remove');
      const gone = await tx
        .delete(members)
        .where(and(eq(members.workspace, workspace), eq(members.userId, userId)))
        .returning();
      if (gone.length === 0)
        throw new SnapflowError({ code: 'NOT_FOUND', field: 'user', message: `${userId} is not a member of ${workspace}` });
    });
  }

  async members(workspace: string): Promise<Member[]> {
    workspace = checkWorkspaceSlug(workspace);
    await requireAccess(this.db, this.config, workspace, 'snapshot.read');
    return this.db.select().from(members).where(eq(members.workspace, workspace)).orderBy(members.userId);
  }

  /**
   * Operators only: the GitHub accounts whose App installations the workspace may connect (replaces the list; an
   * empty list allows none). `snapflow github connect` of any other account's installation is GITHUB_ACCOUNT_MISMATCH.
   */
  async setGithubAccounts(input: { id: string; allow: string[] }): Promise<{ workspace: string; accounts: string[] }> {
    const id = checkWorkspaceSlug(input.id);
    if (!Array.isArray(input.allow))
      throw validationError('allow', 'allow must be a list of GitHub logins', 'repeat --allow once per account, e.g. --allow acme-org');
    if (input.allow.length > 20)
      throw validationError('allow', `${input.allow.length} accounts; at most 20 are allowed`, 'list the accounts the workspace uses');
    const accounts = [...new Set(input.allow.map(githubAccount))];
    const stored = await audited(
      this.db,
      this.config,
      SYSTEM_SCOPE,
      'workspace.manage',
      `${id} github accounts ${accounts.join(',') || '(none)'}`,
      (tx) => replaceAllowedGithubAccounts(tx, id, accounts),
    );
    return { workspace: id, accounts: stored };
  }

  /** The GitHub accounts the workspace may connect (members may read them). */
  async githubAccounts(workspace: string): Promise<{ workspace: string; accounts: string[] }> {
    workspace = checkWorkspaceSlug(workspace);
    await requireAccess(this.db, this.config, workspace, 'snapshot.read');
    return { workspace, accounts: await allowedGithubAccounts(this.db, workspace) };
  }

  /** Who did what in the workspace, newest first (admins). */
  async audit(workspace: string, limit = 50): Promise<AuditEvent[]> {
    workspace = validateField('workspace', workspace);
    await requireAccess(this.db, this.config, workspace, 'workspace.manage');
    return this.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.workspace, workspace))
      .orderBy(desc(auditEvents.id))
      .limit(Math.min(Math.max(1, limit), 500));
  }
}
