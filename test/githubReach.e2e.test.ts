// What a workspace can reach through the GitHub App: only installations of the accounts an operator allowed, only
// with read-only package tokens, only on the GHCR host; and a member cannot expire the connection for everyone by
// naming an image the installation cannot read.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import type { SnapflowClient } from '../client';
import { workspaceGithubAccounts } from '../db/access';
import { githubConnections, snapshots } from '../db/schema';
import { taskQueues, workflowIds } from '../lib/ids';
import { BASE_IMAGE_REF } from '../lib/presets';
import { freePort, startRegistry, stopProcess, type ManagedProcess } from '../scripts/stack';
import type { createImageSnapshot } from '../workflows';
import { startFakeGithub, type FakeGithub } from './support/fakeGithub';
import { pushImage } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let github: FakeGithub;
let ghcr: ManagedProcess;
let ghcrHost = '';
let spy: Server;
let spyHost = '';
const spyAuthorizations: string[] = [];
const OURS = 42;
const THEIRS = 77;
const as = (user: string): SnapflowClient => t.client.as(user);

beforeAll(async () => {
  github = await startFakeGithub();
  github.addInstallation({ id: OURS, account: 'acme-org' });
  github.addInstallation({ id: THEIRS, account: 'globex' });
  const port = await freePort();
  ghcr = await startRegistry({
    dir: join(process.env.SNAPFLOW_TEST_STATE!, '..', 'registry-reach'),
    port,
    users: [{ username: 'x-access-token', password: github.tokenFor(OURS) }],
  });
  ghcrHost = `127.0.0.1:${port}`;
  // A registry that is not GHCR and records every Authorization header it is sent.
  spy = createServer((req, res) => {
    if (req.headers.authorization) spyAuthorizations.push(req.headers.authorization);
    res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="spy"', 'Docker-Distribution-API-Version': 'registry/2.0' }).end();
  });
  await new Promise<void>((r) => spy.listen(0, '127.0.0.1', r));
  spyHost = `127.0.0.1:${(spy.address() as AddressInfo).port}`;
  const githubApp = { appId: String(github.appId), privateKey: github.privateKeyPem, apiUrl: github.url };
  t = await createTestEnv({
    env: {
      SNAPFLOW_GHCR_HOST: ghcrHost,
      GITHUB_APP_ID: githubApp.appId,
      GITHUB_APP_PRIVATE_KEY: githubApp.privateKey,
      GITHUB_API_URL: github.url,
    },
  });
  await t.startControlWorker({ githubApp });
  const hostId = uniqueHostId('gh');
  await t.startHostWorker({ hostId, githubApp });
  await t.client.refreshHost(hostId);
  await pushImage(t.docker, BASE_IMAGE_REF, {
    registryHost: ghcrHost,
    repository: 'acme-org/agent',
    tag: 'v1',
    credentials: { username: 'x-access-token', password: github.tokenFor(OURS) },
  });
  await t.client.workspaces.create({ id: 'acme', plan: 'paid', admin: 'alice' });
  await as('alice').workspaces.addMember({ workspace: 'acme', user: 'bob' });
}, 180_000);
afterAll(async () => {
  await t?.teardown();
  if (ghcr) await stopProcess(ghcr);
  await new Promise((r) => spy?.close(r));
  await github?.close();
});

const connection = async () => (await t.db.db.select().from(githubConnections).where(eq(githubConnections.workspace, 'acme')))[0];

test('only operators say which GitHub accounts a workspace may use', async () => {
  await expect(as('alice').workspaces.setGithubAccounts({ id: 'acme', allow: ['globex'] })).rejects.toMatchObject({
    code: 'PERMISSION_DENIED',
  });
  expect(await t.db.db.select().from(workspaceGithubAccounts)).toEqual([]);
  expect(await t.client.workspaces.setGithubAccounts({ id: 'acme', allow: ['Acme-Org'] })).toEqual({
    workspace: 'acme',
    accounts: ['acme-org'],
  });
  expect(await as('bob').workspaces.githubAccounts('acme')).toEqual({ workspace: 'acme', accounts: ['acme-org'] });
});

test("an admin connecting another organisation's installation is refused: nothing stored, no token minted", async () => {
  const mintsBefore = github.mints.length;
  await expect(as('alice').validateGithub({ workspace: 'acme', installationId: THEIRS })).rejects.toMatchObject({
    code: 'GITHUB_ACCOUNT_MISMATCH',
    message: expect.stringContaining('globex'),
    hint: expect.stringContaining('github-accounts'),
  });
  expect(await connection()).toBeUndefined();
  expect(github.mints.slice(mintsBefore)).toEqual([]);

  expect(await as('alice').validateGithub({ workspace: 'acme', installationId: OURS })).toMatchObject({
    status: 'connected',
    account: 'acme-org',
  });
  // Every token asked for is the narrowest one: read packages, nothing else.
  expect(github.mints.length).toBeGreaterThan(mintsBefore);
  for (const mint of github.mints) expect(mint.permissions).toEqual({ packages: 'read' });
});

test('an account the operator no longer allows stops opening images at once', async () => {
  await t.client.workspaces.setGithubAccounts({ id: 'acme', allow: [] });
  try {
    const created = await as('bob').snapshots.create({
      workspace: 'acme',
      name: 'agent-v1',
      image: `${ghcrHost}/acme-org/agent:v1`,
      runtime: 'codex',
      size: 'small',
    });
    await expect(as('bob').snapshots.wait(created)).rejects.toMatchObject({ code: 'GITHUB_ACCOUNT_MISMATCH' });
  } finally {
    await t.client.workspaces.setGithubAccounts({ id: 'acme', allow: ['acme-org'] });
  }
});

test('the host mints a token only for the GHCR host, whatever the request says', async () => {
  const mintsBefore = github.mints.length;
  // A service starts the workflow itself and claims the spy registry needs the GitHub connection.
  const run = t.client.temporal.workflow.execute<typeof createImageSnapshot>('createImageSnapshot', {
    taskQueue: taskQueues.control,
    workflowId: workflowIds.imageSnapshot('acme', 'leak-v1'),
    args: [
      {
        snapshotId: crypto.randomUUID(),
        workspace: 'acme',
        name: 'leak-v1',
        image: { registry: spyHost, repository: 'acme-org/agent', tag: 'v1' },
        imageRef: `${spyHost}/acme-org/agent:v1`,
        entrypoint: '/app/start.sh',
        runtime: 'codex',
        size: 'small',
        profileKey: 'codex/small/base-1',
        requiresGithub: true,
        actor: 'alice',
      },
    ],
  });
  await expect(run).rejects.toMatchObject({ cause: { type: 'REGISTRY_AUTH_FAILED' } });
  expect(spyAuthorizations).toEqual([]);
  expect(github.mints.slice(mintsBefore)).toEqual([]);
});

test('a member naming an image the installation cannot read fails that snapshot, typed; the connection stays connected', async () => {
  await expect(
    as('bob').snapshots.wait(
      await as('bob').snapshots.create({
        workspace: 'acme',
        name: 'missing-v1',
        image: `${ghcrHost}/globex/secret:v1`,
        runtime: 'codex',
        size: 'small',
      }),
    ),
  ).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
  // The registry refuses the freshly minted token (the installation has no access to this package).
  const installation = github.installations.get(OURS)!;
  const token = installation.token;
  installation.token = `${token.slice(0, -4)}XXXX`;
  try {
    await expect(
      as('bob').snapshots.wait(
        await as('bob').snapshots.create({
          workspace: 'acme',
          name: 'denied-v1',
          image: `${ghcrHost}/acme-org/agent:v1`,
          runtime: 'codex',
          size: 'small',
        }),
      ),
    ).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED' });
  } finally {
    installation.token = token;
  }
  const failed = await t.db.db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.workspace, 'acme'), eq(snapshots.status, 'failed')));
  expect(Object.fromEntries(failed.map((s) => [s.name, s.errorCode]))).toMatchObject({
    'missing-v1': 'IMAGE_NOT_FOUND',
    'denied-v1': 'REGISTRY_AUTH_FAILED',
  });
  expect(await connection()).toMatchObject({ status: 'connected' });
  // … and it still works for everyone.
  const created = await as('bob').snapshots.create({
    workspace: 'acme',
    name: 'agent-v2',
    image: `${ghcrHost}/acme-org/agent:v1`,
    runtime: 'codex',
    size: 'small',
  });
  expect((await as('bob').snapshots.wait(created)).status).toBe('active');
});

test('GitHub itself refusing the installation still marks the connection expired', async () => {
  github.suspend(OURS);
  const created = await as('bob').snapshots.create({
    workspace: 'acme',
    name: 'agent-v3',
    image: `${ghcrHost}/acme-org/agent:v1`,
    runtime: 'pi',
    size: 'small',
  });
  await expect(as('bob').snapshots.wait(created)).rejects.toMatchObject({ code: 'GITHUB_CONNECTION_EXPIRED' });
  expect(await connection()).toMatchObject({ status: 'expired' });
});
