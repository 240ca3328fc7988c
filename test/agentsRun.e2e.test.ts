// Image snapshots become running sandboxes, on the real stack: a private GHCR image, opened only by the workspace's
// GitHub App connection → snapshot → agent → a sandbox whose entrypoint runs as its agent process and whose jobs see
// the image's files; a golden built on that base; the agent moved to a new image, so its old sessions and goldens are
// skipped as base-changed; and canaries that run for real.
import { and, eq } from 'drizzle-orm';
import Docker from 'dockerode';
import { sandboxes, snapshots } from '../db/schema';
import { profileKey } from '../lib/presets';
import { CONTAINER_LABEL } from '../lib/ids';
import { startFakeGithub, type FakeGithub } from './support/fakeGithub';
import { deriveImage, pushImage, sourceRegistry } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';
import { readTestStack } from './support/stackState';

let t: TestEnv;
let github: FakeGithub;
const INSTALLATION = 77;
const ws = 'ws-agents-run';
const hostId = uniqueHostId('agt');
const sandboxIds: string[] = [];

/** A long-lived agent entrypoint that writes its pid, and a marker file the image carries. */
const agentImage = (version: string): string =>
  [
    `mkdir -p /opt/agent && echo support-agent-${version} > /opt/agent/marker.txt`,
    `printf '#!/bin/sh\\necho "agent ${version} starting"\\necho $$ > /tmp/agent.pid\\nexec sleep 600\\n' > /app/start.sh`,
    'chmod +x /app/start.sh',
  ].join(' && ');
/** An entrypoint that says why and exits, beside the base's own /app/start.sh. */
const crashingImage = `printf '#!/bin/sh\\necho "agent starting"\\necho "fatal: SUPPORT_API_KEY is not set" >&2\\nexit 3\\n' > /app/crash.sh && chmod +x /app/crash.sh`;

/**
 * The GHCR stand-in the agents' images come from: it opens only to `x-access-token` with the installation's token,
 * which the workers mint through the GitHub App (snapshot storage is never a source).
 */
let source: Awaited<ReturnType<typeof sourceRegistry>>;

/** Builds an agent image and pushes it to the private registry as `acme/<name>:v1`; returns its reference. */
async function pushAgentImage(name: string, derive: string): Promise<string> {
  const registryHost = source.host;
  await pushImage(t.docker, await deriveImage(t.docker, derive, name), {
    registryHost,
    repository: `acme/${name}`,
    tag: 'v1',
    credentials: source.credentials,
  });
  return `${registryHost}/acme/${name}:v1`;
}

async function imageSnapshot(name: string, image: string): Promise<{ id: string; storedRef: string }> {
  const created = await t.client.snapshots.create({ workspace: ws, name, image, runtime: 'codex', size: 'small' });
  await t.client.snapshots.wait(created);
  const [row] = await t.db.db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.workspace, ws), eq(snapshots.name, name)));
  return { id: row!.id, storedRef: row!.storedRef! };
}

const probe = ['sh', '-c', 'cat /opt/agent/marker.txt && kill -0 "$(cat /tmp/agent.pid)" && echo entrypoint-running'];

beforeAll(async () => {
  github = await startFakeGithub();
  github.addInstallation({ id: INSTALLATION, account: 'acme' });
  // The registry's host is the GHCR host the env is configured with, so it must run before the env does.
  const docker = new Docker({ socketPath: readTestStack().dockerHost.replace('unix://', '') });
  source = await sourceRegistry(docker, 'agents-run', { username: 'x-access-token', password: github.tokenFor(INSTALLATION) });
  const githubApp = { appId: String(github.appId), privateKey: github.privateKeyPem, apiUrl: github.url };
  t = await createTestEnv({
    env: {
      SNAPFLOW_GHCR_HOST: source.host,
      GITHUB_APP_ID: githubApp.appId,
      GITHUB_APP_PRIVATE_KEY: githubApp.privateKey,
      GITHUB_API_URL: github.url,
    },
  });
  await t.startControlWorker({ githubApp });
  await t.startHostWorker({ hostId, githubApp });
  await t.client.refreshHost(hostId);
  await t.client.workspaces.create({ id: ws, plan: 'paid', admin: 'alice' });
  await t.client.workspaces.setGithubAccounts({ id: ws, allow: ['acme'] });
}, 180_000);

afterAll(async () => {
  for (const id of sandboxIds) await t?.client.sandboxes.destroy(id).catch(() => undefined);
  await source?.stop();
  await github?.close();
  await t?.teardown();
});

let v1: { id: string; storedRef: string };
let v1Image = '';
let firstSandbox = '';

test('the agent’s image is private: the registry refuses an anonymous pull and a workspace without a GitHub connection', async () => {
  v1Image = await pushAgentImage('agent-v1', agentImage('v1'));
  const manifest = `http://${source.host}/v2/acme/agent-v1/manifests/v1`;
  const accept = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
  expect((await fetch(manifest, { method: 'HEAD', headers: { accept } })).status).toBe(401);
  const basic = Buffer.from(`${source.credentials!.username}:${source.credentials!.password}`).toString('base64');
  expect((await fetch(manifest, { method: 'HEAD', headers: { accept, authorization: `Basic ${basic}` } })).status).toBe(200);

  const image = { workspace: ws, name: 'agent-v1', image: v1Image, runtime: 'codex', size: 'small' };
  await expect(t.client.snapshots.create(image)).rejects.toMatchObject({ code: 'GITHUB_CONNECTION_MISSING', field: 'image' });
  const connection = await t.client.validateGithub({ workspace: ws, installationId: INSTALLATION });
  expect(connection).toMatchObject({ status: 'connected', account: 'acme', installationId: INSTALLATION });
});

test('sandbox create --agent starts from the agent’s image snapshot: its entrypoint runs and a job sees the image’s file', async () => {
  const mintsBefore = github.mints.length;
  v1 = await imageSnapshot('agent-v1', v1Image);
  // The workers opened the private image with an installation token they minted through the App.
  expect(github.mints.length).toBeGreaterThan(mintsBefore);
  await t.client.agents.create({ workspace: ws, name: 'support-bot', snapshot: 'agent-v1' });

  const created = await t.client.sandboxes.create({ workspace: ws, class: 'vm', agent: 'support-bot' });
  firstSandbox = created.sandboxId;
  sandboxIds.push(created.sandboxId);
  const v1Profile = profileKey({ runtime: 'codex', size: 'small', baseDigest: v1.storedRef });
  expect(v1Profile).toMatch(/^codex\/small\/base-[0-9a-f]{12}$/);
  expect(created.status).toMatchObject({ state: 'idle', hostId });
  expect(created.status.lastStart).toMatchObject({
    source: 'base',
    snapshotId: v1.id,
    name: 'agent-v1',
    imageRef: v1.storedRef,
    profileKey: v1Profile,
    base: { name: 'agent-v1', agent: 'support-bot', entrypoint: '/app/start.sh' },
  });

  const job = await t.client.sandboxes.runJob(created.sandboxId, { command: probe }, { waitForSession: true });
  expect(job).toMatchObject({ exitCode: 0, stopped: true, sessionSnapshotId: expect.any(String) });
  expect(job.stdout).toContain('support-agent-v1');
  expect(job.stdout).toContain('entrypoint-running');
  const [session] = await t.db.db.select().from(snapshots).where(eq(snapshots.id, job.sessionSnapshotId!));
  expect(session!.profileKey).toBe(v1Profile);
}, 300_000);

test('a golden built on that base starts its sandboxes with the entrypoint running and the preloaded image', async () => {
  await t.client.golden.setConfig({ workspace: ws, targets: ['small:codex'], base: 'agent-v1' });
  const started = await t.client.golden.buildNow({ workspace: ws });
  const build = await t.client.golden.waitForBuild(started.workflowId);
  const v1Profile = profileKey({ runtime: 'codex', size: 'small', baseDigest: v1.storedRef });
  expect(build).toMatchObject({ status: 'succeeded', snapshots: [{ profileKey: v1Profile }] });

  const box = await t.client.sandboxes.create({ workspace: ws, class: 'vm', agent: 'support-bot', keepAlive: true });
  sandboxIds.push(box.sandboxId);
  expect(box.status.lastStart).toMatchObject({ source: 'golden-workspace', name: build.snapshots[0]!.name, base: { name: 'agent-v1' } });
  const job = await t.client.sandboxes.runJob(box.sandboxId, { command: probe });
  expect(job).toMatchObject({ exitCode: 0 });
  expect(job.stdout).toContain('entrypoint-running');
  await t.client.sandboxes.destroy(box.sandboxId);
}, 600_000);

test('--auto: a canary whose entrypoint stays up and whose health command succeeds moves the agent', async () => {
  const v2 = await imageSnapshot('agent-v2', await pushAgentImage('agent-v2', agentImage('v2')));
  await t.client.agents.create({
    workspace: ws,
    name: 'probe-bot',
    snapshot: 'agent-v1',
    healthCommand: ['sh', '-c', 'cat /opt/agent/marker.txt'],
  });
  const run = await t.client.agents.rollout({ workspace: ws, snapshot: 'agent-v2', agents: ['probe-bot', 'support-bot'], auto: true });
  const result = await t.client.agents.wait({ workspace: ws, snapshot: 'agent-v2' });
  expect(run.snapshotId).toBe(v2.id);
  expect(result).toMatchObject({
    status: 'completed',
    moved: ['probe-bot', 'support-bot'],
    health: [{ agent: 'probe-bot', ok: true, actor: 'auto', detail: expect.stringContaining('support-agent-v2') }],
  });
  // Nothing of the canary is left running.
  const left = await t.docker.listContainers({ filters: { label: [`${CONTAINER_LABEL}=temp`] } });
  expect(left.filter((c) => c.Names.some((n) => n.includes('canary')))).toEqual([]);
}, 300_000);

test('after the agent moved to a new image, the old sandbox’s session is skipped as base-changed and it starts from the new image', async () => {
  const explained = await t.client.sandboxes.explain(firstSandbox);
  expect(explained).toMatchObject({ source: 'base', name: 'agent-v2', base: { name: 'agent-v2', agent: 'support-bot' } });
  expect(explained.skipped).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ step: 'session', reason: 'base-changed' }),
      expect.objectContaining({ step: 'golden-workspace', reason: 'no-workspace-default' }),
    ]),
  );
  const resumed = await t.client.sandboxes.resume(firstSandbox);
  expect(resumed.lastStart).toMatchObject({ source: 'base', name: 'agent-v2' });
  const job = await t.client.sandboxes.runJob(firstSandbox, { command: probe }, { waitForSession: true });
  expect(job.stdout).toContain('support-agent-v2');
  expect(job.stdout).toContain('entrypoint-running');
  const [row] = await t.db.db.select().from(sandboxes).where(eq(sandboxes.id, firstSandbox));
  expect(row!.profileKey).toBe(
    profileKey({
      runtime: 'codex',
      size: 'small',
      baseDigest: (await t.client.snapshots.get({ workspace: ws, name: 'agent-v2' })).snapshot.storedRef!,
    }),
  );
}, 300_000);

test('an entrypoint that exits fails the start typed, with its output, and leaves nothing running; its canary is rolled back', async () => {
  // A build boots its entrypoint now and refuses one that exits (test/snapshotLogs.e2e.test.ts): this is a snapshot
  // built before that, which the start and the canary must still catch. Its row is the stored image's, as such a
  // build left it, with the crashing entrypoint.
  const built = await imageSnapshot('agent-crash-image', await pushAgentImage('agent-crash', crashingImage));
  const [row] = await t.db.db.select().from(snapshots).where(eq(snapshots.id, built.id));
  const { id: _id, createdAt: _created, updatedAt: _updated, ...stored } = row!;
  await t.db.db.insert(snapshots).values({ ...stored, name: 'agent-crash', entrypoint: '/app/crash.sh', workflowId: null, runId: null });
  const failed = t.client.sandboxes.create({ workspace: ws, class: 'vm', snapshot: 'agent-crash' });
  await expect(failed).rejects.toMatchObject({ code: 'ENTRYPOINT_EXITED', message: expect.stringContaining('SUPPORT_API_KEY is not set') });
  const rows = await t.db.db.select().from(sandboxes).where(eq(sandboxes.workspace, ws));
  const crashed = rows.filter((r) => r.state === 'failed');
  expect(crashed).toHaveLength(1);
  expect(crashed[0]).toMatchObject({ containerId: null });
  const running = await t.docker.listContainers({ filters: { label: [`${CONTAINER_LABEL}=sandbox`] } });
  expect(running.filter((c) => c.Names.some((n) => n.includes(crashed[0]!.id)))).toEqual([]);

  await t.client.agents.rollout({ workspace: ws, snapshot: 'agent-crash', agents: ['support-bot'], auto: true });
  const result = await t.client.agents.wait({ workspace: ws, snapshot: 'agent-crash' });
  expect(result).toMatchObject({ status: 'rolled-back', movedBack: ['support-bot'] });
  expect(result.reason).toContain('ENTRYPOINT_EXITED');
  expect(result.reason).toContain('SUPPORT_API_KEY is not set');
  const [bot] = (await t.client.agents.list({ workspace: ws })).filter((a) => a.name === 'support-bot');
  expect(bot).toMatchObject({ snapshotName: 'agent-v2' });
}, 300_000);
