// A host worker process under the supervisor `npm start` uses (scripts/supervisor.ts): killed with SIGKILL in the
// middle of a golden build, it is started again by the supervisor and the build completes with nobody touching
// it; stopped with SIGTERM in the middle of a step, it finishes that step first (drains), and the step runs once.
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { hosts } from '../db/schema';
import { CONTAINER_LABEL } from '../lib/ids';
import { superviseWorker, restartDelay, type SupervisedWorker } from '../scripts/supervisor';
import { makeBareRepo } from './support/repos';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';
import { workerLogFile } from './support/workerLogs';

let t: TestEnv;
let host: SupervisedWorker;
const hostId = uniqueHostId('supervised');
const restarts: Array<{ code: number | null; signal: NodeJS.Signals | null; delayMs: number }> = [];
const lines: string[] = [];

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const temps = () => t.docker.listContainers({ all: true, filters: { label: [`${CONTAINER_LABEL}=temp`] } });

async function configure(workspace: string, repoDir: string): Promise<void> {
  const repo = makeBareRepo(repoDir, `${workspace}-deps`, { 'tembo.nix': '{ }\n' });
  await t.client.golden.setConfig({
    workspace,
    repos: [repo],
    prebuildDeps: true,
    depsFallbackCommand: 'sleep 8 && echo done > .deps-built',
    targets: ['medium:codex'],
  });
}

/** Every buildDeps attempt the build's history records: [attempt, completed?]. */
async function buildDepsAttempts(workflowId: string): Promise<{ started: number[]; completed: number }> {
  const history = await t.client.temporal.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Set<string>();
  const started: number[] = [];
  let completed = 0;
  for (const event of history.events ?? []) {
    const id = String(event.eventId);
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'buildDeps') scheduled.add(id);
    const s = event.activityTaskStartedEventAttributes;
    if (s && scheduled.has(String(s.scheduledEventId))) started.push(s.attempt ?? 0);
    const c = event.activityTaskCompletedEventAttributes;
    if (c && scheduled.has(String(c.scheduledEventId))) completed++;
  }
  return { started, completed };
}

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  // The in-process host offers little memory, so every build is placed on the supervised process.
  const small = uniqueHostId('small');
  await t.startHostWorker({ hostId: small, memoryLimitMiB: 2100 });
  await t.client.refreshHost(small);
  const logs = join(t.stack.dir, `supervised-${hostId}`);
  mkdirSync(logs, { recursive: true });
  host = superviseWorker({
    name: 'host',
    script: 'workers/host.ts',
    cwd: t.stack.dir, // no .env there: only this environment counts
    env: { ...process.env, ...t.env, SNAPFLOW_HOST_ID: hostId },
    logFile: join(logs, 'host.log'),
    onLine: (line) => lines.push(line),
    onRestart: (event) => restarts.push(event),
  });
  host.start();
  await until('the supervised host to register', async () => (await t.db.db.select().from(hosts).where(eq(hosts.id, hostId)))[0]);
}, 180_000);

afterAll(async () => {
  await host?.stop();
  await t?.teardown();
});

test('restarts back off: 1 s, 2 s, 4 s … capped', () => {
  expect([0, 1, 2, 3, 10].map((n) => restartDelay(n))).toEqual([1000, 2000, 4000, 8000, 30_000]);
});

test('kill -9 of the host worker mid-build: the supervisor restarts it and the build completes on its own', async () => {
  const ws = 'ws-supervised-kill';
  await configure(ws, mkdtempSync(join(t.stack.dir, 'sup-kill-')));
  const started = await t.client.golden.buildNow({ workspace: ws });
  await until('the temporary sandbox', async () => (await temps()).length > 0 || undefined);
  await new Promise((r) => setTimeout(r, 2000)); // inside the slow dependency step
  const killed = host.child!;
  process.kill(killed.pid!, 'SIGKILL'); // a crash, from outside the supervisor
  await until('the restart', async () => (restarts.length > 0 && host.child && host.child !== killed) || undefined);
  expect(restarts[0]).toMatchObject({ signal: 'SIGKILL', delayMs: 1000 });

  const result = await t.client.golden.waitForBuild(started.workflowId);
  expect(result).toMatchObject({ status: 'succeeded', hostId });
  expect(await temps()).toEqual([]);
}, 240_000);

test('SIGTERM mid-step: the host worker finishes the step, exits, and the step ran exactly once', async () => {
  const ws = 'ws-supervised-drain';
  await configure(ws, mkdtempSync(join(t.stack.dir, 'sup-drain-')));
  const before = restarts.length;
  const started = await t.client.golden.buildNow({ workspace: ws });
  await until('the temporary sandbox', async () => (await temps()).length > 0 || undefined);
  await new Promise((r) => setTimeout(r, 2000)); // inside the 8 s dependency step
  const stopped = host.child!;
  const exited = new Promise<number | null>((done) => stopped.once('exit', (code) => done(code)));
  stopped.kill('SIGTERM');
  expect(await exited).toBe(0); // a clean stop after draining, not a crash
  // By the time the stopped worker exits, the step it was running has completed, on its first attempt.
  const atExit = await buildDepsAttempts(started.workflowId);
  expect(atExit).toEqual({ started: [1], completed: 1 });

  const result = await t.client.golden.waitForBuild(started.workflowId); // the supervisor's new worker goes on
  expect(result).toMatchObject({ status: 'succeeded', hostId });
  expect(await buildDepsAttempts(started.workflowId)).toEqual({ started: [1], completed: 1 });
  expect(restarts.length).toBe(before + 1);
  expect(readFileSync(host.logFile, 'utf8')).toContain(hostId);
  // The in-process control worker's lines (the Runtime logger) land in this file's worker log, as JSON.
  const inProcess = readFileSync(workerLogFile('in-process-workerSupervision.e2e.test.ts'), 'utf8').trim().split('\n');
  expect(inProcess.map((line) => JSON.parse(line) as { workflowId?: string }).some((l) => l.workflowId === started.workflowId)).toBe(true);
}, 240_000);
