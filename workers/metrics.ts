// snapflow's own Prometheus metrics, recorded through the Temporal Runtime's metric meter so that one endpoint per
// worker (SNAPFLOW_METRICS_ADDRESS, served by the SDK's exporter) has both the SDK's metrics and these.
// Names are given without their unit and `_total`: the exporter adds them (`unitSuffix`, `countersTotalSuffix`), as
// it does for the SDK's own, so every series on the endpoint follows one convention. Gauges get no suffix from the
// exporter, so their names carry the unit themselves.
//   control worker: the catalog's figures, read every 15 s by the one worker holding the catalog-metrics lock
//   host worker: capacity (memory, running sandboxes), cache lookups, jobs, sandbox starts and session saves
//   both: activity failures by typed code
import type { MetricMeter } from '@temporalio/common';
import { Runtime, type ActivityInterceptorsFactory } from '@temporalio/worker';
import { readCatalogFigures } from '../catalog/metrics';
import type postgres from 'postgres';
import type { Db, Sql } from '../db/client';
import { describeFailure } from '../lib/errors';
import { JOB_ACTIVITY_NAMES, parseHandleText } from '../lib/sandboxHandle';
import { SANDBOX_STATES, SNAPSHOT_KINDS, SNAPSHOT_STATUSES } from '../lib/vocabulary';
import type { JsonLogger } from './log';

/** Every metric snapflow itself exports, as written on `/metrics` (the dashboard and alert rules in ops/ use these). */
export const metricNames = {
  catalogLeader: 'snapflow_catalog_metrics_leader',
  snapshots: 'snapflow_snapshots',
  sandboxes: 'snapflow_sandboxes',
  oldestPending: 'snapflow_snapshot_oldest_pending_seconds',
  snapshotDuration: 'snapflow_snapshot_duration_seconds',
  goldenBuildDuration: 'snapflow_golden_build_duration_seconds',
  goldenScheduleLastFired: 'snapflow_golden_schedule_last_fired_timestamp_seconds',
  defaultChanges: 'snapflow_default_changes_total',
  hostMemoryTotal: 'snapflow_host_memory_total_bytes',
  hostMemoryReserved: 'snapflow_host_memory_reserved_bytes',
  hostMemoryFree: 'snapflow_host_memory_free_bytes',
  hostSandboxesRunning: 'snapflow_host_sandboxes_running',
  cacheHits: 'snapflow_host_cache_hits_total',
  cacheMisses: 'snapflow_host_cache_misses_total',
  cacheEvictions: 'snapflow_host_cache_evictions_total',
  jobDuration: 'snapflow_job_duration_seconds',
  sandboxStart: 'snapflow_sandbox_start_seconds',
  sessionSaveDuration: 'snapflow_session_save_duration_seconds',
  sessionSaveSize: 'snapflow_session_save_size_bytes',
  activityFailures: 'snapflow_activity_failures_total',
} as const;

/** The name an instrument is created under: the exported name without the suffix the exporter appends. */
function base(name: string, suffix: '_seconds' | '_bytes' | '_total'): string {
  return name.slice(0, -suffix.length);
}

/** Histogram buckets, keyed by instrument name (the exporter matches them before suffixing). */
export const histogramBuckets: Record<string, number[]> = {
  [base(metricNames.snapshotDuration, '_seconds')]: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600],
  [base(metricNames.goldenBuildDuration, '_seconds')]: [5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
  [base(metricNames.jobDuration, '_seconds')]: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600],
  [base(metricNames.sandboxStart, '_seconds')]: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120],
  [base(metricNames.sessionSaveDuration, '_seconds')]: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
  [base(metricNames.sessionSaveSize, '_bytes')]: [1e6, 4e6, 16e6, 64e6, 256e6, 1e9, 4e9, 16e9],
};

const REFRESH_MS = 15_000;
/** pg advisory lock key of the control worker that reads the catalog for metrics ("snap" in ASCII). */
const CATALOG_METRICS_LOCK = 0x736e6170;

function every(ms: number, work: () => Promise<void>): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    await work();
    if (!stopped) timer = setTimeout(() => void tick(), ms).unref();
  };
  void tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

/**
 * One control worker at a time reports the catalog: the one holding a session advisory lock on a connection of its
 * own. The figures are the same whoever reads them, so a second reporter would only double every series (and every
 * counter's rate). The lock goes with the connection: a leader that dies or loses the database frees it, and another
 * worker takes it on its next tick.
 */
export function catalogLeadership(sql: Sql): { isLeader: () => Promise<boolean>; release: () => Promise<void> } {
  let held: postgres.ReservedSql | undefined;
  return {
    async isLeader() {
      if (held) {
        try {
          await held`select 1`;
          return true;
        } catch {
          held = undefined; // the connection (and so the lock) is gone
        }
      }
      const conn = await sql.reserve();
      const [row] = await conn<Array<{ locked: boolean }>>`select pg_try_advisory_lock(${CATALOG_METRICS_LOCK}) as locked`;
      if (row?.locked) held = conn;
      else conn.release();
      return Boolean(row?.locked);
    },
    async release() {
      if (!held) return;
      await held`select pg_advisory_unlock(${CATALOG_METRICS_LOCK})`.catch(() => undefined);
      held.release();
      held = undefined;
    },
  };
}

/** Control worker: snapshots by kind and status, sandboxes by state, pending age, durations, default changes. */
export function recordCatalogMetrics(
  database: { db: Db; sql: Sql },
  log: JsonLogger,
  meter: MetricMeter = Runtime.instance().metricMeter,
): () => Promise<void> {
  const leader = meter.createGauge(metricNames.catalogLeader, 'int', '', 'This control worker reports the catalog figures (1) or not (0)');
  const snapshots = meter.createGauge(metricNames.snapshots, 'int', '', 'Snapshots in the catalog by kind and status');
  const sandboxes = meter.createGauge(metricNames.sandboxes, 'int', '', 'Sandboxes by state');
  const oldestPending = meter.createGauge(metricNames.oldestPending, 'float', '', 'Age of the oldest pending snapshot by kind, seconds');
  const scheduleFired = meter.createGauge(
    metricNames.goldenScheduleLastFired,
    'float',
    '',
    'Per enabled golden schedule: Unix time it last started a build (or was configured, before its first)',
  );
  const snapshotDuration = meter.createHistogram(
    base(metricNames.snapshotDuration, '_seconds'),
    'float',
    'seconds',
    'Time a snapshot spent pending before it became active or failed, by kind and status',
  );
  const buildDuration = meter.createHistogram(
    base(metricNames.goldenBuildDuration, '_seconds'),
    'float',
    'seconds',
    'Golden build run time by status',
  );
  const defaultChanges = meter.createCounter(
    base(metricNames.defaultChanges, '_total'),
    '',
    'Default snapshot changes (set, promote, rollback)',
  );
  const leadership = catalogLeadership(database.sql);
  let since: Date | undefined;
  leader.set(0);
  const stop = every(REFRESH_MS, async () => {
    try {
      if (!(await leadership.isLeader())) {
        leader.set(0);
        since = undefined; // a later leadership starts counting from then, not from before another leader's readings
        return;
      }
      leader.set(1);
      if (!since) {
        defaultChanges.add(0);
        since = new Date();
      }
      const figures = await readCatalogFigures(database.db, { since });
      since = figures.at;
      for (const kind of SNAPSHOT_KINDS) {
        for (const status of SNAPSHOT_STATUSES) {
          snapshots.set(figures.snapshots.find((s) => s.kind === kind && s.status === status)?.count ?? 0, { kind, status });
        }
        oldestPending.set(figures.oldestPendingSeconds.find((p) => p.kind === kind)?.seconds ?? 0, { kind });
      }
      for (const state of SANDBOX_STATES) sandboxes.set(figures.sandboxes.find((s) => s.state === state)?.count ?? 0, { state });
      for (const s of figures.finishedSnapshots) snapshotDuration.record(s.seconds, { kind: s.kind, status: s.status });
      for (const b of figures.finishedBuilds) buildDuration.record(b.seconds, { status: b.status });
      for (const c of figures.schedules) scheduleFired.set(c.lastFiredAt.getTime() / 1000, { workspace: c.workspace });
      if (figures.defaultChanges) defaultChanges.add(figures.defaultChanges);
    } catch (err) {
      log.warn(`metrics: could not read the catalog: ${(err as Error).message}`, { error: err as Error });
    }
  });
  return async () => {
    stop();
    await leadership.release();
  };
}

/** What a host worker reports about its capacity. */
export interface HostCapacity {
  memoryTotalMiB: number;
  memoryReservedMiB: number;
  running: { container: number; vm: number };
}

/** Host worker: the memory its engine offers sandboxes, what running sandboxes reserve, how many run. */
export function recordHostMetrics(
  describe: () => Promise<HostCapacity>,
  log: JsonLogger,
  meter: MetricMeter = Runtime.instance().metricMeter,
): () => void {
  const total = meter.createGauge(metricNames.hostMemoryTotal, 'int', '', 'Memory this host offers sandboxes, bytes');
  const reserved = meter.createGauge(metricNames.hostMemoryReserved, 'int', '', 'Memory reserved by running sandboxes, bytes');
  const free = meter.createGauge(metricNames.hostMemoryFree, 'int', '', 'Memory still free for sandboxes, bytes');
  const running = meter.createGauge(metricNames.hostSandboxesRunning, 'int', '', 'Sandboxes (and build sandboxes) running, by class');
  const MiB = 1024 * 1024;
  return every(REFRESH_MS, async () => {
    try {
      const facts = await describe();
      total.set(facts.memoryTotalMiB * MiB);
      reserved.set(facts.memoryReservedMiB * MiB);
      free.set(Math.max(0, facts.memoryTotalMiB - facts.memoryReservedMiB) * MiB);
      running.set(facts.running.container, { class: 'container' });
      running.set(facts.running.vm, { class: 'vm' });
    } catch (err) {
      log.warn(`metrics: could not describe the host: ${(err as Error).message}`, { error: err as Error });
    }
  });
}

/** Where a started sandbox came from, read from what the start was asked to use. */
/** The sandbox class an activity works on: its typed handle's backend, else its name (vmBoot, startVmSandbox, …). */
function classOf(type: string, args: Record<string, unknown>): 'vm' | 'container' {
  const backend = (args.handle as { backend?: unknown } | undefined)?.backend;
  if (backend === 'vm' || backend === 'container') return backend;
  // Runs recorded before typed handles pass the handle as text, a vm's as `vm:<id>`.
  const text = typeof args.containerId === 'string' ? parseHandleText(args.containerId) : undefined;
  return text?.backend === 'vm' || type.startsWith('vm') || type.includes('Vm') ? 'vm' : 'container';
}

function startPath(type: string, input: Record<string, unknown>): string | undefined {
  if (type === 'startVmSandbox' || type === 'vmBoot') return 'boot';
  if (type === 'restoreVmSandbox' || type === 'vmRestore') {
    const ref = String(input.stateRef ?? '');
    return ref.includes('/snapflow/sessions/') ? 'restore-session' : ref.includes('/snapflow/golden/') ? 'restore-golden' : 'restore';
  }
  if (type === 'containerBoot' || (type === 'createTempSandbox' && input.role === 'sandbox')) return 'create';
  return undefined;
}

/**
 * Host worker: jobs (duration by class and outcome), sandbox starts (latency by restore path), session saves (time
 * and size), cache lookups; read from each activity's input and result, so the activities stay free of metrics.
 */
export function hostActivityMetrics(meter: MetricMeter = Runtime.instance().metricMeter): ActivityInterceptorsFactory {
  const jobs = meter.createHistogram(base(metricNames.jobDuration, '_seconds'), 'float', 'seconds', 'User jobs by class and outcome');
  const starts = meter.createHistogram(
    base(metricNames.sandboxStart, '_seconds'),
    'float',
    'seconds',
    'Sandbox start latency by class and restore path (boot, restore-session, restore-golden, create)',
  );
  const saveTime = meter.createHistogram(
    base(metricNames.sessionSaveDuration, '_seconds'),
    'float',
    'seconds',
    'Session save time by class',
  );
  const saveSize = meter.createHistogram(base(metricNames.sessionSaveSize, '_bytes'), 'int', 'bytes', 'Saved vm machine size (zstd)');
  const hits = meter.createCounter(base(metricNames.cacheHits, '_total'), '', 'Snapshot cache lookups answered from this host');
  const misses = meter.createCounter(base(metricNames.cacheMisses, '_total'), '', 'Snapshot cache lookups that pulled from storage');
  const evictions = meter.createCounter(base(metricNames.cacheEvictions, '_total'), '', 'Cached snapshots removed from this host');
  for (const counter of [hits, misses, evictions]) counter.add(0);
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const type = ctx.info.activityType;
        const args = (input.args[0] ?? {}) as Record<string, unknown>;
        const started = performance.now();
        const seconds = () => (performance.now() - started) / 1000;
        const cls = classOf(type, args);
        // A user's job is an exec with a timeout; the build steps' execs have none.
        const job = JOB_ACTIVITY_NAMES.includes(type) && typeof args.timeoutMs === 'number';
        let result: unknown;
        try {
          result = await next(input);
        } catch (err) {
          if (job) jobs.record(seconds(), { class: cls, outcome: 'error' });
          throw err;
        }
        if (job) {
          const r = result as { exitCode: number; timedOut?: boolean };
          jobs.record(seconds(), { class: cls, outcome: r.timedOut ? 'timed_out' : r.exitCode === 0 ? 'succeeded' : 'failed' });
        }
        const path = startPath(type, args);
        if (path) starts.record(seconds(), { class: cls, path, fetched: String(Boolean((result as { pulled?: boolean }).pulled)) });
        if (type === 'snapshotVmSandbox' || type === 'vmSaveSession') {
          const saved = result as { bytes: number; savedMs: number };
          saveTime.record(saved.savedMs / 1000, { class: 'vm' });
          saveSize.record(saved.bytes, { class: 'vm' });
        } else if (
          (type === 'commitSandbox' || type === 'containerSaveSession') &&
          String(args.repository ?? '').startsWith('snapflow/sessions/')
        ) {
          saveTime.record(seconds(), { class: 'container' });
        } else if (type === 'cacheSnapshot') {
          ((result as { pulled: boolean }).pulled ? misses : hits).add(1);
        } else if (type === 'evictSnapshot' && (result as { evicted: boolean }).evicted) {
          evictions.add(1);
        }
        return result;
      },
    },
  });
}

/**
 * Both workers: every failed activity attempt, by activity and typed code (`INTERNAL` for an untyped one), so an
 * alert can tell a registry outage (`STORAGE_UNAVAILABLE`) from a bad image (`VERIFY_FAILED`).
 */
export function activityFailureMetrics(worker: string, meter: MetricMeter = Runtime.instance().metricMeter): ActivityInterceptorsFactory {
  const failures = meter.createCounter(base(metricNames.activityFailures, '_total'), '', 'Failed activity attempts by activity and code');
  failures.add(0, { worker, activity: 'none', code: 'none' }); // the series exists before the first failure
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        try {
          return await next(input);
        } catch (err) {
          failures.add(1, { worker, activity: ctx.info.activityType, code: describeFailure(err).code });
          throw err;
        }
      },
    },
  });
}
