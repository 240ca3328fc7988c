// Workspaces, their plan and their members. Operators create workspaces and set plans; a workspace's admins
// manage its members. Each change is decided and audited like any other (client/access.ts).
import { and, desc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/client';
import { auditEvents, members, workspaces, type AuditEvent, type Member, type Workspace } from '../db/access';
import { PLANS, ROLES, type Plan, type Role } from '../lib/vocabulary';
import type { Config } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import { checkSandboxDuration, screenText, validateField, validationError } from '../lib/validation';
import { audited, requireAccess } from './access';

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

  /**
   * A workspace's sandbox defaults (its admins): how long a sandbox may sit idle and live. `null` goes back to the
   * built-in default (15 minutes, 24 hours); a sandbox's own --idle-timeout / --max-lifetime still wins.
   */
  async setDefaults(input: { id: string; idleTimeout?: string | number | null; maxLifetime?: string | number | null }): Promise<Workspace> {
    const id = checkWorkspaceSlug(input.id);
    const seconds = (field: 'idleTimeout' | 'maxLifetime', v: string | number | null | undefined) =>
      v === null ? null : v === undefined ? undefined : Math.max(1, Math.round(checkSandboxDuration(field, v)! / 1000));
    const set = {
      sandboxIdleTimeoutSeconds: seconds('idleTimeout', input.idleTimeout),
      sandboxMaxLifetimeSeconds: seconds('maxLifetime', input.maxLifetime),
    };
    return audited(this.db, this.config, id, 'workspace.manage', `${id} sandbox defaults`, async (tx) => {
      const [row] = await tx.update(workspaces).set(set).where(eq(workspaces.id, id)).returning();
      if (!row) throw new SnapflowError({ code: 'NOT_FOUND', field: 'workspace', message: `no workspace ${id}` });
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
