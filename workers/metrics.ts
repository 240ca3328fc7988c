// snapflow's own Prometheus metrics, recorded through the Temporal Runtime's metric meter so that one endpoint per
// worker (SNAPFLOW_METRICS_ADDRESS, served by the SDK's exporter) has both the SDK's metrics and these.
// Control worker: the catalog's figures, read every 15 s. Host worker: its memory, and its snapshot cache's
// hits, misses and evictions (from the results of its cache activities).
import type { MetricMeter } from '@temporalio/common';
import { Runtime, type ActivityInterceptorsFactory } from '@temporalio/worker';
import { readCatalogFigures } from '../catalog/metrics';
import type { Db } from '../db/client';
import type { HostFacts } from '../lib/hosts';
import { SANDBOX_STATES, SNAPSHOT_KINDS, SNAPSHOT_STATUSES } from '../lib/vocabulary';
import type { JsonLogger } from './log';

/** Every metric snapflow itself exports (the dashboard in ops/grafana uses these and the SDK's `temporal_*`). */
export const metricNames = {
  snapshots: 'snapflow_snapshots',
  sandboxes: 'snapflow_sandboxes',
  oldestPending: 'snapflow_snapshot_oldest_pending_seconds',
  snapshotDuration: 'snapflow_snapshot_duration_seconds',
  goldenBuildDuration: 'snapflow_golden_build_duration_seconds',
  defaultChanges: 'snapflow_default_changes_total',
  hostMemoryTotal: 'snapflow_host_memory_total_bytes',
  hostMemoryReserved: 'snapflow_host_memory_reserved_bytes',
  hostMemoryFree: 'snapflow_host_memory_free_bytes',
  cacheHits: 'snapflow_host_cache_hits_total',
  cacheMisses: 'snapflow_host_cache_misses_total',
  cacheEvictions: 'snapflow_host_cache_evictions_total',
} as const;

/** Histogram buckets in seconds: from a quick image snapshot to a long golden build. */
export const durationBuckets: Record<string, number[]> = {
  [metricNames.snapshotDuration]: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600],
  [metricNames.goldenBuildDuration]: [5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
};

const REFRESH_MS = 15_000;

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

/** Control worker: snapshots by kind and status, sandboxes by state, pending age, durations, default changes. */
export function recordCatalogMetrics(db: Db, log: JsonLogger, meter: MetricMeter = Runtime.instance().metricMeter): () => void {
  const snapshots = meter.createGauge(metricNames.snapshots, 'int', '', 'Snapshots in the catalog by kind and status');
  const sandboxes = meter.createGauge(metricNames.sandboxes, 'int', '', 'Sandboxes by state');
  const oldestPending = meter.createGauge(metricNames.oldestPending, 'float', 's', 'Age of the oldest pending snapshot by kind');
  const snapshotDuration = meter.createHistogram(
    metricNames.snapshotDuration,
    'float',
    's',
    'Time a snapshot spent pending before it became active or failed, by kind and status',
  );
  const buildDuration = meter.createHistogram(metricNames.goldenBuildDuration, 'float', 's', 'Golden build run time by status');
  const defaultChanges = meter.createCounter(metricNames.defaultChanges, '', 'Default snapshot changes (set, promote, rollback)');
  defaultChanges.add(0);
  let since = new Date();
  return every(REFRESH_MS, async () => {
    try {
      const figures = await readCatalogFigures(db, { since });
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
      if (figures.defaultChanges) defaultChanges.add(figures.defaultChanges);
    } catch (err) {
      log.warn(`metrics: could not read the catalog: ${(err as Error).message}`);
    }
  });
}

/** Host worker: the memory its engine offers sandboxes and what running sandboxes reserve. */
export function recordHostMetrics(
  describe: () => Promise<HostFacts>,
  log: JsonLogger,
  meter: MetricMeter = Runtime.instance().metricMeter,
): () => void {
  const total = meter.createGauge(metricNames.hostMemoryTotal, 'int', 'By', 'Memory this host offers sandboxes');
  const reserved = meter.createGauge(metricNames.hostMemoryReserved, 'int', 'By', 'Memory reserved by running sandboxes');
  const free = meter.createGauge(metricNames.hostMemoryFree, 'int', 'By', 'Memory still free for sandboxes');
  const MiB = 1024 * 1024;
  return every(REFRESH_MS, async () => {
    try {
      const facts = await describe();
      total.set(facts.memoryTotalMiB * MiB);
      reserved.set(facts.memoryReservedMiB * MiB);
      free.set(Math.max(0, facts.memoryTotalMiB - facts.memoryReservedMiB) * MiB);
    } catch (err) {
      log.warn(`metrics: could not describe the host: ${(err as Error).message}`);
    }
  });
}

/** Counts cache hits, misses and evictions from what the host's cache activities return. */
export const hostCacheMetrics: ActivityInterceptorsFactory = (ctx) => ({
  inbound: {
    async execute(input, next) {
      const result = await next(input);
      const type = ctx.info.activityType;
      if (type === 'cacheSnapshot') {
        const { pulled } = result as { pulled: boolean };
        ctx.metricMeter.createCounter(pulled ? metricNames.cacheMisses : metricNames.cacheHits, '', 'Snapshot cache lookups').add(1);
      } else if (type === 'evictSnapshot' && (result as { evicted: boolean }).evicted) {
        ctx.metricMeter.createCounter(metricNames.cacheEvictions, '', 'Cached snapshots removed from this host').add(1);
      }
      return result;
    },
  },
});

/** Makes the cache counters appear (at 0) before the first lookup, so dashboards and alerts see them. */
export function initHostCacheMetrics(meter: MetricMeter = Runtime.instance().metricMeter): void {
  for (const name of [metricNames.cacheHits, metricNames.cacheMisses, metricNames.cacheEvictions]) meter.createCounter(name).add(0);
}
