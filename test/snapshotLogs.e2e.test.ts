// An image snapshot's build log: each step, the pull's and upload's own output, and how it ended; a failed
// snapshot names its failing step and shows its log's last lines in `snapshot show`.
import { sourceRegistry } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv, runCli } from './support/stack';

let t: TestEnv;
let source: Awaited<ReturnType<typeof sourceRegistry>>;
const ws = 'ws-buildlogs';
const base = { workspace: ws, runtime: 'codex', size: 'small' };

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  const hostId = uniqueHostId('blog');
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  source = await sourceRegistry(t.docker, 'buildlogs');
});
afterAll(async () => {
  await source?.stop();
  await t?.teardown();
});

async function text(iterable: AsyncIterable<{ data: Buffer }>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of iterable) parts.push(c.data);
  return Buffer.concat(parts).toString('utf8');
}

const cli = (args: string[]) => runCli(t, args);

test('a built snapshot has its steps, the pull and the upload in its log, then how it ended', async () => {
  const created = await t.client.snapshots.create({ ...base, name: 'logged-v1', image: source.image });
  await t.client.snapshots.wait(created);
  const log = await text(t.client.snapshots.logs({ workspace: ws, name: 'logged-v1' }));
  // The engine has the base image's layers already: the pull and push say so, layer by layer.
  const steps = ['== resolve:', '== pull:', 'Digest: sha256:', '== verify:', '== store:', 'digest: sha256:', 'active: stored as'];
  for (const line of steps) expect(log).toContain(line);
  const order = steps.map((s) => log.indexOf(s));
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  const viaCli = await cli(['snapshot', 'logs', 'logged-v1', '--workspace', ws]);
  expect(viaCli).toMatchObject({ status: 0, stdout: log });
}, 180_000);

test("a failed snapshot names its failing step and shows its log's last lines, the failure's own words", async () => {
  const created = await t.client.snapshots.create({ ...base, name: 'broken-v1', image: source.image, entrypoint: '/app/missing.sh' });
  await expect(t.client.snapshots.wait(created)).rejects.toMatchObject({ code: 'ENTRYPOINT_NOT_FOUND' });
  const details = await t.client.snapshots.get({ workspace: ws, name: 'broken-v1' });
  expect(details.failedStep).toBe('verify');
  expect(details.logTail).toContain('failed: ENTRYPOINT_NOT_FOUND: entrypoint /app/missing.sh does not exist');
  const shown = await cli(['snapshot', 'show', 'broken-v1', '--workspace', ws]);
  expect(shown.status).toBe(0);
  expect(shown.stdout).toContain('failed in step verify');
  expect(shown.stdout).toContain('/app/missing.sh does not exist');
}, 180_000);
