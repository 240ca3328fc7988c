// The HTTP API on the real stack, as a member and an admin and an operator would use it: tokens made by the
// operator bootstrap and by the operator, snapshots created and listed a page at a time, admin-only calls refused
// with a typed problem+json body, the OpenAPI document listing every route.
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../api/server';
import { signClaim } from '../lib/actorClaim';
import { taskQueues } from '../lib/ids';
import type { setDefaultSnapshot as setDefaultWorkflow } from '../workflows';
import { sourceRegistry } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let api: FastifyInstance;
let base = '';
let image = '';
let source: { stop: () => Promise<void> } | undefined;
const tokens: Record<'operator' | 'alice' | 'bob', string> = { operator: '', alice: '', bob: '' };

async function call(
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<{ status: number; type: string; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  const hostId = uniqueHostId('api');
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  const started = await sourceRegistry(t.docker, 'agent');
  source = started;
  image = started.image;
  await t.client.workspaces.create({ id: 'api-co', plan: 'paid', admin: 'alice' });
  await t.client.as('alice').workspaces.addMember({ workspace: 'api-co', user: 'bob' });
  api = await buildApi({ config: t.config, client: t.client, db: t.db.db });
  await api.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
  tokens.operator = (await t.client.tokens.bootstrapOperator({})).token;
}, 120_000);
afterAll(async () => {
  await api?.close();
  await t?.teardown();
  await source?.stop();
});

test('the operator bootstrap runs once; an operator token makes the users theirs, shown once and stored hashed', async () => {
  await expect(t.client.tokens.bootstrapOperator({})).rejects.toMatchObject({ code: 'PERMISSION_DENIED', field: 'operator' });
  const again = await t.client.tokens.bootstrapOperator({ authorisedBy: tokens.operator });
  expect(again.token).toMatch(/^sft_/);
  await t.client.tokens.revoke(again.record.id);

  for (const user of ['alice', 'bob'] as const) {
    const made = await call('POST', '/v1/tokens', tokens.operator, { user, expires: '1d' });
    expect(made.status).toBe(201);
    tokens[user] = (made.body as { token: string }).token;
  }
  const stored = await t.db.sql`SELECT token_hash FROM api_tokens`;
  for (const token of Object.values(tokens)) expect(JSON.stringify(stored)).not.toContain(token.slice(4));

  expect((await call('GET', '/v1/me', tokens.bob)).body).toEqual({
    user: 'bob',
    operator: false,
    workspaces: [{ id: 'api-co', role: 'member' }],
  });
  expect((await call('GET', '/v1/me', tokens.operator)).body).toMatchObject({ user: 'operator', operator: true });
});

test('a member creates and lists snapshots a page at a time; the build runs in the background to active', async () => {
  const created = await call('POST', '/v1/workspaces/api-co/snapshots', tokens.bob, {
    name: 'api-agent-v1',
    image,
    runtime: 'codex',
    size: 'small',
  });
  expect(created).toMatchObject({
    status: 202,
    body: { name: 'api-agent-v1', status: 'pending', uiLink: expect.any(String) },
  });
  // The answer comes once the snapshot is recorded: a read right after it sees it pending.
  let details = await call('GET', '/v1/workspaces/api-co/snapshots/api-agent-v1', tokens.bob);
  expect(details).toMatchObject({ status: 200, body: { snapshot: { name: 'api-agent-v1', status: 'pending' } } });
  for (const name of ['api-agent-b', 'api-agent-c'])
    expect(
      (await call('POST', '/v1/workspaces/api-co/snapshots', tokens.bob, { name, image, runtime: 'codex', size: 'small' })).status,
    ).toBe(202);
  // Even the operator cannot delete a snapshot its build still owns: a typed CONFLICT that says why and what to do.
  expect(await call('DELETE', '/v1/workspaces/api-co/snapshots/api-agent-c', tokens.operator)).toMatchObject({
    status: 409,
    type: expect.stringContaining('application/problem+json'),
    body: { code: 'CONFLICT', field: 'name', message: expect.stringContaining('still being built'), hint: expect.stringContaining('wait') },
  });

  const deadline = Date.now() + 180_000;
  while ((details.body.snapshot as { status: string }).status === 'pending' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    details = await call('GET', '/v1/workspaces/api-co/snapshots/api-agent-v1', tokens.bob);
  }
  expect(details.body).toMatchObject({ snapshot: { status: 'active' }, uiLink: expect.stringContaining('/workflows/') });
  expect((details.body.events as unknown[]).length).toBeGreaterThan(0);

  const first = await call('GET', '/v1/workspaces/api-co/snapshots?limit=2', tokens.bob);
  expect(first.body.items).toHaveLength(2);
  expect(first.body.nextCursor).toEqual(expect.any(String));
  const second = await call('GET', `/v1/workspaces/api-co/snapshots?limit=2&cursor=${String(first.body.nextCursor)}`, tokens.bob);
  expect(second.body).toMatchObject({ items: [expect.anything()], nextCursor: null });
  const names = [...(first.body.items as Array<{ name: string }>), ...(second.body.items as Array<{ name: string }>)].map((s) => s.name);
  expect(names.sort()).toEqual(['api-agent-b', 'api-agent-c', 'api-agent-v1']);
  expect((await call('GET', '/v1/workspaces/api-co/snapshots?status=bogus', tokens.bob)).body).toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'status',
  });
}, 240_000);

test('admin-only calls answer a member 403 with a typed problem+json body; the operator may do them', async () => {
  const refused = await call('DELETE', '/v1/workspaces/api-co/snapshots/api-agent-c', tokens.bob);
  expect(refused).toMatchObject({
    status: 403,
    type: expect.stringContaining('application/problem+json'),
    body: { code: 'PERMISSION_DENIED', status: 403, title: 'PERMISSION_DENIED', field: 'actor', hint: expect.any(String) },
  });
  const setDefault = await call('POST', '/v1/workspaces/api-co/golden/defaults', tokens.bob, { name: 'api-agent-v1' });
  expect(setDefault).toMatchObject({ status: 403, body: { code: 'PERMISSION_DENIED' } });
  // Its build has to end first (refused while pending, above).
  const deadline = Date.now() + 150_000;
  let c = await call('GET', '/v1/workspaces/api-co/snapshots/api-agent-c', tokens.bob);
  while ((c.body.snapshot as { status: string }).status === 'pending' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    c = await call('GET', '/v1/workspaces/api-co/snapshots/api-agent-c', tokens.bob);
  }
  expect(c.body).toMatchObject({ snapshot: { status: 'active' } });
  const deleted = await call('DELETE', '/v1/workspaces/api-co/snapshots/api-agent-c', tokens.operator);
  expect(deleted).toMatchObject({ status: 200, body: { status: 'deleted' } });
}, 180_000);

test('no token, a malformed one, a revoked or an expired one: 401, typed', async () => {
  expect(await call('GET', '/v1/me', undefined)).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED', field: 'authorization' } });
  expect((await call('GET', '/v1/me', 'sft_not-a-token')).status).toBe(401);
  const made = await t.client.tokens.create({ user: 'bob', workspace: 'api-co', role: 'member' });
  expect((await call('GET', '/v1/me', made.token)).status).toBe(200);
  await t.client.tokens.revoke(made.record.id);
  expect((await call('GET', '/v1/me', made.token)).status).toBe(401);
  const expired = await t.client.tokens.create({ user: 'bob', expires: '1m' });
  await t.db.sql`UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = ${expired.record.id}`;
  expect((await call('GET', '/v1/me', expired.token)).status).toBe(401);
});

test('CORS answers no unknown origin; secure headers are set', async () => {
  const res = await fetch(`${base}/v1/me`, {
    method: 'OPTIONS',
    headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
  });
  expect(res.headers.get('access-control-allow-origin')).toBeNull();
  const me = await fetch(`${base}/v1/me`, { headers: { authorization: `Bearer ${tokens.bob}`, origin: 'https://evil.example' } });
  expect(me.headers.get('access-control-allow-origin')).toBeNull();
  expect(me.headers.get('x-content-type-options')).toBe('nosniff');
  expect(me.headers.get('strict-transport-security')).toEqual(expect.any(String));
});

test('/openapi.json is an OpenAPI 3 document listing every route; /docs serves the reference', async () => {
  const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
  expect(doc.openapi).toMatch(/^3\./);
  const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
  const routes = api.printRoutes({ commonPrefix: false }).split('\n').filter(Boolean);
  expect(routes.length).toBeGreaterThan(0);
  for (const route of [
    'GET /v1/me',
    'GET /v1/workspaces/{workspace}/snapshots',
    'POST /v1/workspaces/{workspace}/snapshots',
    'GET /v1/workspaces/{workspace}/snapshots/{name}',
    'DELETE /v1/workspaces/{workspace}/snapshots/{name}',
    'POST /v1/workspaces/{workspace}/snapshots/prune',
    'GET /v1/workspaces/{workspace}/github',
    'POST /v1/workspaces/{workspace}/github/validate',
    'POST /v1/workspaces/{workspace}/github/reconnect',
    'POST /v1/workspaces/{workspace}/github/connect',
    'POST /v1/tokens',
  ])
    expect(listed).toContain(route);
  const docs = await fetch(`${base}/docs/`);
  expect(docs.status).toBe(200);
  expect(await docs.text()).toContain('swagger');
});

test('a Temporal client that names an actor without a signed claim is refused PERMISSION_DENIED, even as the operator', async () => {
  const raw = new Client({ connection: t.client.temporal.connection, namespace: 'default' }); // no claim interceptor: no key
  const forged = raw.workflow.execute<typeof setDefaultWorkflow>('setDefaultSnapshot', {
    taskQueue: taskQueues.control,
    workflowId: `forged-${Date.now()}`,
    args: [
      {
        workspace: 'api-co',
        size: 'small',
        profileKey: 'codex/small/base-1',
        snapshotId: crypto.randomUUID(),
        expectedVersion: 0,
        actor: 'operator',
      },
    ],
  });
  await expect(forged).rejects.toMatchObject({ cause: { type: 'PERMISSION_DENIED', message: expect.stringContaining('no signed claim') } });
  const badKey = signClaim(Buffer.from('x'.repeat(44)), { actor: 'operator', workspace: 'api-co', workflowId: `forged-b-${Date.now()}` });
  const wrongKey = raw.workflow.execute<typeof setDefaultWorkflow>('setDefaultSnapshot', {
    taskQueue: taskQueues.control,
    workflowId: badKey.workflowId,
    args: [
      {
        workspace: 'api-co',
        size: 'small',
        profileKey: 'codex/small/base-1',
        snapshotId: crypto.randomUUID(),
        expectedVersion: 0,
        actor: 'operator',
        claim: badKey,
      },
    ],
  });
  await expect(wrongKey).rejects.toMatchObject({ cause: { type: 'PERMISSION_DENIED', message: expect.stringContaining('signature') } });
});

/** The real bin, asynchronously: the API it calls runs in this process. */
function cli(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(__dirname, '..', 'client', 'bin', 'snapflow.js'), ...args],
      { env, cwd: t.stack.dir, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('SNAPFLOW_API_URL + SNAPFLOW_TOKEN: `snapflow snapshot list` works with no DATABASE_URL and no Temporal; --as is refused', async () => {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: t.stack.dir,
    SNAPFLOW_API_URL: base,
    SNAPFLOW_TOKEN: tokens.bob,
  };
  const listed = await cli(['snapshot', 'list', '--workspace', 'api-co', '--json'], env);
  expect({ status: listed.status, stderr: listed.stderr }).toEqual({ status: 0, stderr: '' });
  expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((s) => s.name).sort()).toEqual(['api-agent-b', 'api-agent-v1']);
  const as = await cli(['snapshot', 'list', '--workspace', 'api-co', '--as', 'alice', '--json'], env);
  expect(as.status).toBe(3);
  expect(JSON.parse(as.stderr)).toMatchObject({ code: 'PERMISSION_DENIED', field: 'as' });
});

test('a job streamed over SSE delivers its output byte for byte, then its result', async () => {
  const created = await call('POST', '/v1/workspaces/api-co/sandboxes', tokens.bob, {
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  expect(created.status).toBe(201);
  const id = String(created.body.sandboxId);
  try {
    const res = await fetch(`${base}/v1/sandboxes/${id}/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.bob}`, 'content-type': 'application/json' },
      body: JSON.stringify({ command: ['sh', '-c', "printf 'h\\303\\251llo \\342\\234\\223\\n\\tend'; printf 'oops\\n' >&2"] }),
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text();
    const events = text
      .split('\n\n')
      .filter(Boolean)
      .map((block) => ({ event: /^event: (.*)$/m.exec(block)?.[1], data: /^data: (.*)$/m.exec(block)?.[1] ?? '' }));
    const bytes = (stream: string) => Buffer.concat(events.filter((e) => e.event === stream).map((e) => Buffer.from(e.data, 'base64')));
    expect(bytes('stdout').equals(Buffer.from('héllo ✓\n\tend', 'utf8'))).toBe(true);
    expect(bytes('stderr').toString()).toBe('oops\n');
    const result = JSON.parse(events.find((e) => e.event === 'result')!.data) as { exitCode: number; stdout: string };
    expect(result).toMatchObject({ exitCode: 0, stdout: 'héllo ✓\n\tend' });

    // The same bytes again from the job's log, and a job that has none is a problem, not an empty stream.
    const log = await fetch(`${base}/v1/sandboxes/${id}/logs?job=1`, { headers: { authorization: `Bearer ${tokens.bob}` } });
    const logged = (await log.text())
      .split('\n\n')
      .filter(Boolean)
      .map((block) => ({ event: /^event: (.*)$/m.exec(block)?.[1], data: /^data: (.*)$/m.exec(block)?.[1] ?? '' }));
    const logBytes = (stream: string) => Buffer.concat(logged.filter((e) => e.event === stream).map((e) => Buffer.from(e.data, 'base64')));
    expect(logBytes('stdout').equals(Buffer.from('héllo ✓\n\tend', 'utf8'))).toBe(true);
    expect(logBytes('stderr').toString()).toBe('oops\n');
    expect(logged.at(-1)?.event).toBe('end');
    expect((await call('GET', `/v1/sandboxes/${id}/logs?job=7`, tokens.bob)).status).toBe(404);
  } finally {
    await t.client.sandboxes.destroy(id).catch(() => undefined);
  }
}, 180_000);

test('failed authentication is rate-limited: after 10 failures a minute, 429 with Retry-After, even for a good token; preflights do not count', async () => {
  // An API of its own, so its count starts at zero: the 401s of the tests above fall in the same minute.
  const fresh = await buildApi({ config: t.config, client: t.client, db: t.db.db });
  await fresh.listen({ host: '127.0.0.1', port: 0 });
  try {
    const url = `http://127.0.0.1:${(fresh.server.address() as AddressInfo).port}/v1/me`;
    // Browser preflights carry no credentials: however many, they are not failed logins.
    const preflight = { origin: 'http://127.0.0.1:9', 'access-control-request-method': 'GET' };
    for (let i = 0; i < 11; i++) expect((await fetch(url, { method: 'OPTIONS', headers: preflight })).status).not.toBe(429);
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await fetch(url, { headers: { authorization: `Bearer sft_${'x'.repeat(43)}` } })).status);
    expect(statuses).toEqual([...Array<number>(10).fill(401), 429, 429]);
    const good = await fetch(url, { headers: { authorization: `Bearer ${tokens.bob}` } });
    expect(good.status).toBe(429);
    expect(await good.json()).toMatchObject({ code: 'RATE_LIMITED' });
    expect(Number(good.headers.get('retry-after'))).toBeGreaterThan(0);
    // The API every other test uses still lets a good token in.
    expect((await call('GET', '/v1/me', tokens.bob)).status).toBe(200);
  } finally {
    await fresh.close();
  }
});
