// Storage gc on the real stack, on a storage registry of its own (gc must not race other files' uploads): image
// snapshots stored, deleted, their blobs counted by a dry run and freed by --yes, a live snapshot still pulls,
// and an upload whose blobs were collected before its manifest is re-sent by the upload's retry.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { createStorageGcActivities, treeBytes } from '../activities/storageGc';
import { pushState } from '../activities/vm/stateArtifacts';
import { freePort, startRegistry, stopProcess, type ManagedProcess } from '../scripts/stack';
import { deriveImage, pushImage } from './support/images';
import { createTestEnv, runCli, uniqueHostId, type TestEnv } from './support/stack';
import { readTestStack } from './support/stackState';

const N = 3;
const ws = 'system';
const base = { workspace: ws, runtime: 'pi', size: 'small' };
const storageUser = { username: 'snapflow', password: randomBytes(18).toString('base64url') };

let t: TestEnv;
let storage: ManagedProcess & { url: string };
let sources: ManagedProcess & { url: string };
let dir = '';
let storageHost = '';
let sourceHost = '';

beforeAll(async () => {
  const stack = readTestStack();
  dir = join(stack.dir, `storage-gc-${process.pid}`);
  storage = await startRegistry({ dir: join(dir, 'storage'), port: await freePort(), ...storageUser });
  sources = await startRegistry({ dir: join(dir, 'sources'), port: await freePort() });
  storageHost = new URL(storage.url).host;
  sourceHost = new URL(sources.url).host;
  t = await createTestEnv({
    env: {
      SNAPFLOW_STORAGE_URL: storage.url,
      SNAPFLOW_STORAGE_USERNAME: storageUser.username,
      SNAPFLOW_STORAGE_PASSWORD: storageUser.password,
      SNAPFLOW_REGISTRY_CONFIG: join(dir, 'storage', 'config.yml'),
    },
  });
  await t.startControlWorker();
  const hostId = uniqueHostId('gc');
  await t.startHostWorker({ hostId, storage: t.config.storage });
  await t.client.refreshHost(hostId);
});
afterAll(async () => {
  await t?.teardown();
  for (const r of [storage, sources]) if (r) await stopProcess(r);
});

const storageDir = () => join(dir, 'storage', 'data');

/** A source image of its own bytes (4 MiB of random data), so each snapshot stores blobs no other one shares. */
async function uniqueSource(docker: Docker, name: string): Promise<string> {
  const local = await deriveImage(docker, 'head -c 4194304 /dev/urandom > /junk', name);
  await pushImage(docker, local, { registryHost: sourceHost, repository: `gc/${name}`, tag: 'v1' });
  await docker.getImage(local).remove({ force: true });
  return `${sourceHost}/gc/${name}:v1`;
}

async function activeSnapshot(name: string, image: string) {
  await t.client.snapshots.wait(await t.client.snapshots.create({ ...base, name, image }));
  return (await t.client.snapshots.get({ workspace: ws, name })).snapshot;
}

/** Pulls a stored ref through the engine: every blob of it must be in storage. */
async function pulls(ref: string): Promise<void> {
  const authconfig = { ...storageUser, serveraddress: storageHost };
  const stream = await t.docker.pull(ref, { authconfig });
  await new Promise<void>((resolve, reject) => t.docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  await t.docker.getImage(ref).remove({ force: true });
}

test('a dry run counts what deleted snapshots left behind, --yes frees it, a live snapshot still pulls', async () => {
  const live = await activeSnapshot('gc-live-v1', await uniqueSource(t.docker, 'live'));
  const start = treeBytes(storageDir());
  const gone = [];
  for (let i = 0; i < N; i++) gone.push(await activeSnapshot(`gc-gone-${i}`, await uniqueSource(t.docker, `gone-${i}`)));
  const grown = treeBytes(storageDir());
  expect(grown - start).toBeGreaterThan(N * 4 * 1024 * 1024 * 0.9); // each holds its own ~4 MiB layer (compressed random data)

  for (const s of gone) await t.client.snapshots.delete({ workspace: ws, name: s.name });
  expect(treeBytes(storageDir())).toBeGreaterThanOrEqual(grown - 100_000); // deleting manifests frees (almost) nothing

  const dry = await t.client.storageGc();
  expect(dry).toMatchObject({ dryRun: true, storageBytesBefore: dry.storageBytesAfter });
  expect(dry.blobs).toBeGreaterThanOrEqual(N * 2); // each image's layer and config (and its manifest blob)
  expect(dry.bytes).toBeGreaterThan((grown - start) * 0.95);
  expect(treeBytes(storageDir())).toBe(dry.storageBytesBefore); // a dry run removes nothing

  // The operator's view: the CLI's dry run says the same.
  const shown = await runCli(t, ['storage', 'gc']);
  expect(shown).toMatchObject({ status: 0, stderr: '' });
  expect(shown.stdout).toContain(`${dry.blobs} unreferenced blobs, ${(dry.bytes / 1048576).toFixed(1)} MiB, would be freed`);

  const done = await t.client.storageGc({ yes: true });
  expect(done).toMatchObject({ dryRun: false, blobs: dry.blobs, check: { checked: 1, damaged: [] } });
  const after = treeBytes(storageDir());
  expect(after).toBe(done.storageBytesAfter);
  expect(Math.abs(after - start) / start).toBeLessThan(0.05);
  console.log(`storage gc: start ${start} B, ${N} snapshots ${grown} B, dry run ${dry.blobs} blobs ${dry.bytes} B, after --yes ${after} B`);

  await pulls(live.storedRef!);
  // Nothing left to free: a second run is a no-op.
  await expect(t.client.storageGc({ yes: true })).resolves.toMatchObject({ blobs: 0 });
});

test('blobs collected before their manifest: the PUT fails with blob unknown, the upload retry sends them again', async () => {
  const target = { registry: storageHost, repository: 'snapflow/system/gc-race', credentials: storageUser };
  const file = join(dir, 'state.bin');
  writeFileSync(file, randomBytes(2 * 1024 * 1024));
  writeFileSync(`${file}.json`, '{}');
  const digest = `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;
  const auth = { authorization: `Basic ${Buffer.from(`${storageUser.username}:${storageUser.password}`).toString('base64')}` };

  // A first attempt that uploaded its blob and died before its manifest: gc --yes runs in between.
  const started = await fetch(`${storage.url}/v2/${target.repository}/blobs/uploads/`, { method: 'POST', headers: auth });
  const location = new URL(started.headers.get('location')!, storage.url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/octet-stream' },
    body: readFileSync(file),
  });
  expect(put.status).toBe(201);
  const freed = await t.client.storageGc({ yes: true });
  expect(freed.blobs).toBeGreaterThanOrEqual(1);
  const head = await fetch(`${storage.url}/v2/${target.repository}/blobs/${digest}`, { method: 'HEAD', headers: auth });
  expect(head.status).toBe(404);

  // Its manifest PUT now fails with blob unknown, as a save's would…
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.empty.v1+json',
      digest: `sha256:${createHash('sha256').update('{}').digest('hex')}`,
      size: 2,
    },
    layers: [{ mediaType: 'application/octet-stream', digest, size: 2 * 1024 * 1024 }],
  });
  const refused = await fetch(`${storage.url}/v2/${target.repository}/manifests/attempt-1`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  expect(refused.status).toBe(400);
  expect(JSON.stringify(await refused.json())).toMatch(/BLOB_UNKNOWN/);

  // …and the save's retry (the vm state upload, which checks each blob) sends the collected blob again.
  const pushed = await pushState(target, file, 'attempt-2', { chunks: dir });
  const stored = await fetch(`${storage.url}/v2/${target.repository}/blobs/${digest}`, { method: 'HEAD', headers: auth });
  expect(stored.status).toBe(200);
  const kept = await fetch(`${storage.url}/v2/${target.repository}/manifests/${pushed.digest}`, {
    method: 'HEAD',
    headers: { ...auth, accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  expect(kept.status).toBe(200);
});

test('the engine pushes again what a gc collected, though it pushed the same layers to that repository before', async () => {
  // What a retried image store does: the engine remembers the layers it pushed, and must not trust that memory.
  const local = await deriveImage(t.docker, 'head -c 1048576 /dev/urandom > /junk', 'gc-repush');
  const target = { registryHost: storageHost, repository: 'snapflow/system/gc-repush', credentials: storageUser };
  const first = await pushImage(t.docker, local, { ...target, tag: 'v1' });
  const auth = { authorization: `Basic ${Buffer.from(`${storageUser.username}:${storageUser.password}`).toString('base64')}` };
  const deleted = await fetch(`${storage.url}/v2/${target.repository}/manifests/${first}`, { method: 'DELETE', headers: auth });
  expect(deleted.status).toBe(202);
  expect((await t.client.storageGc({ yes: true })).blobs).toBeGreaterThanOrEqual(2);
  await expect(pushImage(t.docker, local, { ...target, tag: 'v2' })).resolves.toBe(first);
  await pulls(`${storageHost}/${target.repository}@${first}`);
  await t.docker.getImage(local).remove({ force: true });
});

test('storage gc over and over while a snapshot is being stored: every live snapshot pulls afterwards', async () => {
  const image = await uniqueSource(t.docker, 'racing');
  let storing = true;
  const stored = activeSnapshot('gc-racing-v1', image).finally(() => (storing = false));
  // gc --yes back to back (bounded) for as long as the save runs: its blobs are unreferenced until its manifest lands.
  const runs = [];
  for (let i = 0; i < 60 && storing; i++) runs.push(await t.client.storageGc({ yes: true }));
  const racing = await stored;
  expect(racing.status).toBe('active');
  runs.push(await t.client.storageGc({ yes: true }));
  console.log(`storage gc: ${runs.length} runs during one save, ${runs.reduce((n, r) => n + r.blobs, 0)} blobs collected meanwhile`);
  expect(runs.at(-1)!.check).toEqual({ checked: 2, damaged: [] });
  for (const name of ['gc-live-v1', racing.name]) await pulls((await t.client.snapshots.get({ workspace: ws, name })).snapshot.storedRef!);
});

test('only operators may collect storage garbage; without the registry config it says how to enable it', async () => {
  await expect(t.client.as('someone').storageGc()).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  const unconfigured = createStorageGcActivities({}).collectStorageGarbage({ dryRun: true });
  await expect(unconfigured).rejects.toMatchObject({ type: 'STORAGE_GC_NOT_CONFIGURED', nonRetryable: true });
  await expect(unconfigured).rejects.toThrow(/SNAPFLOW_REGISTRY_CONFIG/);
});
