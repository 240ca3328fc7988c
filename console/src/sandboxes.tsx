// Sandboxes: the workspace's list with live state; one sandbox's page: where it would start and why each earlier
// step was skipped (the restore order), a job with its output streamed, promote (admins), destroy.
import { useRef, useState } from 'preact/hooks';
import { ApiError, del, get, path, post, postStream } from './api';
import { useLive } from './live';
import { useSession } from './session';
import { itemsOf } from './snapshots';
import { ProblemView, RunLink, StatusBadge, When } from './ui';

interface Sandbox {
  id: string;
  class: string;
  size: string;
  runtime: string;
  profileKey?: string;
  state: string;
  hostId?: string | null;
  keepAlive?: boolean;
  createdAt?: string;
  updatedAt?: string;
}

interface Skip {
  step: string;
  reason: string;
  detail: string;
}

interface Decision {
  source: string;
  name?: string;
  snapshotId?: string;
  imageRef?: string;
  hostId?: string;
  profileKey?: string;
  machineProfile?: string;
  skipped: Skip[];
}

interface Status {
  sandboxId: string;
  state: string;
  hostId?: string;
  jobs?: number;
  lastStart?: Decision;
  lastStop?: { reason: string; at: number };
  lastSession?: { sequence: number; sessionSnapshotId?: string; sessionError?: string };
  currentJob?: { sequence: number; command: string[] };
  workflowId?: string;
  runId?: string;
  uiLink?: string;
}

const SOURCES: Record<string, string> = {
  running: 'the running sandbox, as it is',
  session: 'its latest session snapshot',
  'golden-pin': 'the golden snapshot pinned on its issue',
  'golden-workspace': "the workspace's golden default",
  'golden-system': 'the system golden default',
  base: 'a fresh base image',
};

export function SandboxesPage(props: { selected?: string }) {
  return props.selected ? <SandboxPage id={props.selected} /> : <SandboxList />;
}

function SandboxList() {
  const { workspace } = useSession();
  const list = useLive(
    async () => itemsOf(await get<Sandbox[] | { items: Sandbox[] }>(path('workspaces', workspace, 'sandboxes'))),
    [workspace],
  );
  const rows = list.data ?? [];
  return (
    <section aria-labelledby="sandboxes-heading">
      <div class="toolbar">
        <h1 id="sandboxes-heading">Sandboxes</h1>
      </div>
      <ProblemView problem={list.error} />
      <table class="grid" aria-label="Sandboxes" aria-busy={list.loading}>
        <thead>
          <tr>
            <th scope="col">Sandbox</th>
            <th scope="col">Class</th>
            <th scope="col">Runtime / size</th>
            <th scope="col">State</th>
            <th scope="col">Host</th>
            <th scope="col">Keep-alive</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((s) => (
            <tr key={s.id} data-id={s.id}>
              <td>
                <a href={`#/sandboxes/${encodeURIComponent(s.id)}`} class="mono">
                  {s.id.slice(0, 8)}
                </a>
              </td>
              <td>{s.class}</td>
              <td>
                {s.runtime} / {s.size}
              </td>
              <td>
                <StatusBadge status={s.state} />
              </td>
              <td>{s.hostId ?? '—'}</td>
              <td>{s.keepAlive ? 'yes' : 'no'}</td>
              <td>
                <When at={s.createdAt} />
              </td>
            </tr>
          ))}
          {!list.loading && rows.length === 0 ? (
            <tr>
              <td colSpan={7} class="muted">
                No sandboxes in this workspace.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </section>
  );
}

function Explanation(props: { decision: Decision; heading: string }) {
  const d = props.decision;
  return (
    <section class="panel" aria-label={props.heading}>
      <h2>{props.heading}</h2>
      <ol class="steps">
        {d.skipped.map((s) => (
          <li class="skipped">
            <span class="step-name">{s.step}</span> skipped: <span class="mono">{s.reason}</span> — {s.detail}
          </li>
        ))}
        <li class="chosen">
          <span class="step-name">{d.source}</span> chosen: {SOURCES[d.source] ?? d.source}
          {d.name ? ` ${d.name}` : ''}
          {d.imageRef ? <div class="mono muted">{d.imageRef}</div> : null}
          {d.profileKey ? <div class="muted">profile {d.profileKey}</div> : null}
        </li>
      </ol>
    </section>
  );
}

function SandboxPage(props: { id: string }) {
  const { isAdmin, runLink } = useSession();
  const status = useLive(() => get<Status | { status: Status }>(path('sandboxes', props.id)), [props.id]);
  const explain = useLive(() => get<Decision | { decision: Decision }>(path('sandboxes', props.id, 'explain')), [props.id], 3000);
  const [problem, setProblem] = useState<ApiError | null>(null);
  const s = status.data && 'status' in status.data ? status.data.status : (status.data as Status | undefined);
  const decision = explain.data && 'decision' in explain.data ? explain.data.decision : (explain.data as Decision | undefined);

  return (
    <section aria-labelledby="sandbox-heading">
      <p>
        <a href="#/sandboxes">← Sandboxes</a>
      </p>
      <div class="toolbar">
        <h1 id="sandbox-heading">
          Sandbox <span class="mono">{props.id}</span>
        </h1>
        {s ? <StatusBadge status={s.state} /> : null}
        <RunLink href={s?.uiLink ?? runLink(s?.workflowId ?? `sandbox/${props.id}`)} />
      </div>
      <ProblemView problem={status.error} />
      <ProblemView problem={problem} />
      {s ? (
        <dl class="facts">
          <dt>Host</dt>
          <dd>{s.hostId ?? '—'}</dd>
          <dt>Jobs run</dt>
          <dd>{s.jobs ?? 0}</dd>
          {s.currentJob ? (
            <>
              <dt>Running</dt>
              <dd class="mono">{s.currentJob.command.join(' ')}</dd>
            </>
          ) : null}
          {s.lastSession ? (
            <>
              <dt>Last session</dt>
              <dd>{s.lastSession.sessionSnapshotId ?? `not saved: ${s.lastSession.sessionError ?? 'unknown'}`}</dd>
            </>
          ) : null}
          {s.lastStop ? (
            <>
              <dt>Last stop</dt>
              <dd>
                {s.lastStop.reason} <When at={new Date(s.lastStop.at)} />
              </dd>
            </>
          ) : null}
        </dl>
      ) : null}
      {decision ? <Explanation decision={decision} heading="Where it starts next, step by step" /> : null}
      <ProblemView problem={explain.error} />
      <JobRunner id={props.id} onDone={status.reload} />
      {isAdmin ? <PromoteForm id={props.id} onProblem={setProblem} /> : null}
      <div class="actions">
        <button
          type="button"
          class="danger"
          onClick={() =>
            void del(path('sandboxes', props.id))
              .then(status.reload)
              .catch((err: ApiError) => setProblem(err))
          }
        >
          Destroy sandbox
        </button>
      </div>
    </section>
  );
}

interface OutputLine {
  stream: 'stdout' | 'stderr' | 'info';
  text: string;
}

/** Base64 bytes (the API sends output so, as any byte survives it) as text; a character cut between two chunks is mended by the stream decoder. */
function decoderFor(): (b64: string) => string {
  const decoder = new TextDecoder();
  return (b64) =>
    decoder.decode(
      Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)),
      { stream: true },
    );
}

function JobRunner(props: { id: string; onDone: () => void }) {
  const [command, setCommand] = useState('');
  const [output, setOutput] = useState<OutputLine[]>([]);
  const [result, setResult] = useState<{ exitCode?: number } | null>(null);
  const [problem, setProblem] = useState<ApiError | null>(null);
  const [running, setRunning] = useState(false);
  const abort = useRef<AbortController | null>(null);

  const run = async (e: Event) => {
    e.preventDefault();
    setOutput([]);
    setResult(null);
    setProblem(null);
    setRunning(true);
    abort.current = new AbortController();
    const decode = { stdout: decoderFor(), stderr: decoderFor() };
    try {
      await postStream(
        path('sandboxes', props.id, 'jobs'),
        { command: ['sh', '-c', command] },
        ({ event, data }) => {
          if (event === 'result' || event === 'done') {
            try {
              setResult(JSON.parse(data) as { exitCode?: number });
            } catch {
              setResult({});
            }
            return;
          }
          if (event === 'error') {
            try {
              const p = JSON.parse(data) as ApiError;
              setProblem(new ApiError(0, p.code, p.message, p.field, p.hint));
            } catch {
              setProblem(new ApiError(0, 'INTERNAL', data));
            }
            return;
          }
          if (event === 'stdout' || event === 'stderr') {
            const text = decode[event](data);
            if (text) setOutput((o) => [...o, { stream: event, text }]);
          } else if (event === 'resumed') {
            const from = (JSON.parse(data) as { source?: string; name?: string }) ?? {};
            setOutput((o) => [
              ...o,
              { stream: 'info', text: `resumed from ${from.source ?? 'a restore'}${from.name ? ` ${from.name}` : ''}\n` },
            ]);
          }
        },
        abort.current.signal,
      );
    } catch (err) {
      if ((err as Error).name !== 'AbortError') setProblem(err as ApiError);
    } finally {
      setRunning(false);
      props.onDone();
    }
  };

  return (
    <section class="panel" aria-labelledby="job-heading">
      <h2 id="job-heading">Run a job</h2>
      <form class="inline-form" onSubmit={(e) => void run(e)}>
        <label for="job-command">Command (sh -c)</label>
        <input
          id="job-command"
          class="wide mono"
          value={command}
          onInput={(e) => setCommand(e.currentTarget.value)}
          placeholder="echo hello"
          required
        />
        <button type="submit" class="primary" disabled={running || command.trim() === ''}>
          {running ? 'Running…' : 'Run'}
        </button>
        {running ? (
          <button type="button" onClick={() => abort.current?.abort()}>
            Stop watching
          </button>
        ) : null}
      </form>
      <pre class="output" aria-label="Job output" aria-live="polite">
        {output.map((l) => (
          <span class={`out-${l.stream}`}>{l.text}</span>
        ))}
      </pre>
      {result ? <p role="status">exit code {result.exitCode ?? '?'}</p> : null}
      <ProblemView problem={problem} />
    </section>
  );
}

function PromoteForm(props: { id: string; onProblem: (p: ApiError | null) => void }) {
  const [name, setName] = useState('');
  const [setDefault, setSetDefault] = useState(true);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <section class="panel" aria-labelledby="promote-heading">
      <h2 id="promote-heading">Promote to golden</h2>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          props.onProblem(null);
          post<{ name: string; snapshotId: string }>(path('sandboxes', props.id, 'promote'), { name, setDefault })
            .then((r) => setDone(`promoted as ${r.name}`))
            .catch((err: ApiError) => props.onProblem(err))
            .finally(() => setBusy(false));
        }}
      >
        <label for="promote-name">Golden snapshot name</label>
        <input id="promote-name" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="demo-golden-v1" required />
        <label class="check">
          <input type="checkbox" checked={setDefault} onChange={(e) => setSetDefault(e.currentTarget.checked)} /> set as default
        </label>
        <button type="submit" disabled={busy || name === ''}>
          {busy ? 'Promoting…' : 'Promote'}
        </button>
      </form>
      {done ? <p role="status">{done}</p> : null}
    </section>
  );
}
