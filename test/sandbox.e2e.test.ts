// Sandboxes on the real stack: one entity workflow per sandbox, jobs as Updates, a session
// snapshot after each successful job, the restore order with its skip reasons, pins, and a race-safe promote.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';
import { hostCache, sandboxes, snapshots } from '../db/schema';
import { SYSTEM_SCOPE, taskQueues, workflowIds } from '../lib/ids';
import type { sandbox } from '../workflows';
import { recordHistory } from './support/histories';
import { createTestEnv, uniqueHostId, type RunningWorker, type TestEnv, destroyEverySandbox } from './support/stack';

let t: TestEnv;
let host: RunningWorker;
const hostId = uniqueHostId('sbx');
const ws = 'ws-sandbox';

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  host = await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
});
afterAll(async () => {
  // Other test files share this dockerd: end every sandbox this file made, so none holds memory or a container.
  await destroyEverySandbox(t);
  await t?.teardown();
});

const sh = (script: string) => ({ command: ['sh', '-c', script] });
const create = (extra: Partial<Parameters<TestEnv['client']['sandboxes']['create']>[0]> = {}) =>
  t.client.sandboxes.create({ workspace: ws, class: 'vm', size: 'small', runtime: 'codex', ...extra });
const sessionRows = async (sandboxId: string) =>
  t.db.db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.sandboxId, sandboxId), eq(snapshots.kind, 'session')));
const reasons = (d: { skipped: Array<{ step: string; reason: string }> }) => d.skipped.map((s) => `${s.step}:${s.reason}`);

test('a fresh vm sandbox starts from the base image and says why each earlier step was skipped', async () => {
  const { sandboxId, status } = await create({ workspace: 'ws-fresh' });
  expect(status).toMatchObject({ state: 'idle', hostId, lastStart: { source: 'base' } });
  expect(reasons(status.lastStart!)).toEqual([
    'running:keep-alive-off',
    'session:no-session-snapshot',
    'golden-pin:no-pin',
    'golden-workspace:no-workspace-default',
    'golden-system:no-system-default',
  ]);
  const [row] = await t.db.db.select().from(sandboxes).where(eq(sandboxes.id, sandboxId));
  expect(row).toMatchObject({ state: 'idle', hostId, containerId: status.containerId });
  await t.client.sandboxes.destroy(sandboxId);
});

test('a successful job saves a session snapshot and stops the sandbox; resume restores that session', async () => {
  const { sandboxId } = await create();
  const job = await t.client.sandboxes.runJob(
    sandboxId,
    sh('mkdir -p /workspace && echo "work of job 1" > /workspace/notes.txt && echo done'),
    { waitForSession: true },
  );
  expect(job).toMatchObject({ sequence: 1, exitCode: 0, stdout: 'done\n', stopped: true, sessionSnapshotId: expect.any(String) });
  const [session] = await sessionRows(sandboxId);
  expect(session).toMatchObject({
    id: job.sessionSnapshotId,
    status: 'active',
    origin: 'job',
    storedRef: expect.stringContaining('@sha256:'),
  });
  expect(await t.db.db.select().from(hostCache).where(eq(hostCache.snapshotId, session!.id))).toHaveLength(1);

  // The explicit start stays; a job on the stopped sandbox would start it the same way (sandboxLifecycle.e2e).
  const resumed = await t.client.sandboxes.resume(sandboxId);
  expect(resumed.lastStart).toMatchObject({ source: 'session', snapshotId: session!.id });
  expect(reasons(resumed.lastStart!)).toEqual(['running:keep-alive-off']);
  const read = await t.client.sandboxes.runJob(sandboxId, sh('cat /workspace/notes.txt'), { waitForSession: true });
  expect(read.stdout).toBe('work of job 1\n');
  // The second session supersedes the first.
  expect((await t.client.sandboxes.status(sandboxId)).latestSessionSnapshotId).toBe(read.sessionSnapshotId);
  expect(await sessionRows(sandboxId)).toHaveLength(2);
});

test('a failed job saves nothing; the previous session stays the latest', async () => {
  const { sandboxId } = await create({ keepAlive: true });
  const ok = await t.client.sandboxes.runJob(sandboxId, sh('echo 1 > /tmp/state'), { waitForSession: true });
  const failed = await t.client.sandboxes.runJob(sandboxId, sh('echo 2 > /tmp/state; echo broken >&2; exit 3'));
  expect(failed).toMatchObject({ exitCode: 3, stderr: 'broken\n', stopped: false });
  expect(failed.sessionSnapshotId).toBeUndefined();
  expect(await sessionRows(sandboxId)).toHaveLength(1);
  expect((await t.client.sandboxes.status(sandboxId)).latestSessionSnapshotId).toBe(ok.sessionSnapshotId);
  // Keep-alive: still running, the next start reuses it as it is.
  expect(await t.client.sandboxes.explain(sandboxId)).toMatchObject({ source: 'running' });
  await t.client.sandboxes.destroy(sandboxId);
});

test('container sandboxes run jobs but never snapshot; promote is refused', async () => {
  const { sandboxId } = await create({ class: 'container', keepAlive: true });
  const job = await t.client.sandboxes.runJob(sandboxId, sh('echo hi'));
  expect(job).toMatchObject({ exitCode: 0, stdout: 'hi\n' });
  expect(job.sessionSnapshotId).toBeUndefined();
  await expect(t.client.sandboxes.promote(sandboxId, { name: 'nope-v1' })).rejects.toMatchObject({ code: 'SANDBOX_CLASS_UNSUPPORTED' });
  expect(await t.client.sandboxes.destroy(sandboxId)).toMatchObject({ state: 'stopped' });
  expect(reasons(await t.client.sandboxes.explain(sandboxId))).toContain('session:container-class');
  await recordHistory(t.client.temporal, workflowIds.sandbox(sandboxId), 'sandbox-container');
});

test('golden selection: pin on the issue → workspace default → system default, each skip explained', async () => {
  // A promoted keep-alive sandbox becomes the workspace default (codex/small) and a system default.
  const maker = await create({ keepAlive: true });
  await t.client.sandboxes.runJob(maker.sandboxId, sh('echo workspace-golden > /etc/golden'));
  const wsGolden = await t.client.sandboxes.promote(maker.sandboxId, { name: 'ws-golden-v1', setDefault: true });
  expect(wsGolden.default).toMatchObject({ workspace: ws, size: 'small', version: 1 });
  await t.client.sandboxes.runJob(maker.sandboxId, sh('echo pinned-golden > /etc/golden'));
  const pinned = await t.client.sandboxes.promote(maker.sandboxId, { name: 'pinned-v1' });
  await t.client.sandboxes.destroy(maker.sandboxId);

  const sys = await t.client.sandboxes.create({ workspace: SYSTEM_SCOPE, class: 'vm', size: 'small', runtime: 'pi', keepAlive: true });
  await t.client.sandboxes.runJob(sys.sandboxId, sh('echo system-golden > /etc/golden'));
  await t.client.sandboxes.promote(sys.sandboxId, { name: 'system-pi-v1', setDefault: true });
  await t.client.sandboxes.destroy(sys.sandboxId);

  const golden = async (extra: Parameters<typeof create>[0]) => {
    const { sandboxId, status } = await create({ keepAlive: true, ...extra });
    const out = (await t.client.sandboxes.runJob(sandboxId, sh('cat /etc/golden'))).stdout.trim();
    await t.client.sandboxes.destroy(sandboxId);
    return { decision: status.lastStart!, out };
  };

  await t.client.sandboxes.pin({ workspace: ws, issue: 'ENG-1', snapshot: 'pinned-v1' });
  const fromPin = await golden({ issue: 'ENG-1' });
  expect(fromPin).toMatchObject({ decision: { source: 'golden-pin', snapshotId: pinned.snapshotId }, out: 'pinned-golden' });

  const fromWorkspace = await golden({});
  expect(fromWorkspace).toMatchObject({
    decision: { source: 'golden-workspace', snapshotId: wsGolden.snapshotId },
    out: 'workspace-golden',
  });
  expect(reasons(fromWorkspace.decision)).toContain('golden-pin:no-pin');

  // A pi sandbox on the codex pin: the pin is incompatible, there is no pi workspace default, the system one fits.
  const fromSystem = await golden({ runtime: 'pi', issue: 'ENG-1' });
  expect(fromSystem).toMatchObject({ decision: { source: 'golden-system' }, out: 'system-golden' });
  expect(reasons(fromSystem.decision)).toEqual(
    expect.arrayContaining(['golden-pin:pin-incompatible', 'golden-workspace:no-workspace-default']),
  );
});

test('pins refuse what restore could never use', async () => {
  const { sandboxId } = await create();
  const job = await t.client.sandboxes.runJob(sandboxId, sh('true'), { waitForSession: true });
  const [session] = await t.db.db.select().from(snapshots).where(eq(snapshots.id, job.sessionSnapshotId!));
  await expect(t.client.sandboxes.pin({ workspace: ws, issue: 'ENG-2', snapshot: session!.name })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'snapshot',
    message: expect.stringContaining('only golden'),
  });
  await expect(t.client.sandboxes.pin({ workspace: ws, issue: 'ENG-2', snapshot: 'no-such-v1' })).rejects.toMatchObject({
    code: 'NOT_FOUND',
  });
  await expect(t.client.sandboxes.pin({ workspace: ws, issue: "x'; drop table issues;--", snapshot: 'pinned-v1' })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'issue',
  });
  // A codex sandbox already works on ENG-3: the (system) pi golden does not fit it.
  await create({ issue: 'ENG-3' });
  await expect(t.client.sandboxes.pin({ workspace: ws, issue: 'ENG-3', snapshot: 'system-pi-v1' })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    message: expect.stringContaining('pi/small/base-1'),
  });
  await expect(t.client.sandboxes.pin({ workspace: ws, issue: 'ENG-3', snapshot: 'ws-golden-v1' })).resolves.toMatchObject({
    snapshotId: expect.any(String),
  });
});

test('a session missing from storage and from every host cache is skipped as not available', async () => {
  const { sandboxId } = await create();
  const job = await t.client.sandboxes.runJob(sandboxId, sh('true'), { waitForSession: true });
  // As if storage lost the image and the host evicted it: the catalog no longer knows a copy anywhere.
  await t.db.db.update(snapshots).set({ storedRef: null }).where(eq(snapshots.id, job.sessionSnapshotId!));
  await t.db.db.delete(hostCache).where(eq(hostCache.snapshotId, job.sessionSnapshotId!));
  const resumed = await t.client.sandboxes.resume(sandboxId);
  expect(reasons(resumed.lastStart!)).toContain('session:not-available');
  expect(resumed.lastStart!.source).toBe('golden-workspace');
});

test('promote and runJob fired together, many times: exactly one wins each round, never both', async () => {
  const { sandboxId } = await create({ keepAlive: true });
  let jobs = 0;
  let promotions = 0;
  for (let round = 0; round < 12; round++) {
    const promoteFirst = round % 2 === 0;
    const promote = () => t.client.sandboxes.promote(sandboxId, { name: `race-${round}` });
    const job = () => t.client.sandboxes.runJob(sandboxId, sh(`echo ${round} >> /workspace/rounds`));
    const [a, b] = await Promise.allSettled(promoteFirst ? [promote(), job()] : [job(), promote()]);
    const results = [a!, b!];
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ code: 'SANDBOX_BUSY' });
    const winner = (won[0] as PromiseFulfilledResult<object>).value;
    if ('sequence' in winner) jobs++;
    else {
      expect(winner).toMatchObject({ name: `race-${round}`, snapshotId: expect.any(String) });
      promotions++;
    }
    // A job's session is saved after its answer: the sandbox is idle again once that is done.
    expect((await t.client.sandboxes.waitWhileSnapshotting(sandboxId)).state).toBe('idle');
  }
  const promoted = await t.db.db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.sandboxId, sandboxId), eq(snapshots.kind, 'golden')));
  expect(promoted).toHaveLength(promotions);
  expect(await sessionRows(sandboxId)).toHaveLength(jobs);
  expect((await t.client.sandboxes.status(sandboxId)).jobs).toBe(jobs);
  await t.client.sandboxes.destroy(sandboxId);
}, 180_000);

test('state survives a host-worker restart: the same container takes the next job', async () => {
  const { sandboxId, status } = await create({ keepAlive: true });
  await t.client.sandboxes.runJob(sandboxId, sh('echo before > /tmp/mark'));
  await host.stop();
  host = await t.startHostWorker({ hostId });
  const after = await t.client.sandboxes.runJob(sandboxId, sh('cat /tmp/mark'));
  expect(after).toMatchObject({ exitCode: 0, stdout: 'before\n' });
  expect((await t.client.sandboxes.status(sandboxId)).containerId).toBe(status.containerId);
  await t.client.sandboxes.destroy(sandboxId);
});

test('a long-lived sandbox continues as new with its state; its recorded history replays deterministically', async () => {
  const sandboxId = crypto.randomUUID();
  const workflowId = workflowIds.sandbox(sandboxId);
  const handle = await t.client.temporal.workflow.start<typeof sandbox>('sandbox', {
    taskQueue: taskQueues.control,
    workflowId,
    args: [
      {
        sandboxId,
        workspace: ws,
        class: 'vm',
        size: 'small',
        runtime: 'codex',
        profileKey: 'codex/small/base-1',
        keepAlive: true,
        actor: 'operator',
        updatesPerRun: 2,
      },
    ],
  });
  while ((await t.client.sandboxes.status(sandboxId).catch(() => undefined))?.state !== 'idle')
    await new Promise((r) => setTimeout(r, 100));
  for (let i = 1; i <= 3; i++) await t.client.sandboxes.runJob(sandboxId, sh(`echo ${i} >> /tmp/log`));
  const status = await t.client.sandboxes.waitWhileSnapshotting(sandboxId);
  expect(status).toMatchObject({ jobs: 3, state: 'idle' });
  const { runId } = await t.client.temporal.workflow.getHandle(workflowId).describe();
  expect(runId).not.toBe(handle.firstExecutionRunId); // continued as new after two updates, state kept
  expect((await t.client.sandboxes.runJob(sandboxId, sh('cat /tmp/log'))).stdout).toBe('1\n2\n3\n');

  // Replay the first run's history against the current workflow code: a non-deterministic change fails here.
  const history = await t.client.temporal.workflow.getHandle(workflowId, handle.firstExecutionRunId).fetchHistory();
  await Worker.runReplayHistory({ workflowBundle: { codePath: t.stack.bundlePath } }, history);
  if (process.env.SNAPFLOW_RECORD_HISTORY)
    writeFileSync(join(__dirname, 'fixtures', 'sandbox-history.pb'), temporal.api.history.v1.History.encode(history).finish());
  await t.client.sandboxes.destroy(sandboxId);
  await recordHistory(t.client.temporal, workflowId, 'sandbox-vm-continued');
});

test('a long-lived container sandbox continues as new with its state too', async () => {
  const sandboxId = crypto.randomUUID();
  const workflowId = workflowIds.sandbox(sandboxId);
  const handle = await t.client.temporal.workflow.start<typeof sandbox>('sandbox', {
    taskQueue: taskQueues.control,
    workflowId,
    args: [
      {
        sandboxId,
        workspace: ws,
        class: 'container',
        size: 'small',
        runtime: 'codex',
        profileKey: 'codex/small/base-1',
        keepAlive: true,
        actor: 'operator',
        updatesPerRun: 2,
      },
    ],
  });
  while ((await t.client.sandboxes.status(sandboxId).catch(() => undefined))?.state !== 'idle')
    await new Promise((r) => setTimeout(r, 100));
  for (let i = 1; i <= 3; i++) await t.client.sandboxes.runJob(sandboxId, sh(`echo ${i} >> /tmp/log`));
  const { runId } = await t.client.temporal.workflow.getHandle(workflowId).describe();
  expect(runId).not.toBe(handle.firstExecutionRunId);
  expect((await t.client.sandboxes.runJob(sandboxId, sh('cat /tmp/log'))).stdout).toBe('1\n2\n3\n');
  await t.client.sandboxes.destroy(sandboxId);
  await recordHistory(t.client.temporal, workflowId, 'sandbox-container-continued');
});

test('bad input is refused before anything starts', async () => {
  const before = (await t.db.db.select().from(sandboxes)).length;
  await expect(create({ class: 'docker' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'class' });
  await expect(create({ size: 'huge' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'size' });
  await expect(create({ runtime: 'bash' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'runtime' });
  await expect(create({ workspace: 'ws;rm -rf /' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'workspace' });
  await expect(t.client.sandboxes.runJob('not-an-id', sh('true'))).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'sandbox' });
  const { sandboxId } = await create({ keepAlive: true });
  await expect(t.client.sandboxes.runJob(sandboxId, { command: [] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  await expect(t.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', 'echo \u0000'] })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
  });
  await t.client.sandboxes.destroy(sandboxId);
  expect((await t.db.db.select().from(sandboxes)).length).toBe(before + 1);
});
