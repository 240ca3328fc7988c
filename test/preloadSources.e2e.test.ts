// A workspace admin tries to read the hosts' files and repositories through a golden build: skills from /etc, a
// symlink that climbs out of the skills root, repositories outside the repos root or on hosts nobody allowed, and a
// clone that would use the host's own git credentials. Each is refused typed, and nothing is built or copied.
import { mkdtempSync, existsSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { SnapflowClient } from '../client';
import { goldenBuildConfigs, snapshots } from '../db/schema';
import { loadConfig } from '../lib/config';
import { CONTAINER_LABEL } from '../lib/ids';
import { makeBareRepo, makeSkillsDir } from './support/repos';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let inside = '';
let outside = '';
let gitServer: Server;
let gitHits = 0;
let gitHost = '';
const ws = 'ws-preload';

beforeAll(async () => {
  inside = mkdtempSync(join(process.env.SNAPFLOW_TEST_STATE!, '..', 'preload-'));
  outside = mkdtempSync(join(tmpdir(), 'snapflow-outside-'));
  // A git "server" on loopback that asks for credentials: whoever answers it would hand over the host's identity.
  gitServer = createServer((_req, res) => {
    gitHits++;
    res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end();
  });
  await new Promise<void>((r) => gitServer.listen(0, '127.0.0.1', r));
  gitHost = `127.0.0.1:${(gitServer.address() as AddressInfo).port}`;
  t = await createTestEnv();
  await t.startControlWorker();
  const hostId = uniqueHostId('pre');
  await t.startHostWorker({ hostId, preload: { ...t.config.preload, repoHosts: [gitHost] } });
  await t.client.refreshHost(hostId);
});
afterAll(async () => {
  await new Promise((r) => gitServer?.close(r));
  await t?.teardown();
});

const configRows = async () => t.db.db.select().from(goldenBuildConfigs).where(eq(goldenBuildConfigs.workspace, ws));
const nothingBuilt = async () => {
  expect(await t.db.db.select().from(snapshots).where(eq(snapshots.workspace, ws))).toEqual([]);
  expect(await t.docker.listContainers({ all: true, filters: { label: [`${CONTAINER_LABEL}=temp`] } })).toEqual([]);
};
/** What a service that writes the catalog directly (skipping the client's check) would store. */
async function storeConfigDirectly(values: { repos?: string[]; skillsPath?: string }): Promise<void> {
  const row = {
    workspace: ws,
    repos: values.repos ?? [],
    embedSkills: values.skillsPath !== undefined,
    skillsPath: values.skillsPath ?? null,
    prebuildDeps: false,
    depsFallbackCommand: null,
    targets: [{ size: 'small', runtime: 'codex' as const }],
    scheduleCron: null,
    scheduleTimeZone: 'UTC',
    enabled: false,
    updatedAt: new Date(),
  };
  await t.db.db.insert(goldenBuildConfigs).values(row).onConflictDoUpdate({ target: goldenBuildConfigs.workspace, set: row });
}
const build = async () => t.client.golden.waitForBuild((await t.client.golden.buildNow({ workspace: ws })).workflowId);

test('skills from /etc, /root or / are refused when the config is set: nothing is stored', async () => {
  for (const skillsPath of ['/etc', '/root', '/', process.cwd()]) {
    await expect(
      t.client.golden.setConfig({ workspace: ws, embedSkills: true, skillsPath, targets: ['small:codex'] }),
    ).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'skillsPath',
    });
  }
  expect(await configRows()).toEqual([]);
});

test('without SNAPFLOW_SKILLS_ROOT embedding skills is disabled, typed', async () => {
  const { SNAPFLOW_SKILLS_ROOT: _root, ...env } = t.env;
  const client = await SnapflowClient.connect(loadConfig(env));
  try {
    await expect(
      client.golden.setConfig({
        workspace: ws,
        embedSkills: true,
        skillsPath: makeSkillsDir(inside, { 'a.md': 'a' }),
        targets: ['small:codex'],
      }),
    ).rejects.toMatchObject({ code: 'SKILLS_NOT_CONFIGURED', field: 'skillsPath', hint: expect.stringContaining('SNAPFLOW_SKILLS_ROOT') });
  } finally {
    await client.close();
  }
  expect(await configRows()).toEqual([]);
});

test('a skills symlink under the root that points at /etc is refused on the host, on its real path: nothing copied', async () => {
  const link = join(inside, 'skills-link');
  symlinkSync('/etc', link);
  // Lexically inside the root, so the config is accepted; the host resolves it and refuses before copying.
  await t.client.golden.setConfig({ workspace: ws, embedSkills: true, skillsPath: link, targets: ['small:codex'] });
  await expect(build()).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('outside') });
  await nothingBuilt();
  // A config written straight into the catalog, past the client's check, meets the same host check.
  await storeConfigDirectly({ skillsPath: '/etc' });
  await expect(build()).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  await nothingBuilt();
});

test('repositories outside SNAPFLOW_REPOS_ROOT (path, file:// URL) and hosts not in SNAPFLOW_REPO_HOSTS are refused at config time', async () => {
  const foreign = makeBareRepo(outside, 'secret', { id_rsa: 'host secret\n' });
  const before = await configRows();
  for (const repo of [
    foreign,
    `file://${foreign}`,
    '/etc',
    `file://${inside}/../../etc`,
    'https://example.com/org/repo.git',
    'ssh://git@example.com/org/repo.git',
    'git@example.com:org/repo.git',
    `http://${gitHost}/org/repo.git`, // allowed on this host worker, but not in the client's SNAPFLOW_REPO_HOSTS
  ]) {
    await expect(t.client.golden.setConfig({ workspace: ws, repos: [repo], targets: ['small:codex'] })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'repos',
    });
  }
  expect(await configRows()).toEqual(before);
  expect(gitHits).toBe(0);
});

test('on the host: a repository outside the root, a symlink out of it, or a host not listed is refused before git runs', async () => {
  const foreign = makeBareRepo(outside, 'secret2', { id_rsa: 'host secret\n' });
  const link = join(inside, 'linked.git');
  symlinkSync(foreign, link);
  for (const repos of [[foreign], [`file://${foreign}`], [link], ['https://example.com/org/repo.git'], ['git@example.com:org/repo.git']]) {
    await storeConfigDirectly({ repos });
    await expect(build()).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await nothingBuilt();
  }
});

test("git never uses the host's credential helper, config or ssh agent", async () => {
  const marker = join(outside, 'credential-helper-ran');
  const gitconfig = join(outside, 'host.gitconfig');
  writeFileSync(gitconfig, `[credential]\n\thelper = "!f() { touch ${marker}; echo username=host; echo password=host-secret; }; f"\n`);
  const saved = { GIT_CONFIG_GLOBAL: process.env.GIT_CONFIG_GLOBAL, SSH_AUTH_SOCK: process.env.SSH_AUTH_SOCK };
  process.env.GIT_CONFIG_GLOBAL = gitconfig; // the host worker runs in this process: this is "the host's" git config
  process.env.SSH_AUTH_SOCK = join(outside, 'agent.sock');
  try {
    await storeConfigDirectly({ repos: [`http://${gitHost}/org/private.git`] });
    await expect(build()).rejects.toMatchObject({ code: 'PRELOAD_FAILED' });
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
  expect(gitHits).toBeGreaterThan(0); // the allowed host was asked …
  expect(existsSync(marker)).toBe(false); // … and nothing offered it the host's credentials
  await nothingBuilt();
});

test('an allowed local repository under the root is cloned, isolated, and built', async () => {
  await storeConfigDirectly({ repos: [makeBareRepo(inside, 'tools', { 'README.md': 'ok\n' })] });
  expect((await build()).status).toBe('succeeded');
});
