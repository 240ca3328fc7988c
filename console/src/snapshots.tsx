// Snapshots: the workspace's table (live), New Snapshot, the detail sheet, delete with what still uses it, and
// the GitHub connection panel above it.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { SIZE_PRESETS, RUNTIMES } from '../../lib/presets';
import { ApiError, del, get, path, post } from './api';
import { GithubPanel } from './github';
import { useLive } from './live';
import { useSession } from './session';
import { Dialog, ProblemView, RunLink, StatusBadge, When, bytes } from './ui';
import { checkSnapshotForm, type SnapshotForm } from './validate';

export interface Snapshot {
  id: string;
  name: string;
  kind: string;
  sourceImage?: string | null;
  storedRef?: string | null;
  entrypoint?: string;
  runtime: string;
  size: string;
  status: string;
  errorCode?: string | null;
  errorMessage?: string | null;
  workflowId?: string | null;
  runId?: string | null;
  createdAt: string;
  lastUsedAt?: string | null;
  storedBytes?: number | null;
  uiLink?: string | null;
}

interface SnapshotEvent {
  type: string;
  message?: string | null;
  at?: string;
  createdAt?: string;
}

/** A list answer: `{ items, nextCursor }`, or a bare array. */
export function itemsOf<T>(answer: T[] | { items?: T[]; snapshots?: T[]; data?: T[] } | null | undefined): T[] {
  if (!answer) return [];
  if (Array.isArray(answer)) return answer;
  return answer.items ?? answer.snapshots ?? answer.data ?? [];
}

/** What POST …/snapshots answers (202): the run is started; its first step writes the row the list shows. */
interface CreatedAnswer {
  snapshotId: string;
  name: string;
  status: string;
  workflowId?: string;
  uiLink?: string;
}

/** A snapshot just accepted, shown until the list has a row of that name; one that never shows up goes after this long. */
const ACCEPTED_SHOWN_MS = 60_000;

interface Accepted {
  row: Snapshot;
  at: number;
}

/** The list has the accepted row: by its id, or (a build the run joined or reused) by a live row of its name. */
const listedAs = (list: Snapshot[], row: Snapshot): boolean =>
  list.some((s) => s.id === row.id || (s.name === row.name && s.status !== 'failed' && s.status !== 'deleted'));

const errorOf = (s: Snapshot): string | undefined => (s.errorCode ? `${s.errorCode}: ${s.errorMessage ?? ''}`.trim() : undefined);
const STATUSES = ['', 'pending', 'active', 'failed'];
const KINDS = ['', 'image', 'session', 'golden'];

export function SnapshotsPage() {
  const { workspace } = useSession();
  const [status, setStatus] = useState('');
  const [kind, setKind] = useState('');
  const [creating, setCreating] = useState(false);
  const [open, setOpen] = useState<string | null>(null);
  const list = useLive(async () => {
    const q = new URLSearchParams({ limit: '100' });
    if (status) q.set('status', status);
    if (kind) q.set('kind', kind);
    return itemsOf(await get<Snapshot[] | { items: Snapshot[] }>(`${path('workspaces', workspace, 'snapshots')}?${q}`));
  }, [workspace, status, kind]);
  // The API answers 202 before the run has written the row: the accepted snapshot shows as pending at once, not
  // after the next poll that happens to find it.
  const [accepted, setAccepted] = useState<Accepted[]>([]);
  const listed = list.data;
  useEffect(() => {
    if (!listed || accepted.length === 0) return;
    const now = Date.now();
    const still = accepted.filter((a) => !listedAs(listed, a.row) && now - a.at < ACCEPTED_SHOWN_MS);
    if (still.length !== accepted.length) setAccepted(still);
  }, [listed]);
  const rows = useMemo(() => {
    const shown = listed ?? [];
    const extra = accepted
      .map((a) => a.row)
      .filter((r) => !listedAs(shown, r) && (!status || status === r.status) && (!kind || kind === r.kind));
    return [...extra, ...shown];
  }, [listed, accepted, status, kind]);

  return (
    <section aria-labelledby="snapshots-heading">
      <GithubPanel />
      <div class="toolbar">
        <h1 id="snapshots-heading">Snapshots</h1>
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            {STATUSES.map((s) => (
              <option value={s}>{s || 'any'}</option>
            ))}
          </select>
        </label>
        <label>
          Kind{' '}
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            {KINDS.map((k) => (
              <option value={k}>{k || 'any'}</option>
            ))}
          </select>
        </label>
        <button type="button" class="primary" onClick={() => setCreating(true)}>
          New Snapshot
        </button>
      </div>
      <ProblemView problem={list.error} />
      <table class="grid" aria-label="Snapshots" aria-busy={list.loading}>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Image</th>
            <th scope="col">Kind</th>
            <th scope="col">Runtime</th>
            <th scope="col">Size</th>
            <th scope="col">Status</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">Stored</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((s) => (
            <tr key={s.id} data-name={s.name}>
              <td>
                <button type="button" class="link" onClick={() => setOpen(s.name)}>
                  {s.name}
                </button>
              </td>
              <td class="mono">{s.sourceImage ?? '—'}</td>
              <td>{s.kind}</td>
              <td>{s.runtime}</td>
              <td>{s.size}</td>
              <td>
                <StatusBadge status={s.status} error={errorOf(s)} />
              </td>
              <td>
                <When at={s.createdAt} />
              </td>
              <td>
                <When at={s.lastUsedAt} />
              </td>
              <td>{bytes(s.storedBytes)}</td>
            </tr>
          ))}
          {!list.loading && rows.length === 0 ? (
            <tr>
              <td colSpan={9} class="muted">
                No snapshots yet: New Snapshot builds one from an image.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
      {creating ? (
        <NewSnapshotDialog
          taken={new Map(rows.filter((s) => s.status !== 'deleted').map((s) => [s.name, s.status]))}
          onClose={() => setCreating(false)}
          onCreated={(created, form) => {
            setCreating(false);
            const row: Snapshot = {
              id: created.snapshotId,
              name: created.name,
              kind: 'image',
              sourceImage: form.image,
              entrypoint: form.entrypoint,
              runtime: form.runtime,
              size: form.size,
              status: created.status,
              workflowId: created.workflowId,
              createdAt: new Date().toISOString(),
              uiLink: created.uiLink,
            };
            setAccepted((all) => [{ row, at: Date.now() }, ...all.filter((a) => a.row.name !== row.name)]);
            list.reload();
          }}
        />
      ) : null}
      {open ? (
        <SnapshotSheet
          name={open}
          onClose={() => setOpen(null)}
          onDeleted={() => {
            setOpen(null);
            list.reload();
          }}
        />
      ) : null}
    </section>
  );
}

function NewSnapshotDialog(props: {
  taken: Map<string, string>;
  onClose: () => void;
  onCreated: (created: CreatedAnswer, form: SnapshotForm) => void;
}) {
  const { workspace } = useSession();
  const [form, setForm] = useState<SnapshotForm>({ name: '', image: '', entrypoint: '/app/start.sh', runtime: 'codex', size: 'small' });
  const [touched, setTouched] = useState<Partial<Record<keyof SnapshotForm, boolean>>>({});
  const [sending, setSending] = useState(false);
  const [refused, setRefused] = useState<ApiError | null>(null);
  const problems = useMemo(() => checkSnapshotForm(workspace, form, props.taken), [workspace, form, props.taken]);
  const valid = Object.keys(problems).length === 0;
  const set = (field: keyof SnapshotForm) => (e: { currentTarget: { value: string } }) => {
    setForm({ ...form, [field]: e.currentTarget.value });
    setTouched({ ...touched, [field]: true });
    setRefused(null);
  };
  // A field's problem shows once it was typed in, or when the API named it.
  const shown = (field: keyof SnapshotForm): string | undefined =>
    refused?.field === field ? refused.message : touched[field] ? problems[field] : undefined;

  const submit = async (e: Event) => {
    e.preventDefault();
    setTouched({ name: true, image: true, entrypoint: true, runtime: true, size: true });
    if (!valid) return;
    setSending(true);
    try {
      props.onCreated(await post<CreatedAnswer>(path('workspaces', workspace, 'snapshots'), form), form);
    } catch (err) {
      setRefused(err as ApiError);
    } finally {
      setSending(false);
    }
  };

  const field = (name: keyof SnapshotForm, label: string, input: preact.JSX.Element, help?: string) => {
    const problem = shown(name);
    return (
      <div class="field">
        <label for={`snap-${name}`}>{label}</label>
        {input}
        {help && !problem ? (
          <small id={`snap-${name}-help`} class="muted">
            {help}
          </small>
        ) : null}
        {problem ? (
          <small id={`snap-${name}-problem`} class="field-problem" role="status">
            {problem}
          </small>
        ) : null}
      </div>
    );
  };
  const aria = (name: keyof SnapshotForm) => ({
    id: `snap-${name}`,
    name,
    'aria-invalid': shown(name) ? true : undefined,
    'aria-describedby': shown(name) ? `snap-${name}-problem` : `snap-${name}-help`,
  });

  return (
    <Dialog title="New Snapshot" onClose={props.onClose}>
      <form onSubmit={(e) => void submit(e)} noValidate>
        {field(
          'name',
          'Name',
          <input {...aria('name')} value={form.name} onInput={set('name')} autoComplete="off" required />,
          'unique in the workspace; versioned names like agent-v1 keep replacements clear',
        )}
        {field(
          'image',
          'Image',
          <input
            {...aria('image')}
            value={form.image}
            onInput={set('image')}
            placeholder="ghcr.io/org/image:v1"
            autoComplete="off"
            required
          />,
          'registry/repository:tag with a stable tag',
        )}
        {field(
          'entrypoint',
          'Entrypoint',
          <input {...aria('entrypoint')} value={form.entrypoint} onInput={set('entrypoint')} autoComplete="off" />,
          'the executable the sandbox runs, inside the image',
        )}
        {field(
          'runtime',
          'Runtime',
          <select {...aria('runtime')} value={form.runtime} onChange={set('runtime')}>
            {RUNTIMES.map((r) => (
              <option value={r}>{r}</option>
            ))}
          </select>,
        )}
        {field(
          'size',
          'Size',
          <select {...aria('size')} value={form.size} onChange={set('size')}>
            {SIZE_PRESETS.map((p) => (
              <option value={p.key}>
                {p.key} ({p.vcpus} vCPU, {p.memoryMiB / 1024} GiB)
              </option>
            ))}
          </select>,
        )}
        {refused && !refused.field ? <ProblemView problem={refused} /> : null}
        {refused?.hint && refused.field ? <p class="problem-hint">{refused.hint}</p> : null}
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={sending || !valid}>
            {sending ? 'Creating…' : 'Create'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** One snapshot: every field, its events (the build's steps), its run, and delete. */
function SnapshotSheet(props: { name: string; onClose: () => void; onDeleted: () => void }) {
  const { workspace, isAdmin, runLink } = useSession();
  const details = useLive(
    () => get<{ snapshot: Snapshot; events?: SnapshotEvent[]; uiLink?: string }>(path('workspaces', workspace, 'snapshots', props.name)),
    [workspace, props.name],
  );
  const [refusal, setRefusal] = useState<ApiError | null>(null);
  const [deleting, setDeleting] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const s = details.data?.snapshot;

  const remove = async () => {
    setDeleting(true);
    setRefusal(null);
    try {
      await del(path('workspaces', workspace, 'snapshots', props.name));
      props.onDeleted();
    } catch (err) {
      setRefusal(err as ApiError);
    } finally {
      setDeleting(false);
      setConfirming(false);
    }
  };

  return (
    <Dialog title={`Snapshot ${props.name}`} onClose={props.onClose}>
      <ProblemView problem={details.error} />
      {s ? (
        <>
          <dl class="facts">
            <dt>Status</dt>
            <dd>
              <StatusBadge status={s.status} error={errorOf(s)} />
            </dd>
            {s.errorCode ? (
              <>
                <dt>Error</dt>
                <dd class="error-text">
                  {s.errorCode}: {s.errorMessage}
                </dd>
              </>
            ) : null}
            <dt>Kind</dt>
            <dd>{s.kind}</dd>
            <dt>Image</dt>
            <dd class="mono">{s.sourceImage ?? '—'}</dd>
            <dt>Stored as</dt>
            <dd class="mono">{s.storedRef ?? '—'}</dd>
            <dt>Entrypoint</dt>
            <dd class="mono">{s.entrypoint ?? '—'}</dd>
            <dt>Runtime / size</dt>
            <dd>
              {s.runtime} / {s.size}
            </dd>
            <dt>Stored size</dt>
            <dd>{bytes(s.storedBytes)}</dd>
            <dt>Created</dt>
            <dd>
              <When at={s.createdAt} />
            </dd>
            <dt>Run</dt>
            <dd>
              <RunLink href={details.data?.uiLink ?? s.uiLink ?? runLink(s.workflowId, s.runId)} />
            </dd>
          </dl>
          <h3>Build log</h3>
          <ol class="events" aria-label="Events">
            {(details.data?.events ?? []).map((e) => (
              <li>
                <span class="mono">{e.type}</span> {e.message ? <span>{e.message}</span> : null} <When at={e.at ?? e.createdAt} />
              </li>
            ))}
          </ol>
          {refusal ? <ProblemView problem={refusal} label="Delete refused" /> : null}
          <div class="actions">
            {isAdmin && !confirming ? (
              <button type="button" class="danger" onClick={() => setConfirming(true)}>
                Delete snapshot
              </button>
            ) : null}
            {confirming ? (
              <>
                <span role="status">Delete {props.name} and its stored image?</span>
                <button type="button" class="danger" disabled={deleting} onClick={() => void remove()}>
                  {deleting ? 'Deleting…' : 'Yes, delete'}
                </button>
              </>
            ) : null}
            <button type="button" onClick={props.onClose}>
              Close
            </button>
          </div>
        </>
      ) : null}
    </Dialog>
  );
}
