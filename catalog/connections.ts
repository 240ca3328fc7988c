// GitHub connections per workspace. The catalog keeps the installation and its status, never a token.
import { asc, eq } from 'drizzle-orm';
import type { Db, Queryable } from '../db/client';
import { workspaceGithubAccounts } from '../db/access';
import { githubConnections } from '../db/schema';
import { SnapflowError } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import type { GithubConnectionStatus } from '../lib/vocabulary';
import { audited, type Caller } from './access';

export interface ConnectionState {
  workspace: string;
  installationId: number;
  account: string | null;
  status: GithubConnectionStatus;
  validatedAt: string | null;
}

export const connectHint = (workspace: string): string => `run \`snapflow github connect --installation-id <id> --workspace ${workspace}\``;

export async function readConnection(db: Db, workspace: string): Promise<ConnectionState | undefined> {
  const [row] = await db.select().from(githubConnections).where(eq(githubConnections.workspace, workspace));
  return (
    row && {
      workspace,
      installationId: row.installationId,
      account: row.account,
      status: row.status,
      validatedAt: row.validatedAt?.toISOString() ?? null,
    }
  );
}

/** Up-front gate for GHCR images: missing or expired blocks the run with the command to fix it. */
export async function usableConnection(db: Db, workspace: string): Promise<{ installationId: number }> {
  const connection = await readConnection(db, workspace);
  if (!connection || connection.status === 'missing') {
    throw new SnapflowError({
      code: 'GITHUB_CONNECTION_MISSING',
      message: `workspace ${workspace} has no GitHub connection, which images on GHCR need`,
      hint: connectHint(workspace),
    });
  }
  if (connection.status === 'expired') {
    throw new SnapflowError({
      code: 'GITHUB_CONNECTION_EXPIRED',
      message: `the GitHub connection of workspace ${workspace} has expired`,
      hint: `run \`snapflow github reconnect --workspace ${workspace}\``,
    });
  }
  return { installationId: connection.installationId };
}

/** Records a validation's verdict (connected, missing or expired) for the workspace's installation. */
export async function saveConnection(
  db: Db,
  input: { workspace: string; installationId: number; account: string | null; status: GithubConnectionStatus },
): Promise<ConnectionState> {
  const row = { ...input, validatedAt: new Date() };
  await db.insert(githubConnections).values(row).onConflictDoUpdate({ target: githubConnections.workspace, set: row });
  return { ...row, validatedAt: row.validatedAt.toISOString() };
}

export async function setConnectionStatus(db: Db, input: { workspace: string; status: GithubConnectionStatus }): Promise<void> {
  await db.update(githubConnections).set({ status: input.status }).where(eq(githubConnections.workspace, input.workspace));
}

/** The GitHub accounts a workspace may connect installations of (lowercase logins), as operators set them. */
export async function allowedGithubAccounts(db: Pick<Queryable, 'select'>, workspace: string): Promise<string[]> {
  const rows = await db
    .select({ account: workspaceGithubAccounts.account })
    .from(workspaceGithubAccounts)
    .where(eq(workspaceGithubAccounts.workspace, workspace))
    .orderBy(asc(workspaceGithubAccounts.account));
  return rows.map((r) => r.account);
}

/** Operators only: replaces the workspace's allowed accounts (lowercase logins; an empty list allows none). */
export async function setAllowedGithubAccounts(
  db: Db,
  caller: Caller,
  input: { workspace: string; accounts: string[] },
): Promise<string[]> {
  const { workspace, accounts } = input;
  return audited(
    db,
    caller,
    SYSTEM_SCOPE,
    'workspace.manage',
    `${workspace} github accounts ${accounts.join(',') || '(none)'}`,
    async (tx) => {
      await tx.delete(workspaceGithubAccounts).where(eq(workspaceGithubAccounts.workspace, workspace));
      if (accounts.length) await tx.insert(workspaceGithubAccounts).values(accounts.map((account) => ({ workspace, account })));
      return allowedGithubAccounts(tx, workspace);
    },
  );
}

/** GITHUB_ACCOUNT_MISMATCH unless the installation's account is one the workspace may use. */
export async function requireAllowedAccount(
  db: Db,
  input: { workspace: string; installationId: number; account: string | null },
): Promise<void> {
  const allowed = await allowedGithubAccounts(db, input.workspace);
  if (input.account && allowed.includes(input.account.toLowerCase())) return;
  throw new SnapflowError({
    code: 'GITHUB_ACCOUNT_MISMATCH',
    field: 'installationId',
    message: `GitHub installation ${input.installationId} belongs to ${input.account ?? 'an unknown account'}, which workspace ${input.workspace} may not use`,
    hint: allowed.length
      ? `connect an installation of ${allowed.join(', ')}, or ask an operator to run \`snapflow workspace github-accounts ${input.workspace} --allow <account>\``
      : `an operator allows an account first: \`snapflow workspace github-accounts ${input.workspace} --allow <account>\``,
  });
}
