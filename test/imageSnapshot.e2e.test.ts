// Image snapshots on the real stack (see README, Image snapshots): from a public registry and from a private GHCR stand-in opened
// only by a GitHub App installation token, every failure typed, replace-vs-reuse, and no secret in history.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { defaultHistory, defaultPointers, githubConnections, snapshots } from '../db/schema';
import { SnapflowError } from '../lib/errors';
import { validateCreateImageSnapshot } from '../lib/validation';
import { BASE_IMAGE_REF } from '../lib/presets';
import { taskQueues, workflowIds } from '../lib/ids';
import { startRegistry, stopProcess, freePort, type ManagedProcess } from '../scripts/stack';
import { startFakeGithub, type FakeGithub } from './support/fakeGithub';
import { deriveImage, pushImage } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let github: FakeGithub;
const registries: ManagedProcess[] = [];
const hosts = { public: '', ghcr: '', locked: '' };
const INSTALLATION = 42;
const ws = 'ws-images';

async function registry(name: string, users?: Array<{ username: string; password: string }>): Promise<string> {
  const port = await freePort();
  const dir = join(process.env.SNAPFLOW_TEST_STATE ? join(process.env.SNAPFLOW_TEST_STATE, '..') : '/tmp', `registry-${name}`);
  registries.push(await startRegistry({ dir, port, users }));
  return `127.0.0.1:${port}`;
}

beforeAll(async () => {
  github = await startFakeGithub();
  github.addInstallation({ id: INSTALLATION, account: 'acme' });
  hosts.public = await registry('public');
  hosts.ghcr = await registry('ghcr', [{ username: 'x-access-token', password: github.tokenFor(INSTALLATION) }]);
  hosts.locked = await registry('locked', [{ username: 'someone', password: 'not-ours' }]);
  const githubApp = { appId: String(github.appId), privateKey: github.privateKeyPem, apiUrl: github.url };
  t = await createTestEnv({
    env: {
      SNAPFLOW_GHCR_HOST: hosts.ghcr,
      GITHUB_APP_ID: githubApp.appId,
      GITHUB_APP_PRIVATE_KEY: githubApp.privateKey,
      GITHUB_API_URL: github.url,
    },
  });
  await t.client.workspaces.setGithubAccounts({ id: ws, allow: ['acme'] });
  await t.startControlWorker({ githubApp });
  const hostId = uniqueHostId('img');
  await t.startHostWorker({ hostId, githubApp });
  await t.client.refreshHost(hostId);

  await pushImage(t.docker, BASE_IMAGE_REF, { registryHost: hosts.public, repository: 'tools/agent', tag: 'v1' });
  await pushImage(t.docker, await deriveImage(t.docker, 'chmod -x /app/start.sh', 'noexec'), {
    registryHost: hosts.public,
    repository: 'tools/agent',
    tag: 'noexec',
  });
  await pushImage(t.docker, BASE_IMAGE_REF, {
    registryHost: hosts.ghcr,
    repository: 'acme/private-agent',
    tag: 'v1',
    credentials: { username: 'x-access-token', password: github.tokenFor(INSTALLATION) },
  });
  await pushImage(t.docker, BASE_IMAGE_REF, {
    registryHost: hosts.locked,
    repository: 'team/agent',
    tag: 'v1',
    credentials: { username: 'someone', password: 'not-ours' },
  });
});

afterAll(async () => {
  await t?.teardown();
  for (const r of registries) await stopProcess(r);
  await github?.close();
});

const base = { workspace: ws, runtime: 'codex', size: 'small' };
const rowsNamed = async (name: string) =>
  t.db.db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.workspace, ws), eq(snapshots.name, name)));

async function createAndWait(input: Parameters<TestEnv['client']['snapshots']['create']>[0]) {
  const created = await t.client.snapshots.create(input);
  const steps: string[] = [];
  const result = await t.client.snapshots.wait(created, (step) => steps.push(step));
  return { created, result, steps };
}

async function expectFailed(name: string, image: string, code: string, extra: Record<string, string> = {}) {
  const created = await t.client.snapshots.create({ ...base, name, image, ...extra });
  await expect(t.client.snapshots.wait(created)).rejects.toMatchObject({ code });
  const [row] = await rowsNamed(name);
  expect(row).toMatchObject({ status: 'failed', errorCode: code });
  expect(row!.errorMessage!.length).toBeGreaterThan(10);
  return row!;
}

test('a public image becomes an active snapshot: pending at once, then resolve → pull → verify → boot → store', async () => {
  const created = await t.client.snapshots.create({ ...base, name: 'agent-v1', image: `${hosts.public}/tools/agent:v1` });
  expect(created).toMatchObject({ status: 'pending', reused: false, name: 'agent-v1' });
  const steps: string[] = [];
  const result = await t.client.snapshots.wait(created, (step) => steps.push(step));
  expect(steps).toEqual(['resolve', 'pull', 'verify', 'boot', 'store']);
  expect(result).toMatchObject({ status: 'active', snapshotId: created.snapshotId });

  const { snapshot, events, uiLink } = await t.client.snapshots.get({ workspace: ws, name: 'agent-v1' });
  expect(snapshot).toMatchObject({
    status: 'active',
    kind: 'image',
    runtime: 'codex',
    size: 'small',
    entrypoint: '/app/start.sh',
    profileKey: 'codex/small/base-1',
  });
  expect(snapshot.resolvedDigest).toMatch(/^sha256:/);
  expect(snapshot.storedRef).toBe(`${t.stack.storage.registryHost}/snapflow/${ws}/agent-v1@${result.digest}`);
  expect(events.map((e) => e.type)).toEqual([
    'created',
    'step:resolve',
    'step:pull',
    'step:verify',
    'step:boot',
    'step:store',
    'activated',
  ]);
  expect(uiLink).toContain(encodeURIComponent(`image-snapshot/${ws}/agent-v1`));
});

test('the same name and spec returns the existing snapshot; a changed spec is refused with the next name', async () => {
  const again = await t.client.snapshots.create({ ...base, name: 'agent-v1', image: `${hosts.public}/tools/agent:v1` });
  expect(again).toMatchObject({ reused: true, status: 'active' });
  const changed = await t.client.snapshots
    .create({ ...base, runtime: 'pi', name: 'agent-v1', image: `${hosts.public}/tools/agent:v1` })
    .catch((e: unknown) => e);
  expect(changed).toMatchObject({ code: 'CONFLICT', field: 'name' });
  expect((changed as SnapflowError).message).toContain('runtime');
  expect((changed as SnapflowError).hint).toContain('agent-v2');
  expect(await rowsNamed('agent-v2')).toHaveLength(0);
});

test('--replace creates the next version and moves the agents on the old one to it; the old one stays for rollback', async () => {
  const [old] = await rowsNamed('agent-v1');
  // What a user can put on an image snapshot is agents: a default or a pin takes only a golden snapshot.
  await t.client.workspaces.create({ id: ws, plan: 'paid', admin: 'alice' });
  const agentNames = ['helper-1', 'helper-2'];
  for (const name of agentNames) await t.client.agents.create({ workspace: ws, name, snapshot: 'agent-v1' });
  await expect(t.client.golden.setDefault({ workspace: ws, name: 'agent-v1' })).rejects.toMatchObject({
    code: 'CONFLICT',
    message: expect.stringContaining('only golden snapshots can be defaults'),
  });
  await expect(t.client.sandboxes.pin({ workspace: ws, issue: 'ENG-1', snapshot: 'agent-v1' })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    message: expect.stringContaining('only golden snapshots can be pinned'),
  });

  const { created, result } = await createAndWait({
    ...base,
    entrypoint: '/bin/sh',
    name: 'agent-v1',
    image: `${hosts.public}/tools/agent:v1`,
    replace: true,
  });
  expect(created).toMatchObject({ name: 'agent-v2', replaces: old!.id });
  expect(result.status).toBe('active');
  const moved = await t.client.agents.list({ workspace: ws });
  expect(moved.map((a) => ({ name: a.name, on: a.snapshotId, was: a.previousSnapshotId }))).toEqual(
    agentNames.map((name) => ({ name, on: created.snapshotId, was: old!.id })),
  );
  const { snapshot, events } = await t.client.snapshots.get({ workspace: ws, name: 'agent-v1' });
  expect(snapshot.status).toBe('active');
  expect(events.filter((e) => e.type === 'replaced').map((e) => e.message)).toEqual([
    `replaced by ${created.snapshotId}: 0 default(s), 0 pin(s), 2 agent(s) moved`,
  ]);
  // Nothing of the workspace was a default, and replacing made nothing one.
  expect(await t.db.db.select().from(defaultPointers).where(eq(defaultPointers.workspace, ws))).toEqual([]);
  expect(await t.db.db.select().from(defaultHistory).where(eq(defaultHistory.workspace, ws))).toEqual([]);
  expect((await rowsNamed('agent-v2'))[0]).toMatchObject({ parentSnapshotId: old!.id });
});

test('concurrent creates of one name give one snapshot and one workflow', async () => {
  const all = await Promise.all(
    Array.from({ length: 6 }, () => t.client.snapshots.create({ ...base, name: 'race-v1', image: `${hosts.public}/tools/agent:v1` })),
  );
  expect(new Set(all.map((c) => c.snapshotId)).size).toBe(1);
  await t.client.snapshots.wait(all[0]!);
  expect(await rowsNamed('race-v1')).toHaveLength(1);
  const runs = [];
  for await (const run of t.client.temporal.workflow.list({ query: `WorkflowId = 'image-snapshot/${ws}/race-v1'` })) runs.push(run);
  expect(runs).toHaveLength(1);
});

test('a create of a name whose run no worker has taken yet joins it (same spec) or is refused (different spec)', async () => {
  // The running create is read from its start, not asked: a busy host whose worker has not taken the run's first
  // task must not turn a retried create into CONFLICT. Nothing takes this task queue, so the run never starts.
  const name = 'stalled-v1';
  const v = validateCreateImageSnapshot({ ...base, name, image: `${hosts.public}/tools/agent:v1` });
  const request = {
    snapshotId: randomUUID(),
    workspace: ws,
    name,
    image: v.image,
    imageRef: v.imageRef,
    entrypoint: v.entrypoint,
    runtime: v.runtime,
    size: v.size,
    profileKey: v.profileKey,
    requiresGithub: false,
    actor: 'test',
  };
  const stalled = await t.client.temporal.workflow.start('createImageSnapshot', {
    taskQueue: 'no-worker-takes-this',
    workflowId: workflowIds.imageSnapshot(ws, name),
    args: [request],
  });
  try {
    await expect(
      t.client.snapshots.create({ ...base, name, image: `${hosts.public}/tools/agent:v1`, entrypoint: '/bin/sh' }),
    ).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('with a different spec') });
    const joined = await t.client.snapshots.create({ ...base, name, image: `${hosts.public}/tools/agent:v1` });
    expect(joined).toMatchObject({ snapshotId: request.snapshotId, reused: true, status: 'pending' });
  } finally {
    await stalled.terminate('test over');
  }
});

test('a private GHCR image needs the GitHub connection: missing → blocked up front, connected → active', async () => {
  const image = `${hosts.ghcr}/acme/private-agent:v1`;
  await expect(t.client.snapshots.create({ ...base, name: 'private-v1', image })).rejects.toMatchObject({
    code: 'GITHUB_CONNECTION_MISSING',
    hint: expect.stringContaining('snapflow github connect'),
  });
  expect(await rowsNamed('private-v1')).toHaveLength(0);

  await expect(t.client.validateGithub({ workspace: ws, installationId: 999 })).rejects.toMatchObject({
    code: 'GITHUB_CONNECTION_MISSING',
  });
  const connection = await t.client.validateGithub({ workspace: ws, installationId: INSTALLATION });
  expect(connection).toMatchObject({ status: 'connected', account: 'acme', installationId: INSTALLATION });
  const [row] = await t.db.db.select().from(githubConnections).where(eq(githubConnections.workspace, ws));
  expect(Object.values(row!).map(String)).not.toContain(github.tokenFor(INSTALLATION));

  const { result } = await createAndWait({ ...base, name: 'private-v1', image });
  expect(result.status).toBe('active');
});

test('an installation suspended during a build fails it as GITHUB_CONNECTION_EXPIRED; then creation is blocked up front', async () => {
  github.suspend(INSTALLATION);
  await expectFailed('private-v2', `${hosts.ghcr}/acme/private-agent:v1`, 'GITHUB_CONNECTION_EXPIRED', { runtime: 'pi' });
  expect(await t.client.githubStatus({ workspace: ws })).toMatchObject({ status: 'expired' });
  await expect(
    t.client.snapshots.create({ ...base, name: 'private-v3', image: `${hosts.ghcr}/acme/private-agent:v1` }),
  ).rejects.toMatchObject({ code: 'GITHUB_CONNECTION_EXPIRED', hint: expect.stringContaining('reconnect') });
  await expect(t.client.validateGithub({ workspace: ws })).rejects.toMatchObject({ code: 'GITHUB_CONNECTION_EXPIRED' });
});

test('unknown image, missing or non-executable entrypoint and refused credentials each fail with their reason', async () => {
  await expectFailed('missing-tag-v1', `${hosts.public}/tools/agent:v404`, 'IMAGE_NOT_FOUND');
  const noFile = await expectFailed('no-entry-v1', `${hosts.public}/tools/agent:v1`, 'ENTRYPOINT_NOT_FOUND', {
    entrypoint: '/app/missing.sh',
  });
  expect(noFile.errorMessage).toContain('/app/missing.sh does not exist');
  const noExec = await expectFailed('noexec-v1', `${hosts.public}/tools/agent:noexec`, 'ENTRYPOINT_NOT_FOUND');
  expect(noExec.errorMessage).toContain('not executable');
  await expectFailed('locked-v1', `${hosts.locked}/team/agent:v1`, 'REGISTRY_AUTH_FAILED');
  // A failed name can be retried once fixed: the failed row is superseded, not in the way.
  const { result } = await createAndWait({ ...base, name: 'no-entry-v1', image: `${hosts.public}/tools/agent:v1` });
  expect(result.status).toBe('active');
});

test('hostile or invalid input is refused before anything is written', async () => {
  const before = (await t.db.db.select().from(snapshots)).length;
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ name: "x'; drop table snapshots;--" }, 'name'],
    [{ name: 'a'.repeat(10_000) }, 'name'],
    [{ name: 'ok-v1', image: '$(rm -rf /)' }, 'image'],
    [{ name: 'ok-v1', image: `${hosts.public}/tools/agent` }, 'image'],
    [{ name: 'ok-v1', image: `${hosts.public}/tools/agent:latest` }, 'image'],
    [{ name: 'ok-v1', entrypoint: 'start.sh' }, 'entrypoint'],
    [{ name: 'ok-v1', entrypoint: '/app/start.sh\u0000' }, 'entrypoint'],
    [{ name: 'ok-v1', runtime: 'bash' }, 'runtime'],
    [{ name: 'ok-v1', size: 'huge' }, 'size'],
    [{ name: 'ok-v1', workspace: 'ws;rm' }, 'workspace'],
  ];
  for (const [override, field] of cases) {
    const input = { ...base, name: 'ok-v1', image: `${hosts.public}/tools/agent:v1`, ...override } as Parameters<
      TestEnv['client']['snapshots']['create']
    >[0];
    await expect(t.client.snapshots.create(input)).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field });
  }
  expect((await t.db.db.select().from(snapshots)).length).toBe(before);
});

test('a pending snapshot whose run has ended is failed by the reconciler, never left pending', async () => {
  const [ghost] = await t.db.db
    .insert(snapshots)
    .values({
      workspace: ws,
      name: 'ghost-v1',
      kind: 'image',
      runtime: 'codex',
      size: 'small',
      profileKey: 'codex/small/base-1',
      origin: 'user',
      workflowId: 'image-snapshot/nowhere/ghost',
      status: 'pending',
      updatedAt: new Date(Date.now() - 10 * 60_000),
    })
    .returning();
  const result = await t.client.temporal.workflow.execute('reconcileSnapshots', {
    taskQueue: taskQueues.control,
    workflowId: `reconcile-test-${ghost!.id}`,
    args: [],
  });
  expect(result).toMatchObject({ failed: [ghost!.id] });
  expect((await rowsNamed('ghost-v1'))[0]).toMatchObject({ status: 'failed', errorCode: 'WORKFLOW_GONE' });
});

test('no token, registry password or private key appears in any workflow history', async () => {
  const secrets = [github.tokenFor(INSTALLATION), t.stack.storage.password, 'not-ours', github.privateKeyPem.split('\n')[1]!];
  // Payload data comes back base64-encoded (or as bytes): decode it, or a secret inside could never match.
  const text = (history: unknown): string =>
    JSON.stringify(history, (k, v: unknown) => {
      if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
      if (k === 'data' && typeof v === 'string') return Buffer.from(v, 'base64').toString('utf8');
      return v;
    });
  let scanned = 0;
  for await (const run of t.client.temporal.workflow.list()) {
    const history = text(await t.client.temporal.workflow.getHandle(run.workflowId, run.runId).fetchHistory());
    for (const secret of secrets) expect(history.includes(secret)).toBe(false);
    scanned++;
  }
  expect(scanned).toBeGreaterThan(10);
  // The scan can see payloads: the snapshot names the workflows were given are there in plain text.
  const one = await t.client.temporal.workflow.getHandle(`image-snapshot/${ws}/agent-v1`).fetchHistory();
  expect(text(one)).toContain('tools/agent:v1');
});
