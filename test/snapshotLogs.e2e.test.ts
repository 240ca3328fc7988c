// An image snapshot's build log: each step, the pull's and upload's own output, the entrypoint's own output from the
// boot check, and how it ended; a failed snapshot names its failing step and shows its log's last lines.
import { deriveImage, pushImage, sourceRegistry } from './support/images';
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
  // An agent whose entrypoint keeps running, one whose entrypoint prints its error and exits 3, and one that floods
  // its output first.
  const images = {
    flood: `printf '#!/bin/sh\\nhead -c 3145728 /dev/zero | tr "\\\\\\\\000" x\\necho\\necho "error: flood over" >&2\\nexit 4\\n' > /app/start.sh`,
    agent: `printf '#!/bin/sh\\necho "agent listening"\\nexec sleep 86400\\n' > /app/start.sh`,
    crash: `printf '#!/bin/sh\\necho "starting agent"\\necho "error: SUPPORT_API_KEY is not set" >&2\\nexit 3\\n' > /app/start.sh`,
  };
  for (const [tag, script] of Object.entries(images))
    await pushImage(t.docker, await deriveImage(t.docker, script, `buildlogs-${tag}`), {
      registryHost: source.host,
      repository: 'tools/buildlogs',
      tag,
    });
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

test('a built snapshot has its steps, the pull, the entrypoint booting and the upload in its log, then how it ended', async () => {
  const created = await t.client.snapshots.create({ ...base, name: 'logged-v1', image: `${source.host}/tools/buildlogs:agent` });
  await t.client.snapshots.wait(created);
  const log = await text(t.client.snapshots.logs({ workspace: ws, name: 'logged-v1' }));
  // The engine has the base image's layers already: the pull and push say so, layer by layer. The entrypoint's own
  // output comes from its boot check, which passed because it was still running.
  const steps = [
    '== resolve:',
    '== pull:',
    'Digest: sha256:',
    '== verify:',
    '== boot:',
    'agent listening',
    '/app/start.sh still running after 2.0 s: up',
    '== store:',
    'digest: sha256:',
    'active: stored as',
  ];
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

test("an entrypoint that exits early fails the snapshot, and list, show and logs all carry the entrypoint's own error", async () => {
  const image = `${source.host}/tools/buildlogs:crash`;
  const created = await cli([
    'snapshot',
    'create',
    '--name',
    'crash-v1',
    '--image',
    image,
    '--runtime',
    'codex',
    '--size',
    'small',
    '--workspace',
    ws,
    '--wait',
  ]);
  expect(created.status).toBe(1);
  expect(created.stderr).toContain('ENTRYPOINT_EXITED');
  expect(created.stderr).toContain('/app/start.sh exited 3');
  expect(created.stderr).toContain('error: SUPPORT_API_KEY is not set');

  const listed = await cli(['snapshot', 'list', '--workspace', ws, '--status', 'failed']);
  expect(listed.status).toBe(0);
  const row = listed.stdout.split('\n').find((line) => line.startsWith('crash-v1'));
  expect(row).toMatch(/failed .*ENTRYPOINT_EXITED: entrypoint \/app\/start\.sh exited 3 .*error: SUPPORT_API_KEY is not set/);

  const shown = await cli(['snapshot', 'show', 'crash-v1', '--workspace', ws]);
  expect(shown.status).toBe(0);
  expect(shown.stdout).toContain('failed in step boot');
  const lastLines = shown.stdout.slice(shown.stdout.indexOf('last lines of its log'));
  for (const line of ['starting agent', 'error: SUPPORT_API_KEY is not set', '/app/start.sh exited 3 after', 'failed: ENTRYPOINT_EXITED'])
    expect(lastLines).toContain(line);

  const logged = await cli(['snapshot', 'logs', 'crash-v1', '--workspace', ws]);
  expect(logged.status).toBe(0);
  const at = (line: string) => logged.stdout.indexOf(line);
  const order = [
    '== verify:',
    '== boot:',
    'error: SUPPORT_API_KEY is not set',
    '/app/start.sh exited 3 after',
    'failed: ENTRYPOINT_EXITED',
  ].map(at);
  expect(order.every((i) => i >= 0)).toBe(true);
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  // Nothing was stored: the failed build never reached its upload.
  expect(logged.stdout).not.toContain('== store:');
}, 180_000);

test("a flooding entrypoint's output is cut in the build log like a job's: the first MiB, the exact note, the true end", async () => {
  const created = await t.client.snapshots.create({ ...base, name: 'flood-v1', image: `${source.host}/tools/buildlogs:flood` });
  // Its error, on stderr, is what the failure shows, however long the line of stdout before it.
  await expect(t.client.snapshots.wait(created)).rejects.toMatchObject({
    code: 'ENTRYPOINT_EXITED',
    message: expect.stringMatching(/exited 4 .*its last output: error: flood over$/),
  });
  const log = await text(t.client.snapshots.logs({ workspace: ws, name: 'flood-v1' }));
  const printed = 3145728 + 1 + 'error: flood over\n'.length;
  const MiB = 1024 * 1024;
  const note = `\n…[log cut at byte ${MiB} of ${printed}: ${printed - MiB - 65536} bytes dropped; the last 65536 bytes follow]\n`;
  const cut = log.indexOf(note);
  const verdict = log.indexOf('/app/start.sh exited 4 after ');
  expect(log.slice(log.indexOf('== boot:'), cut)).toMatch(new RegExp(`^== boot:[^\\n]*\\nx{${MiB}}$`));
  // The true last 64 KiB: the end of the line of x's, its newline and the error, then the verdict and the outcome.
  // The engine does not keep the order between stdout and stderr: the error line may sit anywhere in the tail, or
  // have come before it (then it is among the dropped bytes, and the tail is x's alone).
  const end = log.slice(cut + note.length, verdict);
  expect(end.length).toBe(65536);
  const xs = end.includes('error: flood over\n') ? 65517 : 65535;
  expect(end.replace('error: flood over\n', '')).toMatch(new RegExp(`^x{${xs}}\\n$`));
  expect(log.slice(verdict)).toMatch(/^\/app\/start\.sh exited 4 after [\d.]+ s\nfailed: ENTRYPOINT_EXITED: /);
}, 180_000);
