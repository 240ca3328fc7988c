// A log past its cap: the job runs on, and the log says exactly where it was cut and keeps the true last 64 KiB.
// The cap is this test's host worker's own (SNAPFLOW_LOG_CAP_BYTES there): 64 MiB printed under a 16 MiB cap here;
// `npm run bench -- joblogcap` proves the real default, 2 GiB printed under 1 GiB, the same way.
import { checkCutLog, MARK, numberedJob } from './support/numberedLog';
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('logcap');
const MiB = 1024 * 1024;
const CAP = 16 * MiB;
const TAIL = 65536;

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

test('past the cap the job runs on; the log says exactly where it was cut and keeps the true last 64 KiB', async () => {
  const { sandboxId } = await t.client.sandboxes.create({
    workspace: 'ws-logcap',
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  // 64 MiB of numbered lines, then the mark: 4 × the cap.
  const job = numberedJob(64 * MiB);
  const result = await t.client.sandboxes.runJob(sandboxId, { command: job.command, timeout: '5m' });
  expect(result.exitCode).toBe(0);
  const dropped = job.total - CAP - TAIL;
  expect(result.log).toMatchObject({ bytes: job.total, cutAt: CAP, dropped });
  expect(result.stdout.endsWith(`\n${MARK}`)).toBe(true);

  const check = await checkCutLog(t.client.sandboxes.logs(sandboxId), job, CAP, TAIL);
  // The first part as printed, the exact cut note, then the true end: every kept byte where the job put it.
  expect(check).toEqual({
    kept: CAP + TAIL,
    matched: CAP + TAIL,
    notes: `\n…[log cut at byte ${CAP} of ${job.total}: ${dropped} bytes dropped; the last ${TAIL} bytes follow]\n`,
    notesAt: [CAP],
  });
}, 240_000);
