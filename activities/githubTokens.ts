// GitHub installation tokens, minted inside activities from the App and handed straight to a registry
// client: never stored, never returned into workflow history, never in an error message.
import type { App } from '@octokit/app';
import { SnapflowError } from '../lib/errors';

export interface InstallationCheck {
  account: string | null;
}

export interface RegistryToken {
  /** GHCR takes any username with an installation token; this is the one GitHub documents. */
  username: 'x-access-token';
  password: string;
  expiresAt: string;
}

export interface GithubTokens {
  checkInstallation(installationId: number): Promise<InstallationCheck>;
  registryCredentials(installationId: number): Promise<RegistryToken>;
}

const connectHint = (id: number): string =>
  `run \`snapflow github connect --installation-id ${id}\` with the current installation id (or \`snapflow github reconnect\`)`;

function notConfigured(): SnapflowError {
  return new SnapflowError({
    code: 'GITHUB_APP_NOT_CONFIGURED',
    message: 'no GitHub App is configured, so GitHub installations cannot be checked or GHCR tokens minted',
    hint: 'set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (and GITHUB_API_URL for GitHub Enterprise)',
  });
}

/**
 * GitHub's answer as one of our codes. 401 on an /app route means the App JWT itself was refused (wrong
 * key or app id); 404 the installation is gone; 403 "suspended" it is disabled. Anything else (GitHub
 * unreachable, 5xx, rate limits) stays a plain Error so the activity retries. Only GitHub's message is
 * quoted: request errors carry headers, and a token or JWT must never reach a message.
 */
function classify(err: unknown, installationId: number, what: string): Error {
  const status = (err as { status?: number }).status;
  const said = err instanceof Error ? err.message.replace(/ - https:\/\/docs\.github\.com\S*/, '') : String(err);
  if (status === 401) {
    return new SnapflowError({
      code: 'GITHUB_APP_NOT_CONFIGURED',
      message: `GitHub rejected the app's credentials while trying to ${what} (${said})`,
      hint: 'check that GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY belong to the same GitHub App, and that the server clock is right',
    });
  }
  if (status === 404) {
    return new SnapflowError({
      code: 'GITHUB_CONNECTION_MISSING',
      message: `GitHub installation ${installationId} not found — was the app uninstalled?`,
      hint: connectHint(installationId),
    });
  }
  if (status === 403 && /suspend/i.test(said)) return suspended(installationId);
  // Octokit reports a failed connection as status 500; the origin says which endpoint (GITHUB_API_URL) was tried.
  const url = (err as { request?: { url?: string } }).request?.url;
  const at = url ? ` at ${new URL(url).origin}` : '';
  return new Error(
    `GitHub API${at} could not ${what} for installation ${installationId}${status && status !== 500 ? ` (HTTP ${status})` : ''}: ${said}`,
  );
}

function suspended(installationId: number, account?: string | null): SnapflowError {
  return new SnapflowError({
    code: 'GITHUB_CONNECTION_EXPIRED',
    message: `GitHub installation ${installationId}${account ? ` (${account})` : ''} is suspended`,
    hint: `unsuspend the app in the GitHub account's settings, then run \`snapflow github reconnect\``,
  });
}

export function createGithubTokens(app: App | undefined): GithubTokens {
  return {
    /** The installation exists and is usable; suspended counts as expired, as a token could not be minted. */
    async checkInstallation(installationId) {
      if (!app) throw notConfigured();
      const found = await app.octokit
        .request('GET /app/installations/{installation_id}', { installation_id: installationId })
        .catch((err: unknown) => {
          throw classify(err, installationId, 'look up the installation');
        });
      // Users and organisations have a login; an enterprise installation only a slug.
      const owner = found.data.account;
      const account = (owner && ('login' in owner ? owner.login : owner.slug)) ?? null;
      if (found.data.suspended_at) throw suspended(installationId, account);
      return { account };
    },

    /**
     * A fresh token per call, deliberately uncached: minting is what tells us the installation still
     * works (GitHub refuses suspended ones), and a cached token would keep opening a registry after that.
     * The direct POST returns the token and its expiry plainly, without auth-app's hidden hour-long cache.
     */
    async registryCredentials(installationId) {
      if (!app) throw notConfigured();
      try {
        // The narrowest token that pulls a package: nothing else the installation may do is handed to a registry.
        const { data } = await app.octokit.request('POST /app/installations/{installation_id}/access_tokens', {
          installation_id: installationId,
          permissions: { packages: 'read' },
        });
        return { username: 'x-access-token', password: data.token, expiresAt: data.expires_at };
      } catch (err) {
        throw classify(err, installationId, 'mint an installation token');
      }
    },
  };
}
