// Deleting must never take away what something else still stands on, and never stop halfway for good: a golden
// image shared by several targets, a stopped sandbox's latest session, and a delete whose run was terminated.
import { and, eq } from 'drizzle-orm';
import { markDeleting } from '../catalog/retirement';
import { snapshotEvents, snapshots } from '../db/schema';
import { taskQueues, workflowIds } from '../lib/ids';
import type { deleteSnapshot, reconcileSnapshots } from '../workflows';
import { sourceRegistry } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let source: { image: string; stop: () => Promise<void> } | undefined;
const ws = 'ws-retire-safe';

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  const hostId = uniqueHostId('safe');
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  source = await sourceRegistry(t.docker, 'safe');
}, 180_000);
afterAll(async () => {
  for (const box of t ? await t.client.sandboxes.list(ws) : []) await t.client.sandboxes.destroy(box.id).catch(() => undefined);
  await t?.teardown();
  await source?.stop();
});

async function manifestStatus(storedRef: string): Promise<number> {
  const { url, username, password } = t.stack.storage;
  const [path, digest] = storedRef.split('@');
  const res = await fetch(`${url}/v2/${path!.slice(path!.indexOf('/') + 1)}/manifests/${digest}`, {
    method: 'HEAD',
    headers: {
      authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`,
      accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
    },
  });
  return res.status;
}
const build = async () => t.client.golden.waitForBuild((await t.client.golden.buildNow({ workspace: ws })).workflowId);
const nameOf = async (id: string) => (await t.db.db.select().from(snapshots).where(eq(snapshots.id, id)))[0]!.name;

test('deleting one golden target keeps the stored image while another target still stands on it', async () => {
  await t.client.golden.setConfig({ workspace: ws, targets: ['small:codex', 'small:pi'] });
  const first = await build();
  expect(first.snapshots).toHaveLength(2);
  const stored = await t.db.db.select().from(snapshots).where(eq(snapshots.workspace, ws));
  expect(new Set(stored.map((s) => s.storedRef))).toEqual(new Set([first.storedRef])); // one image, two snapshots
  await build(); // new defaults: the first build's snapshots are free to delete
  const [codex, pi] = first.snapshots;
  await t.client.snapshots.delete({ workspace: ws, name: await nameOf(codex!.snapshotId) });
  expect(await manifestStatus(first.storedRef!)).toBe(200); // the pi target still boots from it
  await t.client.snapshots.delete({ workspace: ws, name: await nameOf(pi!.snapshotId) });
  expect(await manifestStatus(first.storedRef!)).toBe(404); // the last one took it with it
}, 240_000);

test("a stopped sandbox's latest session is in use: delete refuses it and prune leaves it", async () => {
  const { sandboxId } = await t.client.sandboxes.create({ workspace: ws, class: 'vm', size: 'small', runtime: 'codex' });
  const job = await t.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', 'echo state > /root/state'] }, { waitForSession: true });
  expect(job).toMatchObject({ stopped: true, sessionSnapshotId: expect.any(String) });
  const name = await nameOf(job.sessionSnapshotId!);
  await expect(t.client.snapshots.delete({ workspace: ws, name })).rejects.toMatchObject({
    code: 'CONFLICT',
    message: expect.stringContaining(`latest session of sandbox ${sandboxId}`),
  });
  // Old enough to prune by age, but still the state the sandbox resumes from.
  await t.db.db
    .update(snapshots)
    .set({ updatedAt: new Date(Date.now() - 30 * 86_400_000) })
    .where(eq(snapshots.id, job.sessionSnapshotId!));
  const pruned = await t.client.snapshots.prune({ workspace: ws, unusedForDays: 14, yes: true });
  expect(pruned.deleted).not.toContain(job.sessionSnapshotId);
  expect((await t.db.db.select().from(snapshots).where(eq(snapshots.id, job.sessionSnapshotId!)))[0]).toMatchObject({ status: 'active' });
  expect((await t.client.sandboxes.resume(sandboxId)).lastStart).toMatchObject({ source: 'session', snapshotId: job.sessionSnapshotId });
}, 180_000);

test('a delete whose run was terminated mid-way is started again by the reconciler and finishes', async () => {
  const created = await t.client.snapshots.create({
    workspace: ws,
    name: 'doomed-v1',
    image: source!.image,
    runtime: 'codex',
    size: 'small',
  });
  const { storedRef } = await t.client.snapshots.wait(created);
  const id = created.snapshotId;
  const workflowId = workflowIds.snapshotDelete(id);
  // The run's first step happened (the row is `deleting`), then the run was terminated before it finished.
  const stuck = await t.client.temporal.workflow.start<typeof deleteSnapshot>('deleteSnapshot', {
    taskQueue: 'nobody-polls-this',
    workflowId,
    args: [{ snapshotId: id, actor: 'operator' }],
  });
  await markDeleting(t.db.db, { id, actor: 'operator', run: { workflowId, runId: stuck.firstExecutionRunId } });
  await stuck.terminate('host lost mid-delete');
  await t.db.db
    .update(snapshotEvents)
    .set({ createdAt: new Date(Date.now() - 10 * 60_000) })
    .where(and(eq(snapshotEvents.snapshotId, id), eq(snapshotEvents.type, 'deleting')));

  const result = await t.client.temporal.workflow.execute<typeof reconcileSnapshots>('reconcileSnapshots', {
    taskQueue: taskQueues.control,
    workflowId: `reconcile-test-${id}`,
    args: [],
  });
  expect(result.retriedDeletes).toEqual([id]);
  await expect(t.client.temporal.workflow.getHandle(workflowId).result()).resolves.toMatchObject({ status: 'deleted' });
  expect((await t.db.db.select().from(snapshots).where(eq(snapshots.id, id)))[0]).toMatchObject({ status: 'deleted' });
  expect(await manifestStatus(storedRef!)).toBe(404);
}, 180_000);
