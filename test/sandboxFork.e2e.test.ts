// `sandbox fork` and promotion of a stopped sandbox on the real stack: a fork of a running sandbox saves its live
// state on the spot (the source keeps running), the fork starts from it by the restore order and says so, and from
// then on the two diverge; a stopped sandbox forks and promotes from its latest session without starting; and the
// refusals are typed.
import { randomUUID } from 'node:crypto';
import { describeFailure } from '../lib/errors';
import { workflowIds } from '../lib/ids';
import { forkUpdate } from '../workflows/contracts/sandbox';
import type { SandboxStatus } from '../workflows';
import { recordHistory } from './support/histories';
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox, runCli } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('fork');
const ws = 'ws-fork';

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId, memoryLimitMiB: 16_000 });
  await t.client.refreshHost(hostId);
  // Paid: promotion needs it; its sandbox defaults are what a fork takes.
  await t.client.workspaces.create({ id: ws, plan: 'paid', admin: 'alice' });
});
afterAll(async () => {
  await destroyEverySandbox(t);
  await t?.teardown();
});

const sh = (script: string) => ({ command: ['sh', '-c', script] });
const create = (extra: Partial<Parameters<TestEnv['client']['sandboxes']['create']>[0]> = {}) =>
  t.client.sandboxes.create({ workspace: ws, class: 'container', size: 'small', runtime: 'codex', keepAlive: true, ...extra });
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => describeFailure(err),
  );
const cat = async (sandboxId: string, file: string) =>
  (await t.client.sandboxes.runJob(sandboxId, sh(`cat ${file} 2>/dev/null || echo absent`))).stdout.trim();

async function until(sandboxId: string, ready: (s: SandboxStatus) => boolean, ms = 90_000): Promise<SandboxStatus> {
  const end = Date.now() + ms;
  for (;;) {
    const status = await t.client.sandboxes.status(sandboxId);
    if (ready(status) || Date.now() > end) return status;
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('a running container sandbox forks from its live state: both keep running, the fork says where it started, and they diverge', async () => {
  const source = await create();
  await t.client.sandboxes.runJob(source.sandboxId, sh('mkdir -p /work && echo before-fork > /work/shared'));

  const fork = await t.client.sandboxes.fork({ sandbox: source.sandboxId });
  expect(fork.forkedFrom).toMatchObject({ sandboxId: source.sandboxId, live: true, snapshotId: expect.any(String) });
  expect(fork.status).toMatchObject({
    state: 'idle',
    lastStart: { source: 'session', snapshotId: fork.forkedFrom.snapshotId, forkedFrom: { sandboxId: source.sandboxId } },
  });
  // The source was not stopped or restarted for it: the same container, still running.
  const after = await t.client.sandboxes.status(source.sandboxId);
  expect(after).toMatchObject({ state: 'idle', containerId: source.status.containerId });

  // What `sandbox status` explains about where the fork started.
  const shown = await runCli(t, ['sandbox', 'status', fork.sandboxId]);
  expect(shown.status).toBe(0);
  expect(shown.stdout).toMatch(
    new RegExp(
      `started from session snapshot session-${source.sandboxId}-fork-${fork.sandboxId.slice(0, 8)} of sandbox ${source.sandboxId} \\(a fork\\)`,
    ),
  );

  // Diverged: each sees the files written before the fork, and none the other wrote after.
  await t.client.sandboxes.runJob(source.sandboxId, sh('echo source-only > /work/source'));
  await t.client.sandboxes.runJob(fork.sandboxId, sh('echo fork-only > /work/fork'));
  expect(await cat(fork.sandboxId, '/work/shared')).toBe('before-fork');
  expect(await cat(source.sandboxId, '/work/shared')).toBe('before-fork');
  expect(await cat(fork.sandboxId, '/work/source')).toBe('absent');
  expect(await cat(source.sandboxId, '/work/fork')).toBe('absent');
  expect(await cat(fork.sandboxId, '/work/fork')).toBe('fork-only');

  // The fork point stays while the fork stands on it: deleting it is refused, naming the fork.
  const pointName = `session-${source.sandboxId}-fork-${fork.sandboxId.slice(0, 8)}`;
  expect(await failure(t.client.snapshots.delete({ workspace: ws, name: pointName }))).toMatchObject({
    code: 'CONFLICT',
    message: expect.stringContaining(`fork point of sandbox ${fork.sandboxId}`),
  });

  // A fork can be forked in turn; the CLI prints the new sandbox and the explanation.
  const again = await runCli(t, ['sandbox', 'fork', fork.sandboxId, '--json']);
  expect(again.status).toBe(0);
  const second = JSON.parse(again.stdout) as { sandboxId: string; forkedFrom: { sandboxId: string } };
  expect(second.forkedFrom.sandboxId).toBe(fork.sandboxId);
  expect(await cat(second.sandboxId, '/work/fork')).toBe('fork-only');
  for (const id of [second.sandboxId, fork.sandboxId, source.sandboxId]) await t.client.sandboxes.destroy(id);
  await recordHistory(t.client.temporal, workflowIds.sandbox(source.sandboxId), 'sandbox-container-fork-source');
  await recordHistory(t.client.temporal, workflowIds.sandbox(fork.sandboxId), 'sandbox-container-fork');
}, 300_000);

test('a fork asked again after its caller died past the save gets the same fork point, not a second one', async () => {
  const source = await create();
  await t.client.sandboxes.runJob(source.sandboxId, sh('mkdir -p /work && echo once > /work/shared'));
  const name = randomUUID();
  // The first caller's save went through, then it died before starting the fork's workflow.
  const first = await t.client.temporal.workflow
    .getHandle(workflowIds.sandbox(source.sandboxId))
    .executeUpdate(forkUpdate, { updateId: `fork/${name}`, args: [{ forkId: name, actor: t.config.actor }] });
  const fork = await t.client.sandboxes.fork({ sandbox: source.sandboxId, name });
  expect(fork.forkedFrom).toMatchObject({ snapshotId: first.snapshotId, live: true });
  expect(await cat(fork.sandboxId, '/work/shared')).toBe('once');
  const points = (await t.client.snapshots.list({ workspace: ws, kind: 'session' })).filter((s) =>
    s.name.includes(`-fork-${name.slice(0, 8)}`),
  );
  expect(points.map((p) => p.id)).toEqual([first.snapshotId]);
});

test('a stopped container fork forks again from its fork point without starting', async () => {
  const source = await create();
  await t.client.sandboxes.runJob(source.sandboxId, sh('mkdir -p /work && echo kept > /work/file'));
  // The fork takes the workspace's idle timeout as it is created, and stops on its own; a container keeps no
  // sessions, so its fork point is what it starts from, and what a fork of it starts from.
  await t.client.workspaces.setDefaults({ id: ws, idleTimeout: '3s' });
  try {
    const fork = await t.client.sandboxes.fork({ sandbox: source.sandboxId });
    const stopped = await until(fork.sandboxId, (s) => s.state === 'stopped');
    expect(stopped.state).toBe('stopped');
    const second = await t.client.sandboxes.fork({ sandbox: fork.sandboxId });
    expect(second.forkedFrom).toEqual({ sandboxId: fork.sandboxId, snapshotId: fork.forkedFrom.snapshotId, live: false });
    // The stopped source stayed stopped: a fork of it never started it.
    expect((await t.client.sandboxes.status(fork.sandboxId)).state).toBe('stopped');
    expect(await cat(second.sandboxId, '/work/file')).toBe('kept');
    for (const id of [second.sandboxId, fork.sandboxId]) await t.client.sandboxes.destroy(id);
  } finally {
    await t.client.workspaces.setDefaults({ id: ws, idleTimeout: null });
  }
  await t.client.sandboxes.destroy(source.sandboxId);
}, 300_000);

test('fork refusals are typed: an unknown sandbox, a stopped one with no session, a taken or invalid name', async () => {
  expect(await failure(t.client.sandboxes.fork({ sandbox: randomUUID() }))).toMatchObject({ code: 'NOT_FOUND', field: 'sandbox' });
  expect(await failure(t.client.sandboxes.fork({ sandbox: 'nope' }))).toMatchObject({ code: 'VALIDATION_FAILED', field: 'sandbox' });

  // No keep-alive: stopped after its job, and a container keeps no session to fork.
  const stopped = await create({ keepAlive: false });
  await t.client.sandboxes.runJob(stopped.sandboxId, sh('true'));
  const none = await failure(t.client.sandboxes.fork({ sandbox: stopped.sandboxId }));
  expect(none).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('no session snapshot to fork') });
  expect(none!.hint).toContain(`snapflow sandbox start ${stopped.sandboxId}`);
  const cli = await runCli(t, ['sandbox', 'fork', stopped.sandboxId]);
  expect(cli).toMatchObject({ status: 4, stderr: expect.stringContaining('NOT_FOUND') });

  const running = await create();
  expect(await failure(t.client.sandboxes.fork({ sandbox: running.sandboxId, name: running.sandboxId }))).toMatchObject({
    code: 'CONFLICT',
    field: 'name',
  });
  expect(await failure(t.client.sandboxes.fork({ sandbox: running.sandboxId, name: 'my fork' }))).toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'name',
  });
  // Same workspace rules as every sandbox verb: an outsider is refused by the client, and by the workflow itself
  // when the Update is sent directly (nothing saved, the source still running).
  expect(await failure(t.client.as('mallory').sandboxes.fork({ sandbox: running.sandboxId }))).toMatchObject({ code: 'PERMISSION_DENIED' });
  const direct = t.client.temporal.workflow
    .getHandle(workflowIds.sandbox(running.sandboxId))
    .executeUpdate(forkUpdate, { args: [{ forkId: randomUUID(), actor: 'mallory' }] });
  expect(await failure(direct)).toMatchObject({ code: 'PERMISSION_DENIED' });
  expect(await t.client.sandboxes.status(running.sandboxId)).toMatchObject({ state: 'idle', containerId: running.status.containerId });
  // Promotion of a container sandbox stays refused, running or stopped.
  expect(await failure(t.client.sandboxes.promote(stopped.sandboxId, { name: 'fork-nope-v1' }))).toMatchObject({
    code: 'SANDBOX_CLASS_UNSUPPORTED',
  });
  for (const id of [running.sandboxId, stopped.sandboxId]) await t.client.sandboxes.destroy(id);
}, 300_000);

test('a stopped vm sandbox promotes and forks from its latest session without starting a machine', async () => {
  const source = await create({ class: 'vm', keepAlive: false });
  const job = await t.client.sandboxes.runJob(source.sandboxId, sh('echo in-session > /root/state'), { waitForSession: true });
  expect(job.sessionSnapshotId).toEqual(expect.any(String));
  expect((await t.client.sandboxes.status(source.sandboxId)).state).toBe('stopped');

  const promoted = await t.client.sandboxes.promote(source.sandboxId, { name: 'stopped-golden-v1' });
  expect(promoted).toMatchObject({ name: 'stopped-golden-v1', snapshotId: expect.any(String) });
  const after = await t.client.sandboxes.status(source.sandboxId);
  expect(after).toMatchObject({ state: 'stopped', latestSessionSnapshotId: job.sessionSnapshotId });
  expect(after.containerId).toBeUndefined();

  const fork = await t.client.sandboxes.fork({ sandbox: source.sandboxId });
  expect(fork.forkedFrom).toEqual({ sandboxId: source.sandboxId, snapshotId: job.sessionSnapshotId, live: false });
  expect(fork.status.lastStart).toMatchObject({ source: 'session', forkedFrom: { sandboxId: source.sandboxId } });
  expect((await t.client.sandboxes.status(source.sandboxId)).state).toBe('stopped');
  expect(await cat(fork.sandboxId, '/root/state')).toBe('in-session');
  for (const id of [fork.sandboxId, source.sandboxId]) await t.client.sandboxes.destroy(id);
  await recordHistory(t.client.temporal, workflowIds.sandbox(source.sandboxId), 'sandbox-vm-stopped-promote-fork');
  await recordHistory(t.client.temporal, workflowIds.sandbox(fork.sandboxId), 'sandbox-vm-fork');
}, 600_000);

test('a running vm sandbox forks from its live machine: the source keeps running, the fork restores it, they diverge', async () => {
  const source = await create({ class: 'vm' });
  await t.client.sandboxes.runJob(source.sandboxId, sh('echo before-fork > /root/shared'), { waitForSession: true });
  const fork = await t.client.sandboxes.fork({ sandbox: source.sandboxId });
  expect(fork.forkedFrom).toMatchObject({ sandboxId: source.sandboxId, live: true });
  // A session save that keeps the machine running: the source's latest session now, the same machine still up.
  expect(await t.client.sandboxes.status(source.sandboxId)).toMatchObject({
    state: 'idle',
    containerId: source.status.containerId,
    latestSessionSnapshotId: fork.forkedFrom.snapshotId,
  });
  expect(fork.status.lastStart).toMatchObject({
    source: 'session',
    machineProfile: expect.any(String),
    forkedFrom: { sandboxId: source.sandboxId },
  });
  await t.client.sandboxes.runJob(source.sandboxId, sh('echo source-only > /root/source'), { waitForSession: true });
  await t.client.sandboxes.runJob(fork.sandboxId, sh('echo fork-only > /root/fork'), { waitForSession: true });
  expect(await cat(fork.sandboxId, '/root/shared')).toBe('before-fork');
  expect(await cat(fork.sandboxId, '/root/source')).toBe('absent');
  expect(await cat(source.sandboxId, '/root/fork')).toBe('absent');
  for (const id of [fork.sandboxId, source.sandboxId]) await t.client.sandboxes.destroy(id);
}, 600_000);
