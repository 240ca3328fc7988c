// The console: sign in with an API token (kept in this tab's sessionStorage), pick a workspace, then Snapshots,
// Golden or Sandboxes. Pages are addressed by the URL's hash (#/snapshots), so the server serves one page.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, token, whenUnauthorized } from './api';
import { GoldenPage } from './golden';
import { SandboxesPage } from './sandboxes';
import { SessionContext, meFrom, sessionFor, type Me } from './session';
import { SnapshotsPage } from './snapshots';
import { ProblemView } from './ui';

const WORKSPACE_KEY = 'snapflow.workspace';

interface Route {
  page: 'snapshots' | 'golden' | 'sandboxes';
  id?: string;
}

function routeOf(hash: string): Route {
  const [page, id] = hash.replace(/^#\/?/, '').split('/');
  if (page === 'golden') return { page };
  if (page === 'sandboxes') return { page, id: id ? decodeURIComponent(id) : undefined };
  return { page: 'snapshots' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(routeOf(location.hash));
  useEffect(() => {
    const on = () => setRoute(routeOf(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function SignIn(props: { onSignedIn: (me: Me) => void; reason?: ApiError | null }) {
  const [value, setValue] = useState('');
  const [problem, setProblem] = useState<ApiError | null>(props.reason ?? null);
  const [busy, setBusy] = useState(false);
  return (
    <main class="sign-in">
      <h1>snapflow</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setProblem(null);
          token.set(value.trim());
          get<Parameters<typeof meFrom>[0]>('/v1/me')
            .then((answer) => props.onSignedIn(meFrom(answer)))
            .catch((err: ApiError) => {
              token.clear();
              setProblem(err);
            })
            .finally(() => setBusy(false));
        }}
      >
        <label for="token">API token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
          aria-describedby="token-help"
          required
        />
        <small id="token-help" class="muted">
          Made with <code>snapflow token create --user you@example.com</code>; kept in this tab only.
        </small>
        <button type="submit" class="primary" disabled={busy || value.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <ProblemView problem={problem} />
    </main>
  );
}

function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(token.get() !== null);
  const [expired, setExpired] = useState<ApiError | null>(null);
  const [workspace, setWorkspace] = useState<string>(sessionStorage.getItem(WORKSPACE_KEY) ?? '');
  const route = useRoute();

  useEffect(() => {
    whenUnauthorized(() => {
      token.clear();
      setMe(null);
      setExpired(new ApiError(401, 'UNAUTHORIZED', 'the token was refused (revoked or expired): sign in again'));
    });
    if (!token.get()) return;
    get<Parameters<typeof meFrom>[0]>('/v1/me')
      .then((answer) => setMe(meFrom(answer)))
      .catch(() => token.clear())
      .finally(() => setChecking(false));
  }, []);

  if (checking) return <p class="muted">Loading…</p>;
  if (!me)
    return (
      <SignIn
        reason={expired}
        onSignedIn={(m) => {
          setExpired(null);
          setMe(m);
        }}
      />
    );

  const names = me.workspaces.map((w) => w.workspace);
  const current = names.includes(workspace) ? workspace : (names[0] ?? workspace);
  const choose = (w: string) => {
    sessionStorage.setItem(WORKSPACE_KEY, w);
    setWorkspace(w);
  };
  const signOut = () => {
    token.clear();
    sessionStorage.removeItem(WORKSPACE_KEY);
    setMe(null);
  };
  const nav = (page: Route['page'], label: string) => (
    <a href={`#/${page}`} aria-current={route.page === page ? 'page' : undefined}>
      {label}
    </a>
  );

  return (
    <>
      <header class="top">
        <span class="brand">snapflow</span>
        <nav aria-label="Pages">
          {nav('snapshots', 'Snapshots')}
          {nav('golden', 'Golden')}
          {nav('sandboxes', 'Sandboxes')}
        </nav>
        <label class="workspace">
          Workspace{' '}
          {names.length > 0 ? (
            <select value={current} onChange={(e) => choose(e.currentTarget.value)}>
              {names.map((n) => (
                <option value={n}>{n}</option>
              ))}
            </select>
          ) : (
            <input value={workspace} onChange={(e) => choose(e.currentTarget.value.trim())} placeholder="workspace id" size={14} />
          )}
        </label>
        <span class="who" aria-label="Signed in as">
          {me.user}
          {me.operator ? ' (operator)' : ''}
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>
        {current ? (
          <SessionContext.Provider value={sessionFor(me, current)}>
            {route.page === 'golden' ? (
              <GoldenPage />
            ) : route.page === 'sandboxes' ? (
              <SandboxesPage selected={route.id} />
            ) : (
              <SnapshotsPage />
            )}
          </SessionContext.Provider>
        ) : (
          <p class="muted">This token names no workspace: type one above (operators may open any).</p>
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
