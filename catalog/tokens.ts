// API tokens: made, listed, revoked and checked here. A token is 32 random bytes shown once; the catalog keeps only
// its sha256. A fast hash is right for this (bcrypt or scrypt are for passwords a person chose, which are guessable
// and need slowing down): a 256-bit random secret cannot be guessed, so one sha256 lookup per request is as safe and
// lets every request be checked by an indexed equality instead of a slow compare against every row.
import { createHash, randomBytes } from 'node:crypto';
import { and, desc, eq, gt, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { apiTokens, members, type ApiToken } from '../db/access';
import { SnapflowError } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import type { Role } from '../lib/vocabulary';
import { recordAudit } from './audit';
import type { Caller } from './access';

/** Every token starts so, which makes a leaked one easy to find in a log or a repository scan. */
export const TOKEN_PREFIX = 'sft_';
const TOKEN_SHAPE = /^sft_[A-Za-z0-9_-]{43}$/;
/** lastUsedAt is refreshed at most this often: a token used every second does not write every second. */
const LAST_USED_EVERY_MS = 60_000;

export interface TokenView {
  id: string;
  user: string;
  operator: boolean;
  workspace: string | null;
  role: Role | null;
  prefix: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  createdBy: string;
  createdAt: string;
}

/** Who a valid token says is calling. */
export interface TokenIdentity {
  tokenId: string;
  user: string;
  operator: boolean;
  /** When set, the token acts in this workspace only, and with at most `role` there. */
  workspace: string | null;
  role: Role | null;
}

export interface NewToken {
  user: string;
  operator?: boolean;
  workspace?: string;
  role?: Role;
  expiresAt?: Date;
}

const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

const view = (t: ApiToken): TokenView => ({
  id: t.id,
  user: t.userId,
  operator: t.operator,
  workspace: t.workspace,
  role: t.role,
  prefix: t.prefix,
  expiresAt: t.expiresAt?.toISOString() ?? null,
  revokedAt: t.revokedAt?.toISOString() ?? null,
  lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
  createdBy: t.createdBy,
  createdAt: t.createdAt.toISOString(),
});

const denied = (message: string, hint: string): SnapflowError =>
  new SnapflowError({ code: 'PERMISSION_DENIED', field: 'user', message, hint });

/**
 * Operators make tokens for anyone; anyone else only for themselves (narrowed or not), never an operator token.
 * The token is returned here and nowhere else.
 */
export async function createToken(db: Db, caller: Caller, input: NewToken): Promise<{ token: string; record: TokenView }> {
  const isOperator = caller.operators.includes(caller.actor);
  const allowed = isOperator || (caller.actor === input.user && !input.operator);
  await recordAudit(db, {
    workspace: input.workspace ?? SYSTEM_SCOPE,
    actor: caller.actor.slice(0, 200),
    action: 'token.create',
    target: input.user.slice(0, 300),
    decision: allowed ? 'allowed' : 'denied',
    reason: allowed ? (isOperator ? 'as operator' : 'own token') : 'tokens for other users (and operator tokens) are made by operators',
  });
  if (!allowed)
    throw denied(
      `${caller.actor} may not make a token for ${input.user}${input.operator ? ' with operator rights' : ''}`,
      'make your own (`snapflow token create --user <you>`), or ask an operator',
    );
  return insertToken(db, caller.actor, input);
}

async function insertToken(db: Db, createdBy: string, input: NewToken): Promise<{ token: string; record: TokenView }> {
  const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
  const [row] = await db
    .insert(apiTokens)
    .values({
      userId: input.user,
      tokenHash: hashToken(token),
      prefix: token.slice(0, 10),
      operator: input.operator ?? false,
      workspace: input.workspace ?? null,
      role: input.role ?? null,
      expiresAt: input.expiresAt ?? null,
      createdBy,
    })
    .returning();
  return { token, record: view(row!) };
}

/**
 * The first operator token, made with direct database access. Once a live operator token exists, another is made
 * only on the word of one (`authorisedBy`), so whoever reaches the database later cannot quietly mint a second.
 */
export async function bootstrapOperatorToken(
  db: Db,
  input: { user: string; authorisedBy?: string; expiresAt?: Date },
): Promise<{ token: string; record: TokenView }> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('snapflow-operator-bootstrap'))`);
    const [live] = await tx
      .select({ id: apiTokens.id })
      .from(apiTokens)
      .where(
        and(
          eq(apiTokens.operator, true),
          isNull(apiTokens.revokedAt),
          or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, new Date())),
        ),
      )
      .limit(1);
    let createdBy = 'bootstrap';
    if (live) {
      const by = input.authorisedBy ? await authenticateToken(tx as unknown as Db, input.authorisedBy) : null;
      if (!by?.operator)
        throw new SnapflowError({
          code: 'PERMISSION_DENIED',
          field: 'operator',
          message: 'an operator token already exists; the bootstrap runs once',
          hint: 'set SNAPFLOW_TOKEN to a live operator token to make another, or revoke the old one first',
        });
      createdBy = by.user;
    }
    const made = await insertToken(tx as unknown as Db, createdBy, { user: input.user, operator: true, expiresAt: input.expiresAt });
    await recordAudit(tx, {
      workspace: SYSTEM_SCOPE,
      actor: createdBy,
      action: 'token.create',
      target: `${input.user} (operator)`,
      decision: 'allowed',
      reason: live ? 'authorised by an operator token' : 'operator bootstrap',
    });
    return made;
  });
}

/** The identity a token carries, or null when it is unknown, revoked or expired (the caller answers 401 alike). */
export async function authenticateToken(db: Db, token: string): Promise<TokenIdentity | null> {
  if (!TOKEN_SHAPE.test(token)) return null;
  const [row] = await db
    .select()
    .from(apiTokens)
    .where(eq(apiTokens.tokenHash, hashToken(token)));
  if (!row || row.revokedAt || (row.expiresAt && row.expiresAt.getTime() <= Date.now())) return null;
  const stale = new Date(Date.now() - LAST_USED_EVERY_MS);
  await db
    .update(apiTokens)
    .set({ lastUsedAt: new Date() })
    .where(and(eq(apiTokens.id, row.id), or(isNull(apiTokens.lastUsedAt), lt(apiTokens.lastUsedAt, stale))));
  return { tokenId: row.id, user: row.userId, operator: row.operator, workspace: row.workspace, role: row.role };
}

/** Operators see every token; anyone else their own. Newest first; never the token itself. */
export async function listTokens(db: Db, caller: Caller): Promise<TokenView[]> {
  const mine = caller.operators.includes(caller.actor) ? undefined : eq(apiTokens.userId, caller.actor);
  const rows = await db.select().from(apiTokens).where(mine).orderBy(desc(apiTokens.createdAt)).limit(1000);
  return rows.map(view);
}

/** Revoked at once and for good; revoking a revoked token is a no-op that returns it. */
export async function revokeToken(db: Db, caller: Caller, id: string): Promise<TokenView> {
  const [row] = /^[0-9a-f-]{36}$/.test(id) ? await db.select().from(apiTokens).where(eq(apiTokens.id, id)) : [];
  const isOperator = caller.operators.includes(caller.actor);
  if (!row || (!isOperator && row.userId !== caller.actor))
    throw new SnapflowError({
      code: 'NOT_FOUND',
      field: 'id',
      message: `no token ${id.slice(0, 64)}`,
      hint: 'list them: snapflow token list',
    });
  if (row.revokedAt) return view(row);
  const [revoked] = await db.update(apiTokens).set({ revokedAt: new Date() }).where(eq(apiTokens.id, id)).returning();
  await recordAudit(db, {
    workspace: row.workspace ?? SYSTEM_SCOPE,
    actor: caller.actor.slice(0, 200),
    action: 'token.revoke',
    target: `${row.userId} ${row.prefix}`,
    decision: 'allowed',
    reason: isOperator ? 'as operator' : 'own token',
  });
  return view(revoked!);
}

/** The workspaces a user belongs to, with their role in each. */
export async function membershipsOf(db: Db, userId: string): Promise<Array<{ id: string; role: Role }>> {
  const rows = await db
    .select({ id: members.workspace, role: members.role })
    .from(members)
    .where(eq(members.userId, userId))
    .orderBy(members.workspace);
  return rows;
}
