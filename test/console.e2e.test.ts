// The console in a real browser (Debian's chromium through playwright-core, nothing downloaded) against the real
// API, workers and registries: a snapshot made through the form goes pending → active, a typo'd tag fails with its
// reason on hover, the GitHub panel goes expired → reconnect → connected, and a member never sees promote (the API
// refuses it too). Load and live-update times are printed; the targets are measured, the asserts are loose.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildApi } from '../api/server';
import { createToken } from '../catalog/tokens';
import { snapshotEvents, snapshots } from '../db/schema';
import { startFakeGithub, type FakeGithub } from './support/fakeGithub';
import { sourceRegistry } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

const CHROMIUM = '/usr/bin/chromium';
/** Set to a directory to keep the pages' screenshots for a look (never written into the repository). */
const SHOTS = process.env.SNAPFLOW_CONSOLE_SCREENSHOTS;
const ws = 'console-ws';
const INSTALLATION = 77;

let t: TestEnv;
let github: FakeGithub;
let source: Awaited<ReturnType<typeof sourceRegistry>>;
let api: FastifyInstance;
let url: string;
let browser: BrowserContext;
let profileDir: string;
const tokens = { alice: '', bob: '' };

beforeAll(async () => {
  github = await startFakeGithub();
  github.addInstallation({ id: INSTALLATION, account: 'acme' });
  const githubApp = { appId: String(github.appId), privateKey: github.privateKeyPem, apiUrl: github.url };
  t = await createTestEnv({
    env: { GITHUB_APP_ID: githubApp.appId, GITHUB_APP_PRIVATE_KEY: githubApp.privateKey, GITHUB_API_URL: github.url },
  });
  source = await sourceRegistry(t.docker, 'console');
  await t.startControlWorker({ githubApp });
  const hostId = uniqueHostId('con');
  await t.startHostWorker({ hostId, githubApp });
  await t.client.refreshHost(hostId);

  await t.client.workspaces.create({ id: ws, plan: 'paid', admin: 'alice' });
  await t.client.as('alice').workspaces.addMember({ workspace: ws, user: 'bob' });
  await t.client.workspaces.setGithubAccounts({ id: ws, allow: ['acme'] });
  const operator = { actor: 'operator', operators: t.config.operators };
  tokens.alice = (await createToken(t.db.db, operator, { user: 'alice' })).token;
  tokens.bob = (await createToken(t.db.db, operator, { user: 'bob' })).token;

  api = await buildApi({ config: t.config, client: t.client, db: t.db.db });
  url = await api.listen({ host: '127.0.0.1', port: 0 });

  profileDir = mkdtempSync(join(tmpdir(), 'snapflow-chromium-'));
  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 300_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  await api?.close();
  await t?.teardown();
  await source?.stop();
  await github?.close();
});

/** A fresh tab signed in as `user`; returns it with how long the page took to load (navigation to the app's first paint). */
async function signIn(user: keyof typeof tokens): Promise<{ page: Page; loadMs: number }> {
  const page = await browser.newPage();
  page.on('pageerror', (err) => console.error(`console page error: ${err.message}`));
  const started = Date.now();
  await page.goto(url);
  await page.getByLabel('API token').waitFor();
  const loadMs = Date.now() - started;
  await page.getByLabel('API token').fill(tokens[user]);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Pages' }).waitFor();
  return { page, loadMs };
}

async function shot(page: Page, name: string): Promise<void> {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

const statusInCatalog = async (name: string): Promise<string | undefined> =>
  (
    await t.db.db
      .select({ status: snapshots.status })
      .from(snapshots)
      .where(and(eq(snapshots.workspace, ws), eq(snapshots.name, name)))
  )[0]?.status;

const rowOf = (page: Page, name: string) => page.getByRole('table', { name: 'Snapshots' }).locator(`tr[data-name="${name}"]`);

async function createThroughForm(page: Page, name: string, image: string): Promise<void> {
  await page.getByRole('button', { name: 'New Snapshot' }).click();
  const dialog = page.getByRole('dialog', { name: 'New Snapshot' });
  await dialog.getByLabel('Name').fill(name);
  await dialog.getByLabel('Image', { exact: true }).fill(image);
  await dialog.getByRole('button', { name: 'Create' }).click();
  // Accepted: the dialog closes. Refused: the API's problem shows in it, and is the failure's message.
  const refused = dialog.locator('.problem, .field-problem');
  await Promise.race([dialog.waitFor({ state: 'hidden' }), refused.first().waitFor()]);
  if (await dialog.isVisible()) throw new Error(`New Snapshot refused: ${await refused.allTextContents()}`);
}

/** When the catalog recorded the snapshot's move to `status` (its event), in ms since the epoch. */
async function changedAt(name: string, status: string): Promise<number> {
  const [row] = await t.db.db
    .select({ id: snapshots.id })
    .from(snapshots)
    .where(and(eq(snapshots.workspace, ws), eq(snapshots.name, name)));
  const [event] = await t.db.db
    .select({ at: snapshotEvents.createdAt })
    .from(snapshotEvents)
    .where(and(eq(snapshotEvents.snapshotId, row!.id), eq(snapshotEvents.toStatus, status as 'active')));
  return event!.at.getTime();
}

/**
 * Waits until the row's badge reads one of `statuses`; returns which, and the browser's clock at that moment (same
 * machine, same clock).
 */
async function badgeReads(page: Page, name: string, statuses: string[], timeout: number): Promise<{ status: string; at: number }> {
  // Runs in the page (a function: the console's CSP refuses strings to eval), every animation frame.
  type Doc = { querySelector(selector: string): { textContent: string | null } | null };
  const handle = await page.waitForFunction(
    ([selector, wanted]) => {
      const text = (globalThis as unknown as { document: Doc }).document.querySelector(selector)?.textContent ?? '';
      return wanted.includes(text) ? { status: text, at: Date.now() } : null;
    },
    [`tr[data-name="${name}"] .badge`, statuses] as const,
    { timeout, polling: 'raf' },
  );
  return (await handle.jsonValue()) as { status: string; at: number };
}

const badgeTurns = async (page: Page, name: string, status: string, timeout: number): Promise<number> =>
  (await badgeReads(page, name, [status], timeout)).at;

test('the console loads; a snapshot made through the form shows pending, then active without a reload', async () => {
  const { page, loadMs } = await signIn('alice');
  console.log(`console first load (navigation to a usable sign-in form): ${loadMs} ms`);
  expect(loadMs).toBeLessThan(5_000);

  // The form checks as it is typed, by the API's own rules: a floating tag is refused before anything is sent.
  await page.getByRole('button', { name: 'New Snapshot' }).click();
  const dialog = page.getByRole('dialog', { name: 'New Snapshot' });
  await dialog.getByLabel('Name').fill('web-v1');
  await dialog.getByLabel('Image', { exact: true }).fill(source.image.replace(/:v1$/, ''));
  await dialog.getByText(/has no tag/).waitFor();
  expect(await dialog.getByRole('button', { name: 'Create' }).isDisabled()).toBe(true);
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  const submitted = Date.now();
  await createThroughForm(page, 'web-v1', source.image);
  // The row shows at once after submit: pending, or already active if the build was that quick. Never failed.
  const first = await badgeReads(page, 'web-v1', ['pending', 'active', 'failed'], 5_000);
  console.log(`console showed web-v1 ${first.status} ${first.at - submitted} ms after Create was clicked`);
  expect(first.status).not.toBe('failed');
  const shownAt = first.status === 'active' ? first.at : await badgeTurns(page, 'web-v1', 'active', 180_000);
  expect(await statusInCatalog('web-v1')).toBe('active');
  const lagMs = shownAt - (await changedAt('web-v1', 'active'));
  console.log(`console showed active ${lagMs} ms after the catalog changed (no reload; polled every second)`);
  expect(lagMs).toBeLessThan(5_000);
  await shot(page, 'snapshots');
  await page.close();
}, 300_000);

test("a typo'd tag fails, and the badge shows why on hover", async () => {
  const { page } = await signIn('alice');
  await createThroughForm(page, 'web-typo-v1', source.image.replace(/:v1$/, ':v11'));
  await badgeTurns(page, 'web-typo-v1', 'failed', 180_000);
  const badge = rowOf(page, 'web-typo-v1').locator('.badge');
  await badge.hover();
  const tip = rowOf(page, 'web-typo-v1').getByRole('tooltip');
  await tip.waitFor();
  const [row] = await t.db.db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.workspace, ws), eq(snapshots.name, 'web-typo-v1')));
  expect(row!.errorCode).toBeTruthy();
  expect(await tip.textContent()).toContain(row!.errorCode!);
  expect(await tip.textContent()).toContain('v11');
  await page.close();
}, 300_000);

test('the GitHub panel: expired, then reconnect → connected', async () => {
  await t.client.validateGithub({ workspace: ws, installationId: INSTALLATION });
  github.suspend(INSTALLATION);
  await t.client.validateGithub({ workspace: ws }).catch(() => undefined); // GitHub says suspended: recorded expired
  const { page } = await signIn('alice');
  const status = page.getByTestId('github-status');
  await status.getByText('expired').waitFor();
  // Fixed on GitHub's side; Reconnect asks again and the panel says so.
  github.installations.get(INSTALLATION)!.suspended = false;
  await page.getByRole('button', { name: 'Reconnect' }).click();
  await status.getByText('connected').waitFor({ timeout: 30_000 });
  await page.close();
}, 120_000);

test('a member sees no promote button, and the API refuses the call (403); an admin sees it', async () => {
  const { sandboxId } = await t.client.sandboxes.create({
    workspace: ws,
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  try {
    const bob = await signIn('bob');
    await bob.page.goto(`${url}#/sandboxes/${sandboxId}`);
    await bob.page.getByRole('heading', { name: /Where it starts next/ }).waitFor({ timeout: 30_000 });
    expect(await bob.page.getByRole('button', { name: 'Promote' }).count()).toBe(0);
    const refused = await fetch(`${url}/v1/sandboxes/${sandboxId}/promote`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.bob}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bob-golden-v1' }),
    });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(await refused.json()).toMatchObject({ code: 'PERMISSION_DENIED' });
    await bob.page.close();

    const alice = await signIn('alice');
    await alice.page.goto(`${url}#/sandboxes/${sandboxId}`);
    await alice.page.getByRole('button', { name: 'Promote' }).waitFor({ timeout: 30_000 });
    await alice.page.close();
  } finally {
    await t.client.sandboxes.destroy(sandboxId).catch(() => undefined);
  }
}, 180_000);
