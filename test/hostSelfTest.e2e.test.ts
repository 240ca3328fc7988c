// The foundation, end to end on the real stack: a workflow drives a host worker that creates a sandbox
// on a real dockerd, execs in it, commits it, pushes the result to a real htpasswd registry, and cleans up.
import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { hosts } from '../db/schema';
import { CONTAINER_LABEL, taskQueues } from '../lib/ids';
import { followProgress } from '../activities/progress';
import { SnapflowError } from '../lib/errors';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('selftest');

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
});
afterAll(async () => t?.teardown());

async function managedContainers(): Promise<string[]> {
  const list = await t.docker.listContainers({ all: true, filters: { label: [CONTAINER_LABEL] } });
  return list.map((c) => c.Names.join(','));
}

test('a host announces itself: the catalog records its queue and real memory', async () => {
  const facts = await t.client.refreshHost(hostId);
  expect(facts.baseImagePresent).toBe(true);
  const [row] = await t.db.db.select().from(hosts).where(eq(hosts.id, hostId));
  expect(row).toMatchObject({ taskQueue: taskQueues.host(hostId), status: 'online', dockerEndpoint: t.stack.dockerHost });
  expect(row!.memoryTotalMib).toBeGreaterThan(512);
});

test('self-test creates, execs, commits and pushes; the stored image holds the exec result', async () => {
  const result = await t.client.hostSelfTest({ hostId, push: true, nonce: randomUUID() });
  expect(result.output).toBe('self-test Linux');
  expect(result.stored?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);

  // The registry serves exactly that manifest, behind its htpasswd auth.
  const { url, username, password, registryHost } = t.stack.storage;
  const manifestUrl = `${url}/v2/snapflow/self-test/manifests/latest`;
  const accept = { accept: 'application/vnd.docker.distribution.manifest.v2+json' };
  expect((await fetch(manifestUrl, { headers: accept })).status).toBe(401);
  const authed = await fetch(manifestUrl, {
    method: 'HEAD',
    headers: { ...accept, authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` },
  });
  expect(authed.status).toBe(200);
  expect(authed.headers.get('docker-content-digest')).toBe(result.stored?.digest);

  // Nothing left on the host: no sandbox container, no local committed image.
  expect(await managedContainers()).toEqual([]);
  await expect(t.docker.getImage(`${registryHost}/snapflow/self-test:latest`).inspect()).rejects.toMatchObject({ statusCode: 404 });

  // Pull it back from storage and run it (network none): the file written by the exec is there.
  const ref = `${registryHost}/snapflow/self-test:latest`;
  await followProgress(t.docker, await t.docker.pull(ref, { authconfig: { username, password, serveraddress: registryHost } }));
  const container = await t.docker.createContainer({
    Image: ref,
    Cmd: ['cat', '/workspace/self-test.txt'],
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await container.start();
    await container.wait();
    const logs = (await container.logs({ stdout: true })).toString('utf8');
    expect(logs).toContain('self-test Linux');
  } finally {
    await container.remove({ force: true });
    await t.docker.getImage(ref).remove();
  }
});

test('a host without storage fails the push with a typed reason and still removes its sandbox', async () => {
  const bare = uniqueHostId('nostore');
  await t.startHostWorker({ hostId: bare, storage: null });
  const failure = await t.client.hostSelfTest({ hostId: bare, push: true, nonce: randomUUID() }).catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(SnapflowError);
  expect(failure).toMatchObject({ code: 'GOLDEN_STORAGE_NOT_CONFIGURED' });
  expect((failure as SnapflowError).hint).toContain('SNAPFLOW_STORAGE_URL');
  expect(await managedContainers()).toEqual([]);
});

test('a host nobody serves fails fast as TIMED_OUT instead of hanging', async () => {
  const started = Date.now();
  await expect(t.client.refreshHost(uniqueHostId('ghost'))).rejects.toMatchObject({ code: 'TIMED_OUT' });
  expect(Date.now() - started).toBeLessThan(25_000);
});
