// Golden: the build config and its schedule, build now, recent builds (live), and the defaults per size and
// profile with their history: rollback, or set an earlier entry again.
import { useState } from 'preact/hooks';
import { ApiError, get, path, post, put } from './api';
import { useLive } from './live';
import { useSession } from './session';
import { itemsOf } from './snapshots';
import { ProblemView, RunLink, StatusBadge, When } from './ui';

interface Target {
  size: string;
  runtime: string;
  base?: string;
  machine?: boolean;
}

interface GoldenConfig {
  repos: string[];
  embedSkills: boolean;
  prebuildDeps: boolean;
  targets: Target[];
  scheduleCron: string | null;
  scheduleTimeZone: string;
  enabled: boolean;
}

interface Build {
  id: string;
  trigger: string;
  status: string;
  reason?: string | null;
  message?: string | null;
  snapshotId?: string | null;
  workflowId: string;
  runId?: string | null;
  startedAt: string;
  finishedAt?: string | null;
  uiLink?: string | null;
  log?: string | null;
}

interface Schedule {
  scheduleId: string;
  paused: boolean;
  timeZone: string;
  nextRuns: string[];
  recentRuns: Array<{ scheduledAt: string; workflowId?: string }>;
}

interface HistoryEntry {
  snapshotId: string;
  name?: string;
  version: number;
  reason?: string | null;
  actor?: string | null;
  createdAt?: string;
  at?: string;
}

interface DefaultPointer {
  size: string;
  profileKey: string;
  snapshotId: string;
  name?: string;
  version: number;
  history?: HistoryEntry[];
}

/** `codex/small/base-1` → runtime `codex` (what rollback names besides the size). */
const runtimeOf = (profileKey: string): string => profileKey.split('/')[0] ?? profileKey;

async function orNull<T>(load: Promise<T>): Promise<T | null> {
  try {
    return await load;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

export function GoldenPage() {
  const { workspace, isAdmin } = useSession();
  const base = (...rest: string[]) => path('workspaces', workspace, 'golden', ...rest);
  const config = useLive(() => orNull(get<GoldenConfig | { config: GoldenConfig }>(base('config'))), [workspace], 5000);
  const schedule = useLive(() => orNull(get<Schedule | { schedule: Schedule | null }>(base('schedule'))), [workspace], 5000);
  const builds = useLive(async () => itemsOf(await get<Build[] | { items: Build[] }>(base('builds'))), [workspace]);
  const defaults = useLive(async () => itemsOf(await get<DefaultPointer[] | { items: DefaultPointer[] }>(base('defaults'))), [workspace]);
  const [problem, setProblem] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [editing, setEditing] = useState(false);

  const act = async (run: () => Promise<unknown>) => {
    setBusy(true);
    setProblem(null);
    try {
      await run();
    } catch (err) {
      setProblem(err as ApiError);
    } finally {
      setBusy(false);
      builds.reload();
      defaults.reload();
      config.reload();
      schedule.reload();
    }
  };

  const cfg = config.data && 'config' in config.data ? config.data.config : (config.data as GoldenConfig | null | undefined);
  const sched = schedule.data && 'schedule' in schedule.data ? schedule.data.schedule : (schedule.data as Schedule | null | undefined);

  return (
    <section aria-labelledby="golden-heading">
      <div class="toolbar">
        <h1 id="golden-heading">Golden snapshots</h1>
        {isAdmin ? (
          <button type="button" class="primary" disabled={busy} onClick={() => void act(() => post(base('builds')))}>
            Build now
          </button>
        ) : null}
      </div>
      <ProblemView problem={problem} />

      <section class="panel" aria-labelledby="golden-config-heading">
        <h2 id="golden-config-heading">Build config and schedule</h2>
        <ProblemView problem={config.error ?? schedule.error} />
        {cfg ? (
          <dl class="facts">
            <dt>Targets</dt>
            <dd>
              {cfg.targets
                .map((t) => `${t.size}:${t.runtime}${t.base ? ` on ${t.base}` : ''}${t.machine ? ' (machine)' : ''}`)
                .join(', ') || '—'}
            </dd>
            <dt>Repositories</dt>
            <dd class="mono">{cfg.repos.join(', ') || '—'}</dd>
            <dt>Skills / deps</dt>
            <dd>
              {cfg.embedSkills ? 'skills embedded' : 'no skills'}, {cfg.prebuildDeps ? 'tembo.nix deps pre-built' : 'no deps'}
            </dd>
            <dt>Schedule</dt>
            <dd>
              {cfg.scheduleCron ? `${cfg.scheduleCron} (${cfg.scheduleTimeZone})` : 'none'} · {cfg.enabled ? 'enabled' : 'disabled'}
              {sched ? (sched.paused ? ' · paused' : '') : ''}
            </dd>
            <dt>Next runs</dt>
            <dd>
              {sched && sched.nextRuns.length > 0
                ? sched.nextRuns.slice(0, 3).map((at) => (
                    <span class="spaced">
                      <When at={at} />
                    </span>
                  ))
                : '—'}
            </dd>
          </dl>
        ) : config.loading ? null : (
          <p class="muted">No golden build config yet.</p>
        )}
        {isAdmin && !editing ? (
          <button type="button" onClick={() => setEditing(true)}>
            {cfg ? 'Edit config' : 'Configure golden builds'}
          </button>
        ) : null}
        {editing ? (
          <ConfigForm
            config={cfg ?? undefined}
            onCancel={() => setEditing(false)}
            onSave={(body) =>
              void act(async () => {
                await put(base('config'), body);
                setEditing(false);
              })
            }
          />
        ) : null}
      </section>

      <section class="panel" aria-labelledby="golden-defaults-heading">
        <h2 id="golden-defaults-heading">Defaults per size and profile</h2>
        <ProblemView problem={defaults.error} />
        <table class="grid" aria-label="Golden defaults">
          <thead>
            <tr>
              <th scope="col">Size</th>
              <th scope="col">Profile</th>
              <th scope="col">Default</th>
              <th scope="col">Version</th>
              <th scope="col">History</th>
              {isAdmin ? <th scope="col">Actions</th> : null}
            </tr>
          </thead>
          <tbody>
            {(defaults.data ?? []).map((d) => (
              <tr key={`${d.size}/${d.profileKey}`}>
                <td>{d.size}</td>
                <td class="mono">{d.profileKey}</td>
                <td>{d.name ?? d.snapshotId}</td>
                <td>v{d.version}</td>
                <td>
                  <ol class="history">
                    {(d.history ?? []).map((h) => (
                      <li>
                        v{h.version} {h.name ?? h.snapshotId} <When at={h.createdAt ?? h.at} />
                        {isAdmin && h.snapshotId !== d.snapshotId && h.name ? (
                          <button
                            type="button"
                            class="small"
                            disabled={busy}
                            onClick={() =>
                              void act(() => post(base('defaults'), { name: h.name, expectedVersion: d.version, reason: 'console' }))
                            }
                          >
                            set again
                          </button>
                        ) : null}
                      </li>
                    ))}
                  </ol>
                </td>
                {isAdmin ? (
                  <td>
                    <button
                      type="button"
                      disabled={busy}
                      onClick={() => void act(() => post(base('rollback'), { size: d.size, runtime: runtimeOf(d.profileKey) }))}
                    >
                      Roll back
                    </button>
                  </td>
                ) : null}
              </tr>
            ))}
            {!defaults.loading && (defaults.data ?? []).length === 0 ? (
              <tr>
                <td colSpan={isAdmin ? 6 : 5} class="muted">
                  No golden default yet: a build or a promotion sets one.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </section>

      <section class="panel" aria-labelledby="golden-builds-heading">
        <h2 id="golden-builds-heading">Recent builds</h2>
        <ProblemView problem={builds.error} />
        <BuildList builds={builds.data ?? []} />
      </section>
    </section>
  );
}

function BuildList(props: { builds: Build[] }) {
  const { runLink } = useSession();
  const [open, setOpen] = useState<string | null>(null);
  if (props.builds.length === 0) return <p class="muted">No builds yet.</p>;
  return (
    <table class="grid" aria-label="Golden builds">
      <thead>
        <tr>
          <th scope="col">Started</th>
          <th scope="col">Trigger</th>
          <th scope="col">Status</th>
          <th scope="col">Finished</th>
          <th scope="col">Run</th>
        </tr>
      </thead>
      <tbody>
        {props.builds.map((b) => (
          <>
            <tr key={b.id}>
              <td>
                <When at={b.startedAt} />
              </td>
              <td>{b.trigger}</td>
              <td>
                <StatusBadge status={b.status} error={b.reason ? `${b.reason}: ${b.message ?? ''}` : undefined} />
                {b.log ? (
                  <button type="button" class="small" aria-expanded={open === b.id} onClick={() => setOpen(open === b.id ? null : b.id)}>
                    log
                  </button>
                ) : null}
              </td>
              <td>
                <When at={b.finishedAt} />
              </td>
              <td>
                <RunLink href={b.uiLink ?? runLink(b.workflowId, b.runId)} />
              </td>
            </tr>
            {open === b.id && b.log ? (
              <tr>
                <td colSpan={5}>
                  <pre class="output">{b.log}</pre>
                </td>
              </tr>
            ) : null}
          </>
        ))}
      </tbody>
    </table>
  );
}

function ConfigForm(props: { config?: GoldenConfig; onCancel: () => void; onSave: (body: Record<string, unknown>) => void }) {
  const c = props.config;
  const [targets, setTargets] = useState(c ? c.targets.map((t) => `${t.size}:${t.runtime}`).join(', ') : 'small:codex');
  const [repos, setRepos] = useState(c ? c.repos.join('\n') : '');
  const [cron, setCron] = useState(c?.scheduleCron ?? '');
  const [timeZone, setTimeZone] = useState(c?.scheduleTimeZone ?? 'UTC');
  const [enabled, setEnabled] = useState(c?.enabled ?? true);
  return (
    <form
      class="stacked"
      onSubmit={(e) => {
        e.preventDefault();
        props.onSave({
          targets: targets
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean),
          repos: repos
            .split('\n')
            .map((r) => r.trim())
            .filter(Boolean),
          ...(cron.trim() ? { schedule: cron.trim(), timeZone } : {}),
          enabled,
        });
      }}
    >
      <label for="golden-targets">Targets (size:runtime, comma-separated)</label>
      <input id="golden-targets" value={targets} onInput={(e) => setTargets(e.currentTarget.value)} />
      <label for="golden-repos">Repositories to preload (one per line)</label>
      <textarea id="golden-repos" rows={3} value={repos} onInput={(e) => setRepos(e.currentTarget.value)} />
      <label for="golden-cron">Daily schedule (cron or HH:MM; empty for none)</label>
      <input id="golden-cron" value={cron} onInput={(e) => setCron(e.currentTarget.value)} placeholder="03:00" />
      <label for="golden-tz">Time zone</label>
      <input id="golden-tz" value={timeZone} onInput={(e) => setTimeZone(e.currentTarget.value)} />
      <label class="check">
        <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} /> enabled
      </label>
      <div class="actions">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="submit" class="primary">
          Save
        </button>
      </div>
    </form>
  );
}
