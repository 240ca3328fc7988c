// An admin of one workspace tries to reach another workspace's stored images: name one as an image source (through
// the client, an alias of the storage host, or a workflow started directly), have a host cache it for them, or take
// a workspace id that storage uses for its own repositories. Each is refused typed; nothing is written or copied.
import { MockActivityEnvironment } from '@temporalio/testing';
import { eq } from 'drizzle-orm';
import { createHostCacheActivities } from '../activities/hostCache';
import { setHostPlacement } from '../catalog/hosts';
import type { SnapflowClient } from '../client';
import { auditEvents, workspaces } from '../db/access';
import { hosts, snapshots } from '../db/schema';
import { CONTAINER_LABEL, taskQueues, workflowIds } from '../lib/ids';
import type { createImageSnapshot, hostSelfTest, refreshHost } from '../workflows';
import { sourceRegistry } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let source: { stop: () => Promise<void> } | undefined;
let othersRef = '';
const as = (user: string): SnapflowClient => t.client.as(user);

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  const hostId = uniqueHostId('ten');
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  const started = await sourceRegistry(t.docker, 'tenant');
  source = started;
  await t.client.workspaces.create({ id: 'acme', plan: 'paid', admin: 'alice' });
  await t.client.workspaces.create({ id: 'other', plan: 'paid', admin: 'dave' });
  const created = await as('dave').snapshots.create({
    workspace: 'other',
    name: 'secret-v1',
    image: started.image,
    runtime: 'codex',
    size: 'small',
  });
  othersRef = (await as('dave').snapshots.wait(created)).storedRef!;
}, 180_000);
afterAll(async () => {
  await t?.teardown();
  await source?.stop();
});

const acmeRows = async () => t.db.db.select().from(snapshots).where(eq(snapshots.workspace, 'acme'));
async function storedManifest(repository: string): Promise<number> {
  const { url, username, password } = t.stack.storage;
  const res = await fetch(`${url}/v2/${repository}/tags/list`, {
    headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` },
  });
  return res.status;
}

test("another workspace's stored image, named as a source (also through a loopback alias of storage), is refused at validation", async () => {
  const port = t.stack.storage.registryHost.split(':')[1];
  const [path, digest] = othersRef.split('@');
  const repository = path!.slice(path!.indexOf('/') + 1);
  for (const image of [othersRef, `localhost:${port}/${repository}@${digest}`, `127.0.0.2:${port}/${repository}@${digest}`]) {
    await expect(
      as('alice').snapshots.create({ workspace: 'acme', name: 'stolen-v1', image, runtime: 'codex', size: 'small' }),
    ).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'image',
    });
  }
  expect(await acmeRows()).toEqual([]);
});

test('a workflow started directly with a storage source fails typed on the host: nothing is copied into acme', async () => {
  const [path, digest] = othersRef.split('@');
  const registry = path!.slice(0, path!.indexOf('/'));
  const repository = path!.slice(path!.indexOf('/') + 1);
  const run = t.client.temporal.workflow.execute<typeof createImageSnapshot>('createImageSnapshot', {
    taskQueue: taskQueues.control,
    workflowId: workflowIds.imageSnapshot('acme', 'stolen-v2'),
    args: [
      {
        snapshotId: crypto.randomUUID(),
        workspace: 'acme',
        name: 'stolen-v2',
        image: { registry, repository, digest },
        imageRef: othersRef,
        entrypoint: '/app/start.sh',
        runtime: 'codex',
        size: 'small',
        profileKey: 'codex/small/base-1',
        requiresGithub: false,
        actor: 'alice',
      },
    ],
  });
  await expect(run).rejects.toMatchObject({ cause: { type: 'VALIDATION_FAILED' } });
  expect((await acmeRows()).map((r) => [r.name, r.status, r.errorCode])).toEqual([['stolen-v2', 'failed', 'VALIDATION_FAILED']]);
  expect(await storedManifest('snapflow/acme/stolen-v2')).toBe(404);
});

test("a host asked to cache another workspace's stored image for acme refuses before it touches storage", async () => {
  const activities = createHostCacheActivities({ docker: t.docker, hostId: 'direct', storage: t.stack.storage });
  const env = new MockActivityEnvironment();
  const present = async () =>
    t.docker
      .getImage(othersRef)
      .inspect()
      .then(
        () => true,
        () => false,
      );
  const before = await present();
  await expect(env.run(activities.cacheSnapshot, { storedRef: othersRef, workspace: 'acme' })).rejects.toMatchObject({
    type: 'PERMISSION_DENIED',
  });
  await expect(
    env.run(activities.cacheSnapshot, { storedRef: `evil.example:5000/snapflow/acme/x@${othersRef.split('@')[1]}`, workspace: 'acme' }),
  ).rejects.toMatchObject({ type: 'PERMISSION_DENIED' });
  expect(await present()).toBe(before);
  // Its own workspace's image is cached as before.
  await expect(env.run(activities.cacheSnapshot, { storedRef: othersRef, workspace: 'other' })).resolves.toMatchObject({
    imageId: expect.any(String),
  });
});

test('workspace ids that storage uses for its own repositories are reserved, in validation and in the table', async () => {
  for (const id of ['golden', 'sessions', 'self-test', 'snapflow', 'system']) {
    await expect(t.client.workspaces.create({ id, plan: 'paid', admin: 'mallory' })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'workspace',
    });
    await expect(t.db.db.insert(workspaces).values({ id, plan: 'paid' })).rejects.toMatchObject({
      cause: { constraint_name: 'workspaces_id_slug' },
    });
  }
  expect((await t.db.db.select().from(workspaces)).map((w) => w.id).sort()).toEqual(['acme', 'other']);
  await expect(
    t.client.snapshots.create({ workspace: 'golden', name: 'acme', image: 'ghcr.io/org/image:v1', runtime: 'codex', size: 'small' }),
  ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'workspace' });
});

test('an image reference with a port over 65535 is refused before anything starts', async () => {
  await expect(
    as('alice').snapshots.create({ workspace: 'acme', name: 'port-v1', image: 'localhost:99999/o/i:v1', runtime: 'codex', size: 'small' }),
  ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'image', message: expect.stringContaining('99999') });
  expect((await acmeRows()).map((r) => r.name)).not.toContain('port-v1');
});

test('refreshHost and hostSelfTest are decided inside the workflow: operators, and host workers only to announce', async () => {
  const hostId = (await t.db.db.select().from(hosts))[0]!.id;
  await expect(as('alice').refreshHost(hostId)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  const direct = (actor: string | undefined, nonce: string) =>
    t.client.temporal.workflow.execute<typeof hostSelfTest>('hostSelfTest', {
      taskQueue: taskQueues.control,
      workflowId: workflowIds.hostSelfTest(hostId, nonce),
      args: [{ hostId, push: true, actor }],
    });
  await expect(direct('host-worker', 'as-host-worker')).rejects.toMatchObject({ cause: { type: 'PERMISSION_DENIED' } });
  await expect(direct(undefined, 'no-actor')).rejects.toMatchObject({ cause: { type: 'PERMISSION_DENIED' } });
  await expect(direct('alice', 'as-alice')).rejects.toMatchObject({ cause: { type: 'PERMISSION_DENIED' } });
  expect(await t.docker.listContainers({ all: true, filters: { label: [`${CONTAINER_LABEL}=temp`] } })).toEqual([]);
  // The host workers' service actor announces a host; an operator may do both.
  await expect(
    t.client.temporal.workflow.execute<typeof refreshHost>('refreshHost', {
      taskQueue: taskQueues.control,
      workflowId: `${workflowIds.hostRefresh(hostId)}-as-host-worker`,
      args: [{ hostId, actor: 'host-worker' }],
    }),
  ).resolves.toMatchObject({ hostId });
  await expect(t.client.refreshHost(hostId)).resolves.toMatchObject({ hostId });
  const decisions = await t.db.db
    .select({ actor: auditEvents.actor, action: auditEvents.action, decision: auditEvents.decision })
    .from(auditEvents)
    .where(eq(auditEvents.workspace, 'system'));
  expect(decisions).toEqual(
    expect.arrayContaining([
      { actor: 'alice', action: 'host.refresh', decision: 'denied' },
      { actor: 'host-worker', action: 'host.self-test', decision: 'denied' },
      { actor: 'host-worker', action: 'host.refresh', decision: 'allowed' },
    ]),
  );
});

test('draining a host is decided in the catalog: a service calling it directly as a workspace admin is refused', async () => {
  const [host] = await t.db.db.select().from(hosts);
  await expect(
    setHostPlacement(t.db.db, { actor: 'alice', operators: t.config.operators }, { hostId: host!.id, status: 'draining' }),
  ).rejects.toMatchObject({
    code: 'PERMISSION_DENIED',
  });
  expect((await t.db.db.select().from(hosts).where(eq(hosts.id, host!.id)))[0]!.status).toBe(host!.status);
  await expect(as('alice').drainHost(host!.id)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  await t.client.drainHost(host!.id);
  expect((await t.db.db.select().from(hosts).where(eq(hosts.id, host!.id)))[0]!.status).toBe('draining');
  await t.client.undrainHost(host!.id);
});
