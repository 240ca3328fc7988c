// GitHub connections per workspace. The catalog keeps the installation and its status, never a token:
// validation mints one through the App and throws it away.
import {
  connectHint,
  readConnection,
  requireAllowedAccount,
  saveConnection,
  setConnectionStatus,
  usableConnection,
  type ConnectionState,
} from '../catalog/connections';
import type { Db } from '../db/client';
import { SnapflowError } from '../lib/errors';
import type { GithubConnectionStatus } from '../lib/vocabulary';
import { boundary, writeOnce } from './boundary';
import type { GithubTokens } from './githubTokens';

export type { ConnectionState } from '../catalog/connections';

export interface ConnectionDeps {
  db: Db;
  tokens: GithubTokens;
}

export function createConnectionActivities(deps: ConnectionDeps) {
  const { db } = deps;

  /** Asks GitHub about the installation and records the verdict; connected only if a token could be minted. */
  async function validate(workspace: string, installationId: number): Promise<ConnectionState> {
    let status: GithubConnectionStatus = 'connected';
    let account: string | null = null;
    let problem: SnapflowError | undefined;
    try {
      account = (await deps.tokens.checkInstallation(installationId)).account;
      // Another organisation's installation is refused before a token is minted or anything is recorded.
      await requireAllowedAccount(db, { workspace, installationId, account });
      await deps.tokens.registryCredentials(installationId); // proves a token can be minted; it is discarded
    } catch (err) {
      if (!(err instanceof SnapflowError)) throw err; // GitHub unreachable: retry, record nothing
      // Our App is missing or misconfigured: that says nothing about the installation, so record nothing.
      if (err.code === 'GITHUB_APP_NOT_CONFIGURED' || err.code === 'GITHUB_ACCOUNT_MISMATCH') throw err;
      problem = err;
      status = err.code === 'GITHUB_CONNECTION_MISSING' ? 'missing' : 'expired';
    }
    const state = await saveConnection(db, { workspace, installationId, account, status });
    if (problem) throw problem;
    return state;
  }

  return {
    async getGithubConnection(input: { workspace: string }): Promise<ConnectionState | null> {
      return boundary(async () => (await readConnection(db, input.workspace)) ?? null);
    },

    /** Up-front gate for GHCR images: missing or expired blocks the run with the command to fix it. */
    async requireGithubConnection(input: { workspace: string }): Promise<{ installationId: number }> {
      return boundary(async () => {
        const usable = await usableConnection(db, input.workspace);
        // An account an operator no longer allows stops opening images at once, not at the next validate.
        const stored = await readConnection(db, input.workspace);
        await requireAllowedAccount(db, {
          workspace: input.workspace,
          installationId: usable.installationId,
          account: stored?.account ?? null,
        });
        return usable;
      });
    },

    async markGithubConnection(input: { workspace: string; status: GithubConnectionStatus }): Promise<void> {
      return writeOnce(db, (tx) => setConnectionStatus(tx, input));
    },

    /** connect: validate a new installation id, then store it; reconnect/validate: re-check the stored one. */
    async validateGithubConnection(input: { workspace: string; installationId?: number }): Promise<ConnectionState> {
      return boundary(async () => {
        const installationId = input.installationId ?? (await readConnection(db, input.workspace))?.installationId;
        if (installationId === undefined) {
          throw new SnapflowError({
            code: 'GITHUB_CONNECTION_MISSING',
            message: `workspace ${input.workspace} has no GitHub connection to validate`,
            hint: connectHint(input.workspace),
          });
        }
        return validate(input.workspace, installationId);
      });
    },
  };
}

export type ConnectionActivities = ReturnType<typeof createConnectionActivities>;
