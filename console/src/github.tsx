// The workspace's GitHub connection (private GHCR images): connected / expired / missing, validate, reconnect,
// and connect with an installation id when there is none.
import { useState } from 'preact/hooks';
import { ApiError, get, path, post } from './api';
import { useLive } from './live';
import { useSession } from './session';
import { ProblemView, When } from './ui';

interface Connection {
  status: 'connected' | 'expired' | 'missing';
  installationId?: number;
  account?: string | null;
  validatedAt?: string | null;
}

/** GET …/github: the connection, `{ status: 'missing' }`, null, or a 404 when none was ever made. */
async function readConnection(workspace: string): Promise<Connection> {
  try {
    const answer = await get<Connection | { connection: Connection | null } | null>(path('workspaces', workspace, 'github'));
    const c = answer && 'connection' in answer ? answer.connection : answer;
    return c ?? { status: 'missing' };
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.code === 'GITHUB_CONNECTION_MISSING')) return { status: 'missing' };
    throw err;
  }
}

export function GithubPanel() {
  const { workspace, isAdmin } = useSession();
  const live = useLive(() => readConnection(workspace), [workspace], 5000);
  const [busy, setBusy] = useState<string | null>(null);
  const [problem, setProblem] = useState<ApiError | null>(null);
  const [installation, setInstallation] = useState('');
  const c = live.data;

  const act = async (action: 'validate' | 'reconnect' | 'connect') => {
    setBusy(action);
    setProblem(null);
    try {
      const body = action === 'connect' ? { installationId: Number(installation) } : {};
      await post(path('workspaces', workspace, 'github', action), body);
    } catch (err) {
      setProblem(err as ApiError);
    } finally {
      setBusy(null);
      live.reload();
    }
  };

  return (
    <section class="panel" aria-labelledby="github-heading">
      <h2 id="github-heading">GitHub connection</h2>
      <ProblemView problem={live.error} />
      {c ? (
        <div class="github-row">
          <span class={`badge badge-${c.status}`} data-testid="github-status" aria-label={`GitHub connection ${c.status}`}>
            {c.status}
          </span>
          {c.account ? <span>account {c.account}</span> : null}
          {c.installationId ? <span class="muted">installation {c.installationId}</span> : null}
          {c.validatedAt ? (
            <span class="muted">
              validated <When at={c.validatedAt} />
            </span>
          ) : null}
          {c.status === 'missing' ? (
            <span class="muted">Private GHCR images need a GitHub App installation.</span>
          ) : isAdmin ? (
            <>
              <button type="button" disabled={busy !== null} onClick={() => void act('validate')}>
                {busy === 'validate' ? 'Validating…' : 'Validate'}
              </button>
              <button type="button" disabled={busy !== null} onClick={() => void act('reconnect')}>
                {busy === 'reconnect' ? 'Reconnecting…' : 'Reconnect'}
              </button>
            </>
          ) : null}
        </div>
      ) : null}
      {c?.status === 'missing' && isAdmin ? (
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            void act('connect');
          }}
        >
          <label for="installation-id">Installation id</label>
          <input
            id="installation-id"
            inputMode="numeric"
            pattern="[0-9]+"
            value={installation}
            onInput={(e) => setInstallation(e.currentTarget.value)}
            placeholder="12345678"
            required
          />
          <button type="submit" disabled={busy !== null || !/^[1-9][0-9]*$/.test(installation)}>
            {busy === 'connect' ? 'Connecting…' : 'Connect'}
          </button>
        </form>
      ) : null}
      <ProblemView problem={problem} />
    </section>
  );
}
