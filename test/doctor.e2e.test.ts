// `snapflow doctor` against the real stack: all green when it is up, one readable line per broken part.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { hosts } from '../db/schema';
import { taskQueues } from '../lib/ids';
import { runDoctor, type Check } from '../client/doctor';
import { freePort } from '../scripts/stack';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('doc');

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
});
afterAll(async () => t?.teardown());

const byName = (checks: Check[], name: string): Check | undefined => checks.find((c) => c.name === name);

test('with the stack up every line is ✓, and the optional GitHub App is a warning', async () => {
  const checks = await runDoctor(t.env);
  const failing = checks.filter((c) => c.status !== 'ok').map((c) => c.name);
  expect(failing).toEqual(['github app']);
  expect(byName(checks, `host ${hostId}`)?.detail).toContain('base image present');
  expect(byName(checks, 'postgres')?.detail).toContain('migrations up to date');
  expect(byName(checks, 'temporal')?.detail).toMatch(/^127\.0\.0\.1:\d+ namespace \S+, plain \(no TLS\), search attributes registered/);
});

test('a wrong DATABASE_URL is one readable line with the fix, not a crash', async () => {
  const port = await freePort();
  const checks = await runDoctor({ ...t.env, DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/snapflow` });
  expect(byName(checks, 'postgres')).toMatchObject({
    status: 'fail',
    detail: `Postgres is not reachable at 127.0.0.1:${port} (ECONNREFUSED)`,
  });
  expect(byName(checks, 'postgres')?.fix).toContain('pg_ctlcluster');
});

test('unset storage says golden features are disabled; wrong credentials are named', async () => {
  const { SNAPFLOW_STORAGE_URL: _u, SNAPFLOW_STORAGE_USERNAME: _n, SNAPFLOW_STORAGE_PASSWORD: _p, ...noStorage } = t.env;
  expect(byName(await runDoctor(noStorage), 'storage')).toMatchObject({
    status: 'warn',
    detail: expect.stringContaining('golden snapshot features are disabled'),
  });
  const wrong = await runDoctor({ ...t.env, SNAPFLOW_STORAGE_PASSWORD: 'not-the-password' });
  expect(byName(wrong, 'storage')).toMatchObject({ status: 'fail', detail: expect.stringContaining('rejected the credentials') });
});

test('a host whose dockerd is down, and a host whose worker is gone, each get their own ✗ and fix', async () => {
  const deadDocker = uniqueHostId('deaddocker');
  await t.startHostWorker({ hostId: deadDocker, dockerHost: `unix://${join(t.stack.dir, 'no-such-docker.sock')}` });
  const gone = uniqueHostId('gone');
  const facts = { dockerEndpoint: 'unix:///gone.sock', memoryTotalMib: 1024, status: 'online' as const };
  await t.db.db.insert(hosts).values([
    { id: deadDocker, taskQueue: taskQueues.host(deadDocker), ...facts },
    { id: gone, taskQueue: taskQueues.host(gone), ...facts },
  ]);

  const checks = await runDoctor(t.env);
  expect(byName(checks, `host ${deadDocker}`)).toMatchObject({
    status: 'fail',
    detail: expect.stringMatching(/^DOCKER_UNAVAILABLE: Docker on host .* is not reachable/),
  });
  expect(byName(checks, `host ${deadDocker}`)?.fix).toContain('start dockerd');
  expect(byName(checks, `host ${gone}`)).toMatchObject({ status: 'fail', detail: expect.stringContaining('TIMED_OUT') });
  expect(byName(checks, `host ${gone}`)?.fix).toContain(`SNAPFLOW_HOST_ID=${gone} npm run worker:host`);
  expect(byName(checks, `host ${hostId}`)?.status).toBe('ok');
});

test('the CLI prints --json and exits 1 on a bad variable, without a stack trace', () => {
  const cli = spawnSync(process.execPath, [join(__dirname, '..', 'client', 'bin', 'snapflow.js'), 'doctor', '--json'], {
    env: { ...process.env, ...t.env, TEMPORAL_ADDRESS: 'no-port-here' },
    encoding: 'utf8',
    cwd: t.stack.dir, // no .env there: only the environment counts
  });
  expect(cli.status).toBe(1);
  expect(JSON.parse(cli.stdout)).toEqual({
    ok: false,
    checks: [
      { name: 'config', status: 'fail', detail: 'TEMPORAL_ADDRESS must be host:port', fix: 'set it like TEMPORAL_ADDRESS=127.0.0.1:7233' },
    ],
  });
  expect(cli.stderr).not.toMatch(/\n\s+at /);
});

test('Temporal down is one ✗ line; the checks that need it are not attempted', async () => {
  const checks = await runDoctor({ ...t.env, TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` });
  expect(byName(checks, 'temporal')).toMatchObject({ status: 'fail', fix: expect.stringContaining('npm start') });
  expect(byName(checks, 'control worker')).toBeUndefined();
  expect(byName(checks, 'postgres')?.status).toBe('ok');
});

test('a TLS connection the server cannot speak fails with the transport named and the API key nowhere', async () => {
  const apiKey = 'doctor-test-api-key-0123456789';
  const checks = await runDoctor({ ...t.env, TEMPORAL_API_KEY: apiKey });
  const temporal = byName(checks, 'temporal');
  expect(temporal).toMatchObject({ status: 'fail', detail: expect.stringContaining('TLS with an API key') });
  expect(JSON.stringify(checks)).not.toContain(apiKey);
});

test('without SNAPFLOW_ACTOR_KEY, doctor warns that any Temporal client can name any actor', async () => {
  expect(byName(await runDoctor(t.env), 'actor claims')?.status).toBe('ok');
  expect(byName(await runDoctor({ ...t.env, SNAPFLOW_ACTOR_KEY: '' }), 'actor claims')).toMatchObject({
    status: 'warn',
    detail: expect.stringContaining('any Temporal client can name any actor'),
    fix: expect.stringContaining('SNAPFLOW_ACTOR_KEY'),
  });
});
