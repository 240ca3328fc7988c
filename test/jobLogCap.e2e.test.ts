// A log past its cap: the job runs on, and the log says exactly where it was cut and keeps the true last 64 KiB.
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('logcap');
const CAP = 1024 * 1024;

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId, logCapBytes: CAP });
  await t.client.refreshHost(hostId);
});
afterAll(async () => {
  await destroyEverySandbox(t);
  await t?.teardown();
});

async function collect(iterable: AsyncIterable<{ stream: string; data: Buffer }>): Promise<Record<string, Buffer>> {
  const parts: Record<string, Buffer[]> = { stdout: [], stderr: [], note: [] };
  for await (const c of iterable) parts[c.stream]!.push(c.data);
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Buffer.concat(v)]));
}

test('past the cap the job runs on; the log says exactly where it was cut and keeps the true last 64 KiB', async () => {
  const { sandboxId } = await t.client.sandboxes.create({
    workspace: 'ws-logcap',
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  // 3 MiB of numbered lines, then the mark: 3 × the cap.
  const result = await t.client.sandboxes.runJob(sandboxId, {
    command: ['sh', '-c', 'seq -w 1 500000 | head -c 3145728; echo; echo tail-mark'],
  });
  expect(result.exitCode).toBe(0);
  const total = 3145728 + 1 + 10;
  expect(result.log).toMatchObject({ bytes: total, cutAt: CAP, dropped: total - CAP - 65536 });
  const log = await collect(t.client.sandboxes.logs(sandboxId));
  const all = Buffer.concat([
    Buffer.from(
      Array.from({ length: 500000 }, (_, i) => `${String(i + 1).padStart(6, '0')}\n`)
        .join('')
        .slice(0, 3145728),
    ),
    Buffer.from('\ntail-mark\n'),
  ]);
  expect(log.stdout!.length).toBe(CAP + 65536);
  expect(log.stdout!.subarray(0, CAP).equals(all.subarray(0, CAP))).toBe(true);
  expect(log.stdout!.subarray(CAP).equals(all.subarray(-65536))).toBe(true);
  expect(log.note!.toString()).toContain(`log cut at byte ${CAP} of ${total}: ${total - CAP - 65536} bytes dropped`);
}, 180_000);
