// Both workers as processes, as an operator runs them: each serves Prometheus metrics (the SDK's and snapflow's)
// on its own loopback port, logs one JSON object per line with the run's ids, and never logs a secret. The
// Grafana dashboard in ops/grafana only queries metrics the workers really export.
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { runDoctor } from '../client/doctor';
import { hosts } from '../db/schema';
import { freePort, projectRoot } from '../scripts/stack';
import { superviseWorker, type SupervisedWorker } from '../scripts/supervisor';
import { JsonLogger } from '../workers/log';
import { metricNames } from '../workers/metrics';
import { makeBareRepo } from './support/repos';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';
import { workerLogFile } from './support/workerLogs';

let t: TestEnv;
const workers: SupervisedWorker[] = [];
const hostId = uniqueHostId('ops');
const ports = { control: 0, host: 0 };

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** Every sample line's series (name and labels as written): the same series twice would be a duplicate. */
function seriesOf(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.slice(0, l.lastIndexOf(' ')));
}

/** `# TYPE` lines per metric: one each, or the exposition is invalid. */
function typesOf(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('# TYPE '))
    .map((l) => l.split(' ')[2]!);
}

const duplicates = (items: string[]): string[] => items.filter((item, i) => items.indexOf(item) !== i);

/** Metric names in Prometheus text format, as a histogram's series are named (_bucket, _sum, _count). */
function metricNamesOf(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(/[{\s]/)[0]!),
  );
}

const logLines = (name: string): Array<Record<string, unknown>> =>
  readFileSync(workerLogFile(`operations-${name}`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

beforeAll(async () => {
  t = await createTestEnv();
  ports.control = await freePort();
  ports.host = await freePort();
  for (const [name, script, port] of [
    ['control', 'workers/control.ts', ports.control],
    ['host', 'workers/host.ts', ports.host],
  ] as const) {
    const worker = superviseWorker({
      name,
      script,
      cwd: t.stack.dir, // no .env there: only this environment counts
      env: {
        ...process.env,
        ...t.env,
        SNAPFLOW_HOST_ID: hostId,
        SNAPFLOW_WORKFLOW_BUNDLE: t.stack.bundlePath,
        SNAPFLOW_METRICS_ADDRESS: String(port),
        SNAPFLOW_LOG_LEVEL: 'debug',
      },
      logFile: workerLogFile(`operations-${name}`),
    });
    workers.push(worker);
    worker.start();
  }
  await until('the host to register', async () => (await t.db.db.select().from(hosts).where(eq(hosts.id, hostId)))[0]);
}, 180_000);

afterAll(async () => {
  for (const w of workers) await w.stop();
  await t?.teardown();
});

test('a golden build through worker processes: metrics on both ports, JSON logs with the run ids, no secret', async () => {
  const ws = 'ws-operations';
  const repo = makeBareRepo(mkdtempSync(join(t.stack.dir, 'ops-')), 'ops-repo', { 'README.md': 'ops\n' });
  await t.client.golden.setConfig({ workspace: ws, repos: [repo], targets: ['small:codex'] });
  const started = await t.client.golden.buildNow({ workspace: ws });
  const result = await t.client.golden.waitForBuild(started.workflowId);
  expect(result).toMatchObject({ status: 'succeeded', hostId });
  // A user's job in a container sandbox: its start and its run show on the host's metrics.
  const sandbox = await t.client.sandboxes.create({ workspace: ws, class: 'container', size: 'small', runtime: 'codex', keepAlive: true });
  const job = await t.client.sandboxes.runJob(sandbox.sandboxId, { command: ['sh', '-c', 'echo metrics'] });
  expect(job).toMatchObject({ exitCode: 0 });
  await t.client.sandboxes.destroy(sandbox.sandboxId);

  // Metrics: the catalog's figures are read every 15 s, so wait for this build to show.
  const control = await until('the build in the control worker metrics', async () => {
    const text = await scrape(ports.control);
    return /snapflow_golden_build_duration_seconds_count\{[^}]*status="succeeded"[^}]*\} [1-9]/.test(text) ? text : undefined;
  });
  expect(control).toMatch(/snapflow_snapshots\{[^}]*kind="golden"[^}]*status="active"[^}]*\} [1-9]/);
  expect(control).toMatch(/snapflow_default_changes_total(\{[^}]*\})? [1-9]/);
  expect(control).toMatch(/snapflow_catalog_metrics_leader(\{[^}]*\})? 1/);
  // The SDK's own: durations in seconds with the unit in the name, counters ending in _total.
  expect(control).toMatch(/temporal_workflow_task_schedule_to_start_latency_seconds_bucket\{[^}]*le="0\.\d+"/);
  expect(control).toMatch(/temporal_workflow_completed_total/);
  expect(control).not.toMatch(/_milliseconds|latency_bucket/);
  expect(control).toMatch(/snapflow_activity_failures_total\{[^}]*worker="control"/);
  const host = await until('the host memory in the host worker metrics', async () => {
    const text = await scrape(ports.host);
    return /snapflow_host_memory_free_bytes(\{[^}]*\})? [1-9]/.test(text) ? text : undefined;
  });
  expect(host).toMatch(/temporal_activity_execution_latency_seconds_bucket/);
  expect(host).toMatch(/snapflow_host_cache_hits_total/);
  expect(host).toMatch(/snapflow_job_duration_seconds_count\{[^}]*class="container"[^}]*outcome="succeeded"[^}]*\} 1\b/);
  expect(host).toMatch(/snapflow_sandbox_start_seconds_count\{[^}]*class="container"[^}]*path="create"[^}]*\} [1-9]/);
  expect(host).toMatch(/snapflow_host_sandboxes_running\{[^}]*class="vm"[^}]*\} \d/);
  expect(host).toMatch(/snapflow_activity_failures_total\{[^}]*worker="host"/);
  // Each series once, each metric typed once (several control workers would also agree: one reports the catalog).
  for (const text of [control, host]) {
    expect(duplicates(seriesOf(text))).toEqual([]);
    expect(duplicates(typesOf(text))).toEqual([]);
  }

  // `snapflow doctor` names the endpoints it reaches.
  const doctor = await runDoctor({ ...t.env, SNAPFLOW_METRICS_ADDRESS: String(ports.control) });
  expect(doctor.find((c) => c.name === 'metrics')).toMatchObject({
    status: 'ok',
    detail: expect.stringContaining(`http://127.0.0.1:${ports.control}/metrics`),
  });

  // The dashboard queries nothing the workers do not export. Some series appear only once what they count happened
  // (a histogram's first sample, an SDK failure counter's first failure): snapflow's are declared in metricNames.
  const declared = Object.values(metricNames).flatMap((name) => [name, `${name}_bucket`, `${name}_count`, `${name}_sum`]);
  const afterAFailure = ['temporal_workflow_failed_total', 'temporal_activity_execution_failed_total'];
  const exported = new Set([...metricNamesOf(control), ...metricNamesOf(host), ...declared, ...afterAFailure]);
  const dashboard = JSON.parse(readFileSync(join(projectRoot, 'ops', 'grafana', 'snapflow.json'), 'utf8')) as {
    panels: Array<{ targets?: Array<{ expr: string }> }>;
  };
  const queried = dashboard.panels.flatMap((p) => p.targets ?? []).flatMap((q) => q.expr.match(/\b(snapflow|temporal)_[a-z0-9_]+/g) ?? []);
  expect(queried.length).toBeGreaterThan(10);
  expect(queried.filter((name) => !exported.has(name))).toEqual([]);

  // Logs: one JSON object per line; activity and workflow lines carry the run's ids; the host's carry its id.
  for (const name of ['control', 'host']) {
    for (const line of logLines(name))
      expect(line).toEqual(
        expect.objectContaining({
          time: expect.any(String),
          level: expect.any(String),
          message: expect.any(String),
          service: `snapflow-${name}`,
          version: expect.stringMatching(/^\d+\.\d+\.\d+/),
        }),
      );
  }
  const buildLines = logLines('host').filter((l) => l.workflowId === started.workflowId);
  expect(buildLines.some((l) => typeof l.runId === 'string' && typeof l.activity === 'string' && l.host === hostId)).toBe(true);
  expect(logLines('control').some((l) => l.workflowId === started.workflowId && typeof l.runId === 'string')).toBe(true);

  // Never a secret: the storage password was used for the push, and must not be in either log.
  for (const name of ['control', 'host']) {
    const text = readFileSync(workerLogFile(`operations-${name}`), 'utf8');
    expect(text).not.toContain(t.stack.storage.password);
    expect(text).not.toMatch(/ghs_[A-Za-z0-9]{36}|PRIVATE KEY-----/);
  }
}, 300_000);

test('an error on a log line keeps its name, code, stack and cause', () => {
  const lines: string[] = [];
  const log = new JsonLogger({ level: 'info', fields: { service: 'snapflow-host', version: '1.2.3' }, write: (l) => lines.push(l) });
  const err = Object.assign(new Error('push failed', { cause: new Error('socket hang up') }), { code: 'STORAGE_UNAVAILABLE' });
  log.error('upload failed', { error: err });
  const entry = JSON.parse(lines[0]!) as { service: string; version: string; error: Record<string, unknown> };
  expect(entry).toMatchObject({ service: 'snapflow-host', version: '1.2.3' });
  expect(entry.error).toMatchObject({
    name: 'Error',
    message: 'push failed',
    code: 'STORAGE_UNAVAILABLE',
    cause: { message: 'socket hang up' },
  });
  expect(entry.error.stack).toMatch(/operations\.e2e\.test\.ts:\d+/);
});

test('the logger redacts the secrets it knows and token and key shapes, even when a message carries them', () => {
  const lines: string[] = [];
  const password = 'pa"ss\\word-1234';
  const key = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----';
  const log = new JsonLogger({ level: 'info', fields: { host: 'h1' }, secrets: [password], write: (l) => lines.push(l) });
  log.debug('not at info');
  log.info(`login with ${password}`, { token: `ghs_${'a'.repeat(36)}`, key, workflowId: 'wf', workflowRunId: 'run', activityType: 'push' });
  expect(lines).toHaveLength(1);
  const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
  expect(entry).toMatchObject({
    level: 'info',
    message: 'login with [redacted]',
    host: 'h1',
    workflowId: 'wf',
    runId: 'run',
    activity: 'push',
  });
  expect(lines[0]).not.toContain('pa\\"ss');
  expect(lines[0]).not.toContain('ghs_');
  expect(lines[0]).not.toContain('PRIVATE KEY');
});
