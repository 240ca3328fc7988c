// A sandbox's lifecycle on the real stack: it stops when idle (freeing its host memory) or past its lifetime, a job
// on a stopped sandbox starts it again and says from where, output streams while the job runs, a job has a timeout,
// and the CLI exits with the job's exit code.
import { describeFailure } from '../lib/errors';
import { workflowIds } from '../lib/ids';
import type { OutputChunk } from '../lib/jobOutput';
import type { SandboxStatus } from '../workflows';
import { recordHistory } from './support/histories';
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox, runCli } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('life');
const ws = 'ws-lifecycle';

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  // Room for one small sandbox (2048 MiB) at a time: a second one fits only once the first has stopped.
  await t.startHostWorker({ hostId, memoryLimitMiB: 3000 });
  await t.client.refreshHost(hostId);
});
afterAll(async () => {
  await destroyEverySandbox(t);
  await t?.teardown();
});

const sh = (script: string) => ({ command: ['sh', '-c', script] });
const create = (extra: Partial<Parameters<TestEnv['client']['sandboxes']['create']>[0]> = {}) =>
  t.client.sandboxes.create({ workspace: ws, class: 'vm', size: 'small', runtime: 'codex', ...extra });

async function until(sandboxId: string, ready: (s: SandboxStatus) => boolean, ms = 90_000): Promise<SandboxStatus> {
  const end = Date.now() + ms;
  for (;;) {
    const status = await t.client.sandboxes.status(sandboxId);
    if (ready(status) || Date.now() > end) return status;
    await new Promise((r) => setTimeout(r, 250));
  }
}

const containerExists = (id: string) =>
  t.docker
    .getContainer(id)
    .inspect()
    .then(
      () => true,
      () => false,
    );

const cli = (args: string[]) => runCli(t, args);

test('a sandbox that never runs a job stops after its idle timeout, and its host memory is free again', async () => {
  const first = await create({ class: 'container', keepAlive: true, idleTimeout: '5s' });
  // The host has room for one small sandbox: while the first runs, a second does not fit.
  const refused = await create({ class: 'container', keepAlive: true }).then(
    () => undefined,
    (err: unknown) => describeFailure(err),
  );
  expect(refused).toMatchObject({ code: 'INSUFFICIENT_HOST_MEMORY' });

  const stopped = await until(first.sandboxId, (s) => s.state === 'stopped');
  expect(stopped).toMatchObject({ state: 'stopped', lastStop: { reason: 'idle-timeout' } });
  expect(stopped.containerId).toBeUndefined();
  // The row says stopped first (so nothing new lands on the old container), then the container goes.
  for (let i = 0; i < 120 && (await containerExists(first.status.containerId!)); i++) await new Promise((r) => setTimeout(r, 250));
  expect(await containerExists(first.status.containerId!)).toBe(false);

  const second = await create({ class: 'container', keepAlive: true });
  expect(second.status).toMatchObject({ state: 'idle', hostId });
  await t.client.sandboxes.destroy(second.sandboxId);
  await t.client.sandboxes.destroy(first.sandboxId);
}, 180_000);

test('an idle vm sandbox stops after its idle timeout; its last session is kept and the next job resumes from it', async () => {
  const { sandboxId } = await create({ keepAlive: true, idleTimeout: '5s' });
  const job = await t.client.sandboxes.runJob(sandboxId, sh('echo kept > /root/state'), { waitForSession: true });
  expect(job.sessionSnapshotId).toEqual(expect.any(String));
  const stopped = await until(sandboxId, (s) => s.state === 'stopped');
  expect(stopped).toMatchObject({ lastStop: { reason: 'idle-timeout' }, latestSessionSnapshotId: job.sessionSnapshotId });
  const again = await t.client.sandboxes.runJob(sandboxId, sh('cat /root/state'));
  expect(again).toMatchObject({ stdout: 'kept\n', resumedFrom: { source: 'session', snapshotId: job.sessionSnapshotId } });
  await t.client.sandboxes.destroy(sandboxId);
  await recordHistory(t.client.temporal, workflowIds.sandbox(sandboxId), 'sandbox-vm-idle-timeout');
}, 180_000);

test('a keep-alive sandbox stops at its maximum lifetime even while jobs keep it from idling', async () => {
  const { sandboxId } = await create({ class: 'container', keepAlive: true, idleTimeout: '1h', maxLifetime: '8s' });
  await t.client.sandboxes.runJob(sandboxId, sh('true'));
  await new Promise((r) => setTimeout(r, 2000));
  await t.client.sandboxes.runJob(sandboxId, sh('true'));
  const stopped = await until(sandboxId, (s) => s.state === 'stopped');
  expect(stopped).toMatchObject({ state: 'stopped', lastStop: { reason: 'max-lifetime' } });
  await t.client.sandboxes.destroy(sandboxId);
}, 180_000);

test('run on a stopped sandbox starts it by the restore order and says where from, before its output', async () => {
  const { sandboxId } = await create(); // no keep-alive: stopped after each job
  const first = await t.client.sandboxes.runJob(sandboxId, sh('echo from-job-1 > /root/note'), { waitForSession: true });
  expect(first).toMatchObject({ stopped: true, sessionSnapshotId: expect.any(String) });
  expect((await t.client.sandboxes.status(sandboxId)).state).toBe('stopped');

  const events: string[] = [];
  const second = await t.client.sandboxes.runJob(sandboxId, sh('cat /root/note'), {
    onResumed: (d) => events.push(`resumed:${d.source}`),
    onOutput: (c) => events.push(`${c.stream}:${c.data}`),
  });
  expect(second).toMatchObject({ stdout: 'from-job-1\n', resumedFrom: { source: 'session', snapshotId: first.sessionSnapshotId } });
  expect(events).toEqual(['resumed:session', 'stdout:from-job-1\n']);

  // The CLI says it too, before the job's output.
  await t.client.sandboxes.waitWhileSnapshotting(sandboxId);
  const out = await cli(['sandbox', 'run', sandboxId, '--', 'cat', '/root/note']);
  expect(out.status).toBe(0);
  expect(out.stderr).toMatch(/^resumed from session snapshot .*\n✓ job 3 exited 0/);
  // Only the job's own output on stdout: the summary line is on stderr, so pipes read what the job wrote.
  expect(out.stdout).toBe('from-job-1\n');
  await t.client.sandboxes.destroy(sandboxId);
}, 240_000);

test('output streams while the job runs: the first line arrives before the job ends', async () => {
  const { sandboxId } = await create({ class: 'container', keepAlive: true });
  const chunks: Array<OutputChunk & { beforeResult: boolean }> = [];
  let ended = false;
  const result = await t.client.sandboxes
    .runJob(sandboxId, sh('echo first; echo oops >&2; sleep 3; echo second'), {
      onOutput: (c) => chunks.push({ ...c, beforeResult: !ended }),
    })
    .finally(() => (ended = true));
  expect(result).toMatchObject({ exitCode: 0, stdout: 'first\nsecond\n', stderr: 'oops\n' });
  const firstLine = chunks.find((c) => c.stream === 'stdout' && String(c.data).startsWith('first'));
  expect(firstLine).toMatchObject({ beforeResult: true });
  // The first line came in a chunk of its own, while the job slept.
  expect(String(firstLine!.data)).toBe('first\n');
  expect(chunks.filter((c) => c.stream === 'stdout').map((c) => String(c.data))).toEqual(['first\n', 'second\n']);
  expect(chunks.filter((c) => c.stream === 'stderr').map((c) => String(c.data))).toEqual(['oops\n']);
  await t.client.sandboxes.destroy(sandboxId);
}, 120_000);

test("the CLI exits with the job's exit code and prints its output", async () => {
  const { sandboxId } = await create({ class: 'container', keepAlive: true });
  const failed = await cli(['sandbox', 'run', sandboxId, '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
  expect(failed).toMatchObject({ status: 7, stdout: 'out\n', stderr: expect.stringMatching(/^err\n✗ job 1 exited 7/) });
  const ok = await cli(['sandbox', 'run', sandboxId, '--', 'true']);
  expect(ok.status).toBe(0);
  await t.client.sandboxes.destroy(sandboxId);
}, 120_000);

test('a job past its timeout is killed with its processes, fails JOB_TIMED_OUT with its output, and the sandbox stays usable', async () => {
  const { sandboxId } = await create({ class: 'container', keepAlive: true });
  const streamed: string[] = [];
  await expect(
    t.client.sandboxes.runJob(
      sandboxId,
      { ...sh('echo started; sleep 301 & sleep 302; echo never'), timeout: '3s' },
      {
        onOutput: (c) => streamed.push(String(c.data)),
      },
    ),
  ).rejects.toMatchObject({ code: 'JOB_TIMED_OUT', output: { stdout: 'started\n' }, hint: expect.stringContaining('--timeout') });
  expect(streamed.join('')).toBe('started\n');
  const after = await t.client.sandboxes.runJob(sandboxId, sh('ps -o args | grep -c "^sleep 30[12]" || true'));
  expect(after).toMatchObject({ exitCode: 0, stdout: '0\n' });
  expect((await t.client.sandboxes.status(sandboxId)).state).toBe('idle');
  await t.client.sandboxes.destroy(sandboxId);
  await recordHistory(t.client.temporal, workflowIds.sandbox(sandboxId), 'sandbox-container-job-timeout');
}, 120_000);
