// The GitHub App path against the local GitHub-compatible endpoint: the real @octokit/app JWT is accepted,
// anything GitHub would refuse is refused, and each refusal becomes the code an operator can act on.
import { generateKeyPairSync, sign } from 'node:crypto';
import { join } from 'node:path';
import { createGithubApp } from '../lib/githubApp';
import { createGithubTokens, type GithubTokens } from '../activities/githubTokens';
import { SnapflowError } from '../lib/errors';
import { freePort, startRegistry, stopProcess, type ManagedProcess } from '../scripts/stack';
import { startFakeGithub, type FakeGithub } from './support/fakeGithub';
import { readTestStack } from './support/stackState';

let fake: FakeGithub;
let tokens: GithubTokens;
const registries: ManagedProcess[] = [];

beforeAll(async () => {
  fake = await startFakeGithub();
  fake.addInstallation({ id: 42, account: 'acme' });
  fake.addInstallation({ id: 43, account: 'frozen', suspended: true });
  fake.addInstallation({ id: 44, account: 'briefly', tokenTtlSeconds: 1 });
  fake.addInstallation({ id: 45, account: 'later-suspended' });
  tokens = createGithubTokens(createGithubApp({ appId: String(fake.appId), privateKey: fake.privateKeyPem, apiUrl: fake.url }));
});

afterAll(async () => {
  for (const r of registries) await stopProcess(r);
  await fake?.close();
});

const now = (): number => Math.floor(Date.now() / 1000);
const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A JWT crafted by hand, so the fake's checks are exercised one claim at a time. */
function jwt(payload: Record<string, unknown>, options: { key?: string; alg?: string } = {}): string {
  const unsigned = `${b64({ alg: options.alg ?? 'RS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${unsigned}.${sign('RSA-SHA256', Buffer.from(unsigned), options.key ?? fake.privateKeyPem).toString('base64url')}`;
}

async function getApp(authorization?: string): Promise<{ status: number; message?: string }> {
  const res = await fetch(`${fake.url}/app`, { headers: authorization ? { authorization } : {} });
  return { status: res.status, message: ((await res.json()) as { message?: string }).message };
}

/** The rejection, as a SnapflowError, so tests can check code, message and hint. */
async function failure(promise: Promise<unknown>): Promise<SnapflowError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof SnapflowError)) throw new Error(`expected a SnapflowError, got ${String(err)}`);
  return err;
}

test('the real @octokit/app JWT opens GET /app', async () => {
  const app = createGithubApp({ appId: String(fake.appId), privateKey: fake.privateKeyPem, apiUrl: fake.url });
  const { data } = await app.octokit.request('GET /app');
  expect(data).toMatchObject({ id: 4242, slug: 'snapflow-test' });
  expect(fake.requests).toContainEqual({ method: 'GET', path: '/app' });
  expect(await tokens.checkInstallation(42)).toEqual({ account: 'acme' });
});

test('the fake refuses the JWTs GitHub refuses', async () => {
  const t = now();
  const good = { iat: t - 30, exp: t + 540, iss: fake.appId };
  // Crafted JWTs are well-formed: this one passes, so every refusal below is about the one claim changed.
  expect(await getApp(`Bearer ${jwt(good)}`)).toMatchObject({ status: 200 });
  expect(await getApp(`Bearer ${jwt({ ...good, iss: String(fake.appId) })}`)).toMatchObject({ status: 200 });

  expect(await getApp()).toEqual({ status: 401, message: 'A JSON web token could not be decoded' });
  expect(await getApp('Bearer not.a.jwt')).toEqual({ status: 401, message: 'A JSON web token could not be decoded' });
  expect(await getApp(`Bearer ${jwt({ ...good, exp: t - 1 })}`)).toMatchObject({ status: 401, message: expect.stringContaining("'exp'") });
  expect(await getApp(`Bearer ${jwt({ iat: t - 10, exp: t + 591, iss: fake.appId })}`)).toMatchObject({
    status: 401,
    message: expect.stringContaining('too far in the future'),
  });
  expect(await getApp(`Bearer ${jwt({ ...good, iat: t + 120, exp: t + 500 })}`)).toMatchObject({
    status: 401,
    message: expect.stringContaining("'iat'"),
  });
  expect(await getApp(`Bearer ${jwt({ ...good, iss: 9999 })}`)).toMatchObject({ status: 401, message: expect.stringContaining("'iss'") });
  expect(await getApp(`Bearer ${jwt(good, { alg: 'HS256' })}`)).toMatchObject({ status: 401 });
  const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  expect(await getApp(`Bearer ${jwt(good, { key: otherKey })}`)).toMatchObject({ status: 401 });
  // A signature is over the exact bytes: swapping in another payload breaks it.
  const [h, , s] = jwt(good).split('.');
  expect(await getApp(`Bearer ${h}.${b64({ ...good, iss: 1 })}.${s}`)).toMatchObject({ status: 401 });
  // Installation routes are behind the same check.
  expect((await fetch(`${fake.url}/app/installations/42/access_tokens`, { method: 'POST' })).status).toBe(401);
});

test("an app with the wrong private key or app id is GITHUB_APP_NOT_CONFIGURED, saying GitHub rejected the app's credentials", async () => {
  const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const wrongKey = createGithubTokens(createGithubApp({ appId: String(fake.appId), privateKey: otherKey, apiUrl: fake.url }));
  const wrongId = createGithubTokens(createGithubApp({ appId: '777', privateKey: fake.privateKeyPem, apiUrl: fake.url }));
  for (const err of [
    await failure(wrongKey.checkInstallation(42)),
    await failure(wrongKey.registryCredentials(42)),
    await failure(wrongId.registryCredentials(42)),
  ]) {
    expect(err.code).toBe('GITHUB_APP_NOT_CONFIGURED');
    expect(err.message).toContain("GitHub rejected the app's credentials");
  }
});

test('no app configured is GITHUB_APP_NOT_CONFIGURED with the variables to set', async () => {
  const none = createGithubTokens(undefined);
  const err = await failure(none.registryCredentials(42));
  expect(err.code).toBe('GITHUB_APP_NOT_CONFIGURED');
  expect(err.hint).toContain('GITHUB_APP_ID');
  expect(err.hint).toContain('GITHUB_APP_PRIVATE_KEY');
  expect((await failure(none.checkInstallation(42))).code).toBe('GITHUB_APP_NOT_CONFIGURED');
});

test('an unknown installation is GITHUB_CONNECTION_MISSING with the connect command', async () => {
  for (const err of [await failure(tokens.checkInstallation(999)), await failure(tokens.registryCredentials(999))]) {
    expect(err.code).toBe('GITHUB_CONNECTION_MISSING');
    expect(err.message).toBe('GitHub installation 999 not found — was the app uninstalled?');
    expect(err.hint).toContain('snapflow github connect --installation-id 999');
  }
});

test('a suspended installation is GITHUB_CONNECTION_EXPIRED, also once it held a token', async () => {
  for (const err of [await failure(tokens.checkInstallation(43)), await failure(tokens.registryCredentials(43))]) {
    expect(err.code).toBe('GITHUB_CONNECTION_EXPIRED');
    expect(err.hint).toContain('reconnect');
  }
  const before = await tokens.registryCredentials(45);
  expect(before.password).toBe(fake.tokenFor(45));
  fake.suspend(45);
  // Not served from a cache: suspension shows on the very next call, and the old token is never repeated.
  const errors = [await failure(tokens.registryCredentials(45)), await failure(tokens.checkInstallation(45))];
  expect(errors.map((e) => e.code)).toEqual(['GITHUB_CONNECTION_EXPIRED', 'GITHUB_CONNECTION_EXPIRED']);
  expect(errors[1]!.message).toBe('GitHub installation 45 (later-suspended) is suspended');
  const minted = fake.requests.filter((r) => r.path === '/app/installations/45/access_tokens');
  expect(minted).toHaveLength(2);
});

test('GitHub unreachable is a plain, retryable Error naming GitHub', async () => {
  const apiUrl = `http://127.0.0.1:${await freePort()}`;
  const down = createGithubTokens(createGithubApp({ appId: String(fake.appId), privateKey: fake.privateKeyPem, apiUrl }));
  const err = await down.registryCredentials(42).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  expect(err).not.toBeInstanceOf(SnapflowError);
  // Outside jest's sandbox Octokit passes on "connect ECONNREFUSED …"; inside it only "fetch failed".
  expect((err as Error).message).toMatch(
    new RegExp(`^GitHub API at ${apiUrl} could not mint an installation token for installation 42: (fetch failed|connect ECONNREFUSED)`),
  );
});

test('registryCredentials returns the installation token, which opens the GHCR stand-in and the API until it expires', async () => {
  const creds = await tokens.registryCredentials(42);
  expect(creds).toEqual({ username: 'x-access-token', password: fake.tokenFor(42), expiresAt: expect.any(String) });
  expect(creds.password).toMatch(/^ghs_[A-Za-z0-9]{36}$/);
  const ttl = Date.parse(creds.expiresAt) - Date.now();
  expect(ttl).toBeGreaterThan(3590_000);
  expect(ttl).toBeLessThanOrEqual(3600_000);

  const repos = (authorization: string) =>
    fetch(`${fake.url}/installation/repositories`, { headers: { authorization } }).then((r) => r.status);
  expect(await repos(`token ${creds.password}`)).toBe(200);
  expect(await repos(`token ghs_${'x'.repeat(36)}`)).toBe(401);
  const brief = await tokens.registryCredentials(44);
  expect(await repos(`token ${brief.password}`)).toBe(200);
  await new Promise((r) => setTimeout(r, 1100));
  expect(await repos(`token ${brief.password}`)).toBe(401);

  const port = await freePort();
  const ghcr = await startRegistry({
    dir: join(readTestStack().dir, `ghcr-github-test-${port}`),
    port,
    users: [{ username: 'x-access-token', password: fake.tokenFor(42) }],
  });
  registries.push(ghcr);
  const v2 = (headers: Record<string, string>) => fetch(`${ghcr.url}/v2/`, { headers }).then((r) => r.status);
  const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
  expect(await v2(basic(creds.username, creds.password))).toBe(200);
  expect(await v2({})).toBe(401);
  expect(await v2(basic(creds.username, fake.tokenFor(43)))).toBe(401);
});

test('no minted token ever appears in a thrown error', async () => {
  const secrets = [...fake.installations.keys()].map((id) => fake.tokenFor(id));
  await tokens.registryCredentials(42); // the token exists and has just been handled
  const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const wrongKey = createGithubTokens(createGithubApp({ appId: String(fake.appId), privateKey: otherKey, apiUrl: fake.url }));
  const thrown = await Promise.all(
    [tokens.registryCredentials(45), tokens.registryCredentials(999), tokens.checkInstallation(43), wrongKey.registryCredentials(42)].map(
      (p) =>
        p.then(
          () => undefined,
          (e: unknown) => e,
        ),
    ),
  );
  expect(thrown.every((e) => e instanceof SnapflowError)).toBe(true);
  const text = thrown
    .map((e) => `${JSON.stringify(e)} ${(e as Error).message} ${(e as Error).stack} ${(e as SnapflowError).hint}`)
    .join('\n');
  for (const secret of secrets) expect(text.includes(secret)).toBe(false);
  expect(text).not.toContain('PRIVATE KEY');
});
