// vm sandboxes on the real stack: a QEMU machine per sandbox, session snapshots that hold memory and processes,
// promotion to a golden machine, saved machines in snapshot storage as OCI artifacts, and the machine profile
// in the restore order.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { hosts, snapshots } from '../db/schema';
import { workflowIds } from '../lib/ids';
import { resolveDigest } from '../activities/registryClient';
import { vmTools } from '../activities/vm/machine';
import { VM_CHUNK_LAYER, VM_STATE_ARTIFACT, VM_STATE_LAYER } from '../activities/vm/stateArtifacts';
import { vmPlaces } from '../workers/host';
import { recordHistory } from './support/histories';
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('vm');
const ws = 'ws-vm';

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
});
afterAll(async () => {
  await destroyEverySandbox(t);
  await t?.teardown();
});

const sh = (script: string) => ({ command: ['sh', '-c', script] });
const create = (extra: Partial<Parameters<TestEnv['client']['sandboxes']['create']>[0]> = {}) =>
  t.client.sandboxes.create({ workspace: ws, class: 'vm', size: 'small', runtime: 'codex', ...extra });
const qemuPids = (): string[] => {
  try {
    return execFileSync('pgrep', ['-f', `${vmPlaces(hostId).runRoot}/`], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean);
  } catch {
    return [];
  }
};

test('a vm sandbox is a QEMU machine: its jobs see the guest kernel, not the host', async () => {
  const { sandboxId, status } = await create({ keepAlive: true });
  expect(status.containerId).toMatch(/^vm:/);
  expect(qemuPids()).toHaveLength(1);
  const job = await t.client.sandboxes.runJob(sandboxId, { command: ['uname', '-r'] });
  expect(job.stdout.trim()).toBe(vmTools().kernelVersion);
  expect(job.stdout.trim()).not.toBe(execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim());
  await t.client.sandboxes.destroy(sandboxId);
  expect(qemuPids()).toHaveLength(0);
  expect(existsSync(`${vmPlaces(hostId).runRoot}/${sandboxId}-1`)).toBe(false);
});

test('a process started by a job is still running after the sandbox stops and resumes from its session', async () => {
  const { sandboxId } = await create();
  const job = await t.client.sandboxes.runJob(sandboxId, sh('sleep 1000 & echo $! > /root/bg.pid; echo note > /root/note; echo started'), {
    waitForSession: true,
  });
  expect(job).toMatchObject({ exitCode: 0, stdout: 'started\n', stopped: true, sessionSnapshotId: expect.any(String) });
  expect(qemuPids()).toHaveLength(0); // stopped: the machine quit with its save
  const [session] = await t.db.db.select().from(snapshots).where(eq(snapshots.id, job.sessionSnapshotId!));
  expect(session).toMatchObject({
    kind: 'session',
    machineProfile: expect.stringMatching(/^qemu-[\d.]+\/pc-i440fx-[\d.]+\/(kvm|tcg)\/512m\/1cpu\//),
  });
  // In snapshot storage as an artifact of its own type, not an image.
  const [registry, rest] = [session!.storedRef!.split('/')[0]!, session!.storedRef!.slice(session!.storedRef!.indexOf('/') + 1)];
  const [repository, digest] = rest.split('@') as [string, string];
  const storage = t.config.storage!;
  const manifest = await resolveDigest({ registry, repository, reference: digest, credentials: storage });
  expect(manifest.digest).toBe(digest);
  const res = await fetch(`${storage.url}/v2/${repository}/manifests/${digest}`, {
    headers: {
      accept: 'application/vnd.oci.image.manifest.v1+json',
      authorization: `Basic ${Buffer.from(`${storage.username}:${storage.password}`).toString('base64')}`,
    },
  });
  const artifact = (await res.json()) as { artifactType: string; layers: Array<{ mediaType: string }> };
  expect(artifact.artifactType).toBe(VM_STATE_ARTIFACT);
  // Device state first, then the RAM and overlay chunks, each a blob of its own.
  expect(artifact.layers[0]!.mediaType).toBe(VM_STATE_LAYER);
  expect(artifact.layers.slice(1).every((l) => l.mediaType === VM_CHUNK_LAYER)).toBe(true);
  expect(artifact.layers.length).toBeGreaterThan(10);

  // A host that has neither the state nor its chunks (a new host, or one whose cache let them go) fetches them.
  const hostCache = join(t.stack.dir, 'vm', hostId);
  for (const dir of ['vm-states', 'vm-chunks']) rmSync(join(hostCache, dir), { recursive: true, force: true });
  const next = await t.client.sandboxes.runJob(sandboxId, sh('kill -0 "$(cat /root/bg.pid)" && cat /root/note && echo alive'));
  expect(next).toMatchObject({ exitCode: 0, stdout: 'note\nalive\n', resumedFrom: { source: 'session', snapshotId: session!.id } });
  await t.client.sandboxes.destroy(sandboxId).catch(() => undefined);
  await recordHistory(t.client.temporal, workflowIds.sandbox(sandboxId), 'sandbox-vm-restore');
});

test('promote saves the machine as a golden default: a new sandbox starts warm, its process still running', async () => {
  const maker = await create({ workspace: 'ws-vm-golden', keepAlive: true });
  await t.client.sandboxes.runJob(maker.sandboxId, sh('sleep 1000 & echo $! > /root/service.pid'));
  const promoted = await t.client.sandboxes.promote(maker.sandboxId, { name: 'vm-golden-1', setDefault: true });
  // The promoted sandbox keeps running.
  expect((await t.client.sandboxes.runJob(maker.sandboxId, sh('kill -0 "$(cat /root/service.pid)" && echo up'))).stdout).toBe('up\n');
  await t.client.sandboxes.destroy(maker.sandboxId);
  await recordHistory(t.client.temporal, workflowIds.sandbox(maker.sandboxId), 'sandbox-vm-promote');

  const box = await create({ workspace: 'ws-vm-golden' });
  expect(box.status.lastStart).toMatchObject({
    source: 'golden-workspace',
    snapshotId: promoted.snapshotId,
    machineProfile: expect.any(String),
  });
  const job = await t.client.sandboxes.runJob(box.sandboxId, sh('kill -0 "$(cat /root/service.pid)" && echo warm'));
  expect(job.stdout).toBe('warm\n');
  await t.client.sandboxes.destroy(box.sandboxId).catch(() => undefined);
});

test('a saved machine of another machine profile is skipped as machine-changed, naming what differs', async () => {
  const maker = await create({ workspace: 'ws-vm-profile', keepAlive: true });
  await t.client.sandboxes.promote(maker.sandboxId, { name: 'vm-profile-1', setDefault: true });
  await t.client.sandboxes.destroy(maker.sandboxId);
  // The host now offers a different RAM size for small machines (as a host with other settings would).
  const [row] = await t.db.db.select().from(hosts).where(eq(hosts.id, hostId));
  const profiles = row!.vmProfiles!;
  await t.db.db
    .update(hosts)
    .set({ vmProfiles: { ...profiles, small: profiles.small!.replace('/512m/', '/1024m/') } })
    .where(eq(hosts.id, hostId));
  try {
    const explained = await t.client.sandboxes.create({ workspace: 'ws-vm-profile', class: 'vm', size: 'small', runtime: 'codex' });
    const skip = explained.status.lastStart!.skipped.find((s) => s.step === 'golden-workspace');
    expect(skip).toMatchObject({ reason: 'machine-changed', detail: expect.stringContaining('RAM 512m (host: 1024m)') });
    expect(explained.status.lastStart!.source).toBe('base');
    await t.client.sandboxes.destroy(explained.sandboxId);
  } finally {
    await t.db.db
      .update(hosts)
      .set({ vmProfiles: profiles })
      .where(and(eq(hosts.id, hostId)));
  }
});
