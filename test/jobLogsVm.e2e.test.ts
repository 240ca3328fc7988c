// The vm case of every byte kept: a QEMU guest's job output through the agent's virtio-serial port into the log
// store, byte-exact, and a cancel that reaches the guest's process group over the job's own connection.
import { createHash } from 'node:crypto';
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('vmlogs');
const ws = 'ws-vmlogs';

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
});
afterAll(async () => {
  await destroyEverySandbox(t);
  await t?.teardown();
});

const sh = (script: string) => ({ command: ['sh', '-c', script], timeout: '5m' });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a vm job: its bytes stream exact and are kept whole; a cancel ends its process group and the sandbox runs the next job', async () => {
  const { sandboxId } = await t.client.sandboxes.create({ workspace: ws, class: 'vm', size: 'small', runtime: 'codex', keepAlive: true });
  const streamed: Buffer[] = [];
  const result = await t.client.sandboxes.runJob(
    sandboxId,
    sh("head -c 3000000 /dev/urandom | tee /tmp/out.bin; printf 'tail-mark\\n' | tee -a /tmp/out.bin; echo done >&2"),
    { onOutput: (c) => c.stream === 'stdout' && streamed.push(Buffer.from(c.data)) },
  );
  expect(result).toMatchObject({ exitCode: 0, stderr: 'done\n', log: { bytes: 3000000 + 10 + 5, dropped: 0 } });
  const own = await t.client.sandboxes.runJob(sandboxId, sh("sha256sum /tmp/out.bin | cut -d' ' -f1"));
  expect(sha(Buffer.concat(streamed))).toBe(own.stdout.trim());
  const kept: Buffer[] = [];
  for await (const c of t.client.sandboxes.logs(sandboxId, { job: result.sequence })) if (c.stream === 'stdout') kept.push(c.data);
  expect(sha(Buffer.concat(kept))).toBe(own.stdout.trim());

  await t.client.sandboxes.waitWhileSnapshotting(sandboxId);
  const stop = new AbortController();
  const job = t.client.sandboxes.runJob(sandboxId, sh('echo started; exec sleep 600'), {
    signal: stop.signal,
    onOutput: (c) => String(c.data).includes('started') && stop.abort(),
  });
  const cancelled = await job;
  expect(cancelled).toMatchObject({ cancelled: true, stdout: 'started\n' });
  expect(cancelled.sessionPending).toBeUndefined();
  await t.client.sandboxes.waitWhileSnapshotting(sandboxId);
  const after = await t.client.sandboxes.runJob(sandboxId, sh('ps -o args | grep -c "^sleep 600" || true'));
  expect(after).toMatchObject({ exitCode: 0, stdout: '0\n' });
}, 600_000);
