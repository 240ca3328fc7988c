// GitHub connections per workspace. The catalog keeps the installation and its status, never a token:
// validation mints one through the App and throws it away.
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { githubConnections, type GithubConnectionStatus } from '../db/schema';
import { SnapflowError, toNonRetryableFailure } from '../lib/errors';
import type { GithubTokens } from './githubTokens';

export interface ConnectionDeps {
  db: Db;
  tokens: GithubTokens;
}

export interface ConnectionState {
  scope: string;
  installationId: number;
  account: string | null;
  status: GithubConnectionStatus;
  validatedAt: string | null;
}

const fix = (scope: string): string => `run \`snapflow github connect --installation-id <id> --workspace ${scope}\``;

export function createConnectionActivities(deps: ConnectionDeps) {
  const { db } = deps;

  async function read(scope: string): Promise<ConnectionState | undefined> {
    const [row] = await db.select().from(githubConnections).where(eq(githubConnections.scope, scope));
    return row && { scope, installationId: row.installationId, account: row.account, status: row.status, validatedAt: row.validatedAt?.toISOString() ?? null };
  }

  /** Asks GitHub about the installation and records the verdict; connected only if a token could be minted. */
  async function validate(scope: string, installationId: number): Promise<ConnectionState> {
    let status: GithubConnectionStatus = 'connected';
    let account: string | null = null;
    let problem: SnapflowError | undefined;
    try {
      account = (await deps.tokens.checkInstallation(installationId)).account;
      await deps.tokens.registryCredentials(installationId); // proves a token can be minted; it is discarded
    } catch (err) {
      if (!(err instanceof SnapflowError)) throw err; // GitHub unreachable: retry, record nothing
      // Our App is missing or misconfigured: that says nothing about the installation, so record nothing.
      if (err.code === 'GITHUB_APP_NOT_CONFIGURED') throw toNonRetryableFailure(err);
      problem = err;
      status = err.code === 'GITHUB_CONNECTION_MISSING' ? 'missing' : 'expired';
    }
    const row = { scope, installationId, account, status, validatedAt: new Date() };
    await db.insert(githubConnections).values(row).onConflictDoUpdate({ target: githubConnections.scope, set: row });
    if (problem) throw toNonRetryableFailure(problem);
    return { ...row, validatedAt: row.validatedAt.toISOString() };
  }

  return {
    async getGithubConnection(input: { scope: string }): Promise<ConnectionState | null> {
      return (await read(input.scope)) ?? null;
    },

    /** Up-front gate for GHCR images: missing or expired blocks the run with the command to fix it. */
    async requireGithubConnection(input: { scope: string }): Promise<{ installationId: number }> {
      const connection = await read(input.scope);
      if (!connection || connection.status === 'missing') {
        throw toNonRetryableFailure(new SnapflowError({ code: 'GITHUB_CONNECTION_MISSING', message: `workspace ${input.scope} has no GitHub connection, which images on GHCR need`, hint: fix(input.scope) }));
      }
      if (connection.status === 'expired') {
        throw toNonRetryableFailure(new SnapflowError({ code: 'GITHUB_CONNECTION_EXPIRED', message: `the GitHub connection of workspace ${input.scope} has expired`, hint: `run \`snapflow github reconnect --workspace ${input.scope}\`` }));
      }
      return { installationId: connection.installationId };
    },

    async markGithubConnection(input: { scope: string; status: GithubConnectionStatus }): Promise<void> {
      await db.update(githubConnections).set({ status: input.status }).where(eq(githubConnections.scope, input.scope));
    },

    /** connect: validate a new installation id, then store it; reconnect/validate: re-check the stored one. */
    async validateGithubConnection(input: { scope: string; installationId?: number }): Promise<ConnectionState> {
      const installationId = input.installationId ?? (await read(input.scope))?.installationId;
      if (installationId === undefined) {
        throw toNonRetryableFailure(new SnapflowError({ code: 'GITHUB_CONNECTION_MISSING', message: `workspace ${input.scope} has no GitHub connection to validate`, hint: fix(input.scope) }));
      }
      return validate(input.scope, installationId);
    },
  };
}

export type ConnectionActivities = ReturnType<typeof createConnectionActivities>;
