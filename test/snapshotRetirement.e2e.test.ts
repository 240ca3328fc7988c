// Delete and prune on the real stack: refused while in use (saying by what), the stored image really leaves
// the registry, prune is a dry run until --yes.
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { snapshotEvents, snapshots } from '../db/schema';
import { BASE_IMAGE_REF } from '../lib/presets';
import { freePort, startRegistry, stopProcess, type ManagedProcess } from '../scripts/stack';
import { pushImage } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let registry: ManagedProcess;
let image = '';
const ws = 'ws-retire';
const base = { workspace: ws, runtime: 'pi', size: 'small' };

beforeAll(async () => {
  const port = await freePort();
  registry = await startRegistry({ dir: join(process.env.SNAPFLOW_TEST_STATE!, '..', 'registry-retire'), port });
  image = `127.0.0.1:${port}/tools/agent:v1`;
  t = await createTestEnv();
  await t.startControlWorker();
  const hostId = uniqueHostId('ret');
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  await pushImage(t.docker, BASE_IMAGE_REF, { registryHost: `127.0.0.1:${port}`, repository: 'tools/agent', tag: 'v1' });
});
afterAll(async () => {
  await t?.teardown();
  if (registry) await stopProcess(registry);
});

async function activeSnapshot(name: string) {
  const created = await t.client.snapshots.create({ ...base, name, image });
  await t.client.snapshots.wait(created);
  return (await t.client.snapshots.get({ workspace: ws, name })).snapshot;
}

async function storedManifestStatus(storedRef: string): Promise<number> {
  const { url, username, password } = t.stack.storage;
  const [, path] = storedRef.split(/\/(.*)/s);
  const [repository, digest] = path!.split('@');
  const res = await fetch(`${url}/v2/${repository}/manifests/${digest}`, {
    method: 'HEAD',
    headers: {
      authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`,
      // An image, or a saved vm machine (an OCI artifact: a promoted vm sandbox).
      accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
    },
  });
  return res.status;
}

test('delete is refused while a default or a pin uses the snapshot, and says which', async () => {
  // As a user gets there: a sandbox promoted to a golden snapshot and made the default, then pinned on an issue.
  const { sandboxId } = await t.client.sandboxes.create({ ...base, class: 'vm', keepAlive: true });
  const promoted = await t.client.sandboxes.promote(sandboxId, { name: 'busy-v1', setDefault: true });
  await t.client.sandboxes.destroy(sandboxId);
  const s = (await t.client.snapshots.get({ workspace: ws, name: 'busy-v1' })).snapshot;
  expect(promoted.default).toMatchObject({ workspace: ws, size: 'small', profileKey: s.profileKey, snapshotId: s.id });
  await t.client.sandboxes.pin({ workspace: ws, issue: 'ISSUE-7', snapshot: 'busy-v1' });
  const refused = await t.client.snapshots.delete({ workspace: ws, name: 'busy-v1' }).catch((e: unknown) => e);
  expect(refused).toMatchObject({ code: 'CONFLICT' });
  expect((refused as Error).message).toContain(`default for ${ws} small ${s.profileKey}`);
  expect((refused as Error).message).toContain('pinned on issue ISSUE-7');
  expect((await t.client.snapshots.get({ workspace: ws, name: 'busy-v1' })).snapshot.status).toBe('active');
  expect(await storedManifestStatus(s.storedRef!)).toBe(200);
});

test('delete removes the stored image from the registry and leaves a tombstone that frees the name', async () => {
  const s = await activeSnapshot('gone-v1');
  expect(await storedManifestStatus(s.storedRef!)).toBe(200);
  await expect(t.client.snapshots.delete({ workspace: ws, name: 'gone-v1' })).resolves.toMatchObject({ status: 'deleted' });
  expect(await storedManifestStatus(s.storedRef!)).toBe(404);
  const [row] = await t.db.db.select().from(snapshots).where(eq(snapshots.id, s.id));
  expect(row).toMatchObject({ status: 'deleted' });
  expect(row!.deletedAt).toBeInstanceOf(Date);
  const events = await t.db.db.select().from(snapshotEvents).where(eq(snapshotEvents.snapshotId, s.id));
  expect(events.map((e) => e.type).slice(-2)).toEqual(['deleting', 'deleted']);
  await expect(t.client.snapshots.get({ workspace: ws, name: 'gone-v1' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  const again = await activeSnapshot('gone-v1'); // the name is free again
  expect(again.id).not.toBe(s.id);
});

test('prune lists what is unused for the period, deletes only with --yes, and never touches what is in use', async () => {
  const old = await activeSnapshot('old-v1');
  const fresh = await activeSnapshot('fresh-v1');
  const busy = (await t.client.snapshots.get({ workspace: ws, name: 'busy-v1' })).snapshot;
  const longAgo = new Date(Date.now() - 30 * 86_400_000);
  for (const id of [old.id, busy.id]) await t.db.db.update(snapshots).set({ updatedAt: longAgo }).where(eq(snapshots.id, id));

  const dry = await t.client.snapshots.prune({ workspace: ws, unusedForDays: 14 });
  expect(dry.dryRun).toBe(true);
  expect(dry.candidates.map((c) => c.name)).toEqual(['old-v1']);
  expect((await t.client.snapshots.get({ workspace: ws, name: 'old-v1' })).snapshot.status).toBe('active');

  const real = await t.client.snapshots.prune({ workspace: ws, unusedForDays: 14, yes: true });
  expect(real.deleted).toEqual([old.id]);
  const live = await t.db.db
    .select({ name: snapshots.name })
    .from(snapshots)
    .where(and(eq(snapshots.workspace, ws), eq(snapshots.status, 'active')));
  expect(live.map((r) => r.name).sort()).toEqual(['busy-v1', 'fresh-v1', 'gone-v1'].sort());
  expect(fresh.status).toBe('active');
  await expect(t.client.snapshots.prune({ workspace: ws, unusedForDays: 0 })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'unused-for',
  });
});
