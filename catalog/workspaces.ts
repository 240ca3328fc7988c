// Workspaces, their plan and their members. Each change is decided and audited here, in the transaction that makes
// it (catalog/access.ts `audited`), whoever calls it; a workspace always keeps one admin.
import { and, eq, inArray } from 'drizzle-orm';
import type { Db, Queryable } from '../db/client';
import { members, workspaces, type Member, type Workspace } from '../db/access';
import { SnapflowError } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import type { Plan, Role } from '../lib/vocabulary';
import { audited, type Caller } from './access';

export type { Member, Workspace } from '../db/access';

/** A workspace always keeps one admin: the admins' rows are locked so two concurrent removals cannot both pass. */
async function keepAnAdmin(tx: Pick<Queryable, 'select'>, workspace: string, userId: string, verb: 'remove' | 'demote'): Promise<void> {
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

/** Operators only: a new workspace with its first admin; CONFLICT when the id is taken. */
export async function createWorkspace(db: Db, caller: Caller, input: { id: string; plan: Plan; admin: string }): Promise<Workspace> {
  return audited(db, caller, SYSTEM_SCOPE, 'workspace.manage', `create ${input.id}`, async (tx) => {
    const [row] = await tx.insert(workspaces).values({ id: input.id, plan: input.plan }).onConflictDoNothing().returning();
    if (!row)
      throw new SnapflowError({
        code: 'CONFLICT',
        field: 'workspace',
        message: `workspace ${input.id} already exists`,
        hint: 'choose another id, or add members to it',
      });
    await tx.insert(members).values({ workspace: input.id, userId: input.admin, role: 'admin' });
    return row;
  });
}

/** Operators only: free ↔ paid. */
export async function setWorkspacePlan(db: Db, caller: Caller, input: { id: string; plan: Plan }): Promise<Workspace> {
  return audited(db, caller, SYSTEM_SCOPE, 'workspace.manage', `${input.id} plan ${input.plan}`, async (tx) => {
    const [row] = await tx.update(workspaces).set({ plan: input.plan }).where(eq(workspaces.id, input.id)).returning();
    if (!row) throw new SnapflowError({ code: 'NOT_FOUND', field: 'workspace', message: `no workspace ${input.id}` });
    return row;
  });
}

/** Every workspace, by id (what operators see). */
export async function allWorkspaces(db: Db): Promise<Workspace[]> {
  return db.select().from(workspaces).orderBy(workspaces.id);
}

/** The workspaces a user is a member of, by id. */
export async function workspacesOf(db: Db, userId: string): Promise<Workspace[]> {
  const mine = (await db.select({ id: members.workspace }).from(members).where(eq(members.userId, userId))).map((m) => m.id);
  return mine.length ? db.select().from(workspaces).where(inArray(workspaces.id, mine)).orderBy(workspaces.id) : [];
}

/** The workspace's admins: adds a member or changes their role; demoting the last admin is a CONFLICT. */
export async function saveMember(db: Db, caller: Caller, input: { workspace: string; userId: string; role: Role }): Promise<Member> {
  const { workspace, userId, role } = input;
  return audited(db, caller, workspace, 'workspace.manage', `${userId} as ${role}`, async (tx) => {
    if (role !== 'admin') await keepAnAdmin(tx, workspace, userId, 'demote');
    const [row] = await tx
      .insert(members)
      .values({ workspace, userId, role })
      .onConflictDoUpdate({ target: [members.workspace, members.userId], set: { role } })
      .returning();
    return row!;
  });
}

/** The workspace's admins: removing the last admin is a CONFLICT; someone who is not a member is NOT_FOUND. */
export async function deleteMember(db: Db, caller: Caller, input: { workspace: string; userId: string }): Promise<void> {
  const { workspace, userId } = input;
  await audited(db, caller, workspace, 'workspace.manage', `remove ${userId}`, async (tx) => {
    await keepAnAdmin(tx, workspace, userId, 'remove');
    const gone = await tx
      .delete(members)
      .where(and(eq(members.workspace, workspace), eq(members.userId, userId)))
      .returning();
    if (gone.length === 0)
      throw new SnapflowError({ code: 'NOT_FOUND', field: 'user', message: `${userId} is not a member of ${workspace}` });
  });
}

export async function listMembers(db: Db, workspace: string): Promise<Member[]> {
  return db.select().from(members).where(eq(members.workspace, workspace)).orderBy(members.userId);
}

/**
 * The workspace's admins: its sandbox defaults, in seconds; `null` goes back to the built-in default, absent leaves
 * it. NOT_FOUND when it does not exist.
 */
export async function setSandboxDefaults(
  db: Db,
  caller: Caller,
  input: { id: string; sandboxIdleTimeoutSeconds?: number | null; sandboxMaxLifetimeSeconds?: number | null },
): Promise<Workspace> {
  const { id, ...set } = input;
  return audited(db, caller, id, 'workspace.manage', `${id} sandbox defaults`, async (tx) => {
    const [row] = await tx.update(workspaces).set(set).where(eq(workspaces.id, id)).returning();
    if (!row) throw new SnapflowError({ code: 'NOT_FOUND', field: 'workspace', message: `no workspace ${id}` });
    return row;
  });
}

/** How long a workspace's sandboxes may sit idle and live (seconds), when its admins said so; the system workspace has none. */
export async function sandboxDefaults(
  db: Pick<Queryable, 'select'>,
  workspace: string,
): Promise<{ idleTimeoutSeconds: number | null; maxLifetimeSeconds: number | null }> {
  const [row] = await db
    .select({ idleTimeoutSeconds: workspaces.sandboxIdleTimeoutSeconds, maxLifetimeSeconds: workspaces.sandboxMaxLifetimeSeconds })
    .from(workspaces)
    .where(eq(workspaces.id, workspace));
  return row ?? { idleTimeoutSeconds: null, maxLifetimeSeconds: null };
}
