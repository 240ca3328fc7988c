// Hostile input on the real stack: every client method and CLI command that takes user input, fed hostile
// values. Each must come back as a typed SnapflowError naming the field, briefly, and nothing may be written
// to the catalog or started in Temporal.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { SnapflowError, type ErrorCode } from '../lib/errors';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';
import { exitCodeFor } from '../client/exitCodes';

let t: TestEnv;
let sandboxId = '';
const ws = 'ws-hostile';
const hostId = uniqueHostId('hostile');
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

/** What an attacker types where a short string goes. */
const HOSTILE = {
  'SQL injection': "x'; drop table snapshots;--",
  '$(…)': '$(rm -rf /)',
  '; rm': '; rm -rf /',
  backticks: '`rm -rf /`',
  '10 kB': 'a'.repeat(10 * 1024),
  'NUL byte': 'a\u0000b',
  newline: 'a\nb',
  'escape sequence': 'a\u001b[31mb',
  'bidi override': 'a\u202eb',
  'path traversal': '../../etc/passwd',
  empty: '',
  number: 42,
  object: { $ne: null },
  array: ['small'],
  null: null,
};
type Kind = keyof typeof HOSTILE;
const ALL = Object.keys(HOSTILE) as Kind[];
/** Free text (a shell command, a reason): shell characters are its point, but not controls, size or type. */
const TEXT: Kind[] = ['10 kB', 'NUL byte', 'newline', 'escape sequence', 'bidi override', 'number', 'object', 'array', 'null'];
/** Where a count goes. */
const NUMBERS: Record<string, unknown> = {
  negative: -1,
  zero: 0,
  fraction: 1.5,
  NaN: NaN,
  Infinity: Infinity,
  huge: 1e12,
  'unsafe integer': 2 ** 53 + 2,
  'numeric string': '14',
  object: {},
  null: null,
};

interface Row {
  method: string;
  field: string;
  kind: string;
  code: ErrorCode;
  call: () => Promise<unknown>;
}
const rows: Row[] = [];
/** Each value in place of one field; `never` lets a wrongly typed value go where the type says string. */
function refused(
  method: string,
  field: string,
  values: Record<string, unknown>,
  call: (value: never) => Promise<unknown>,
  code: ErrorCode = 'VALIDATION_FAILED',
): void {
  for (const [kind, value] of Object.entries(values)) rows.push({ method, field, kind, code, call: () => call(value as never) });
}
const hostile = (kinds: Kind[] = ALL, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  ...Object.fromEntries(kinds.map((k) => [k, HOSTILE[k]])),
  ...extra,
});
/** A list field: each hostile value as the list's one item, then the list itself replaced. */
const listOf = (kinds: Kind[] = ALL, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  ...Object.fromEntries(kinds.map((k) => [`[${k}]`, [HOSTILE[k]]])),
  ...extra,
});

const c = () => t.client;
// ---- image snapshots ----
const image = { workspace: ws, name: 'agent-v1', image: '127.0.0.1:1/tools/agent:v1', runtime: 'codex', size: 'small' };
for (const field of ['workspace', 'name', 'image', 'entrypoint', 'runtime', 'size'] as const) {
  refused('snapshots.create', field, hostile(ALL, field === 'entrypoint' ? { 'absolute traversal': '/app/../../etc/passwd' } : {}), (v) =>
    c().snapshots.create({ ...image, [field]: v }),
  );
}
for (const method of ['get', 'delete'] as const) {
  refused(`snapshots.${method}`, 'workspace', hostile(), (v) => c().snapshots[method]({ workspace: v, name: 'agent-v1' }));
  refused(`snapshots.${method}`, 'name', hostile(), (v) => c().snapshots[method]({ workspace: ws, name: v }));
  refused(`snapshots.${method}`, 'name', { unknown: 'no-such-v1' }, (v) => c().snapshots[method]({ workspace: ws, name: v }), 'NOT_FOUND');
}
for (const field of ['workspace', 'status', 'runtime', 'size', 'kind'] as const)
  refused('snapshots.list', field, hostile(), (v) => c().snapshots.list({ workspace: ws, [field]: v }));
refused('snapshots.prune', 'workspace', hostile(), (v) => c().snapshots.prune({ workspace: v, unusedForDays: 14 }));
refused('snapshots.create', 'image', { 'port over 65535': 'localhost:99999/o/i:v1', 'port 0': '127.0.0.1:0/o/i:v1' }, (v) =>
  c().snapshots.create({ ...image, image: v }),
);
refused('snapshots.create', 'workspace', { 'storage: golden': 'golden', 'storage: sessions': 'sessions' }, (v) =>
  c().snapshots.create({ ...image, workspace: v }),
);
// Another workspace's stored image, named as a source (the storage host is known once the stack runs).
for (const [kind, host] of [
  ['storage as a source', () => t.stack.storage.registryHost],
  ['storage through localhost', () => `localhost:${t.stack.storage.registryHost.split(':')[1]}`],
] as const)
  rows.push({
    method: 'snapshots.create',
    field: 'image',
    kind,
    code: 'VALIDATION_FAILED',
    call: () => c().snapshots.create({ ...image, image: `${host()}/snapflow/other/agent-v1:img-0123456789ab` }),
  });
refused('snapshots.prune', 'unused-for', NUMBERS, (v) => c().snapshots.prune({ workspace: ws, unusedForDays: v }));

// ---- GitHub connection, hosts ----
refused('validateGithub', 'workspace', hostile(), (v) => c().validateGithub({ workspace: v, installationId: 42 }));
// An installation id is an int64 at GitHub: any safe integer may be real (and unknown), so huge is past int64.
refused('validateGithub', 'installationId', { ...NUMBERS, huge: 2 ** 63 }, (v) => c().validateGithub({ workspace: ws, installationId: v }));
refused('githubStatus', 'workspace', hostile(), (v) => c().githubStatus({ workspace: v }));
refused('refreshHost', 'hostId', hostile(), (v) => c().refreshHost(v));
refused('hostSelfTest', 'hostId', hostile(), (v) => c().hostSelfTest({ hostId: v, push: false, nonce: 'n' }));

// ---- golden ----
const config = { workspace: ws, targets: ['small:codex'] };
refused('golden.setConfig', 'workspace', hostile(), (v) => c().golden.setConfig({ ...config, workspace: v }));
refused(
  'golden.setConfig',
  'repos',
  listOf(ALL, {
    'not a list': 'https://example.com/org/repo.git',
    'shell in a URL': ['https://example.com/org/$(rm -rf /)'],
    'traversal in a URL': ['https://example.com/../../etc'],
    'traversal in an scp path': ['git@example.com:../../etc/passwd'],
    'traversal in a path': ['/srv/repos/../../etc'],
    'an option': ['--upload-pack=touch /tmp/pwned'],
    'too many': Array.from({ length: 21 }, (_, i) => `https://example.com/org/repo${i}.git`),
    'a host path outside the repos root': ['/etc'],
    'a host repository outside the root': ['/root/.git'],
    'file:// outside the root': ['file:///etc'],
    'a host not allowed (https)': ['https://github.com/acme-org/private.git'],
    'a host not allowed (ssh)': ['git@github.com:acme-org/private.git'],
    'loopback not allowed': ['http://127.0.0.1:22/org/repo.git'],
  }),
  (v) => c().golden.setConfig({ ...config, repos: v }),
);
refused(
  'golden.setConfig',
  'skillsPath',
  hostile(ALL, {
    'absolute traversal': '/srv/../../etc/passwd',
    '/etc': '/etc',
    '/': '/',
    '/root': '/root',
    'the project directory': process.cwd(),
  }),
  (v) => c().golden.setConfig({ ...config, embedSkills: true, skillsPath: v }),
);
refused('golden.setConfig', 'depsFallbackCommand', hostile(TEXT), (v) => c().golden.setConfig({ ...config, depsFallbackCommand: v }));
refused(
  'golden.setConfig',
  'targets',
  listOf(ALL, {
    'not a list': 'small:codex',
    none: [],
    twice: ['small:codex', 'small:codex'],
    'a third part': ['small:codex:$(rm -rf /)'],
    'hostile object': [{ size: '$(rm -rf /)', runtime: 'codex' }],
  }),
  (v) => c().golden.setConfig({ ...config, targets: v }),
);
refused(
  'golden.setConfig',
  'schedule',
  hostile(ALL, {
    'day 0': '0 3 0 * *',
    'month 0': '0 3 * 0 *',
    '24:00': '24:00',
    'six fields': '0 0 3 * * *',
    'reversed range': '0 5-1 * * *',
  }),
  (v) => c().golden.setConfig({ ...config, schedule: v }),
);
refused('golden.setConfig', 'timeZone', hostile(ALL, { 'wrong case': 'europe/paris', offset: '+05:00' }), (v) =>
  c().golden.setConfig({ ...config, schedule: '03:00', timeZone: v }),
);
for (const method of ['getConfig', 'buildNow'] as const) {
  const call = (v: never) => (method === 'getConfig' ? c().golden.getConfig(v) : c().golden.buildNow({ workspace: v }));
  refused(`golden.${method}`, 'workspace', hostile(), call);
  refused(`golden.${method}`, 'workspace', { unknown: 'ws-nobody' }, call, 'NOT_FOUND');
}
refused('golden.setDefault', 'workspace', hostile(), (v) => c().golden.setDefault({ workspace: v, name: 'golden-v1' }));
refused('golden.setDefault', 'name', hostile(), (v) => c().golden.setDefault({ workspace: ws, name: v }));
refused('golden.setDefault', 'name', { unknown: 'no-such-v1' }, (v) => c().golden.setDefault({ workspace: ws, name: v }), 'NOT_FOUND');
refused('golden.setDefault', 'reason', hostile(TEXT), (v) => c().golden.setDefault({ workspace: ws, name: 'golden-v1', reason: v }));
const { zero: _valid, ...versions } = NUMBERS; // 0 is the version before any default
refused('golden.setDefault', 'expectedVersion', versions, (v) =>
  c().golden.setDefault({ workspace: ws, name: 'golden-v1', expectedVersion: v }),
);
for (const field of ['workspace', 'size', 'runtime'] as const)
  refused('golden.rollback', field, hostile(), (v) => c().golden.rollback({ workspace: ws, size: 'small', runtime: 'codex', [field]: v }));
refused('golden.scheduleState', 'workspace', hostile(), (v) => c().golden.scheduleState(v));
refused('golden.recentBuilds', 'workspace', hostile(), (v) => c().golden.recentBuilds(v));

// ---- sandboxes and issues ----
const box = { workspace: ws, class: 'vm', size: 'small', runtime: 'codex' };
for (const field of ['workspace', 'class', 'size', 'runtime', 'issue'] as const)
  refused('sandboxes.create', field, hostile(), (v) => c().sandboxes.create({ ...box, [field]: v }));
refused('sandboxes.create', 'keepAlive', { string: 'yes', number: 1, object: {} }, (v) => c().sandboxes.create({ ...box, keepAlive: v }));
const job = { command: ['sh', '-c', 'echo hi > /tmp/hi'] };
refused('sandboxes.runJob', 'sandbox', hostile(), (v) => c().sandboxes.runJob(v, job));
refused('sandboxes.runJob', 'sandbox', { unknown: UNKNOWN_ID }, (v) => c().sandboxes.runJob(v, job), 'NOT_FOUND');
refused(
  'sandboxes.runJob',
  'command',
  {
    'not a list': 'sh -c true',
    none: [],
    number: [42],
    object: [{}],
    nested: [['sh']],
    'NUL byte': ['sh', '-c', 'echo a\u0000b'],
    null: null,
    '1 MB': ['echo', 'a'.repeat(1024 * 1024)],
  },
  (v) => c().sandboxes.runJob(sandboxId, { command: v }),
);
refused('sandboxes.runJob', 'workdir', hostile(ALL, { 'absolute traversal': '/workspace/../../etc' }), (v) =>
  c().sandboxes.runJob(sandboxId, { ...job, workdir: v }),
);
refused(
  'sandboxes.runJob',
  'env',
  {
    'not an object': 'A=1',
    list: ['A=1'],
    'key with =': { 'A=B': '1' },
    'empty key': { '': '1' },
    'NUL in a value': { A: 'a\u0000b' },
    'number value': { A: 1 },
    null: null,
  },
  (v) => c().sandboxes.runJob(sandboxId, { ...job, env: v }),
);
refused('sandboxes.promote', 'sandbox', hostile(), (v) => c().sandboxes.promote(v, { name: 'promoted-v1' }));
refused('sandboxes.promote', 'sandbox', { unknown: UNKNOWN_ID }, (v) => c().sandboxes.promote(v, { name: 'promoted-v1' }), 'NOT_FOUND');
refused('sandboxes.promote', 'name', hostile(), (v) => c().sandboxes.promote(sandboxId, { name: v }));
refused('sandboxes.promote', 'setDefault', { string: 'yes', number: 1 }, (v) =>
  c().sandboxes.promote(sandboxId, { name: 'promoted-v1', setDefault: v }),
);
for (const method of ['resume', 'destroy', 'status', 'explain'] as const) {
  refused(`sandboxes.${method}`, 'sandbox', hostile(), (v) => c().sandboxes[method](v));
  refused(`sandboxes.${method}`, 'sandbox', { unknown: UNKNOWN_ID }, (v) => c().sandboxes[method](v), 'NOT_FOUND');
}
refused('sandboxes.list', 'workspace', hostile(), (v) => c().sandboxes.list(v));
const pin = { workspace: ws, issue: 'ENG-1', snapshot: 'golden-v1' };
for (const field of ['workspace', 'issue', 'snapshot'] as const)
  refused('sandboxes.pin', field, hostile(), (v) => c().sandboxes.pin({ ...pin, [field]: v }));
refused('sandboxes.pin', 'snapshot', { unknown: 'no-such-v1' }, (v) => c().sandboxes.pin({ ...pin, snapshot: v }), 'NOT_FOUND');
for (const field of ['workspace', 'issue'] as const)
  refused('sandboxes.unpin', field, hostile(), (v) => c().sandboxes.unpin({ workspace: ws, issue: 'ENG-1', [field]: v }));
refused('sandboxes.unpin', 'issue', { unknown: 'ENG-404' }, (v) => c().sandboxes.unpin({ workspace: ws, issue: v }), 'NOT_FOUND');

// ---- workspaces, members, agents, rollouts ----
refused(
  'workspaces.create',
  'workspace',
  hostile(ALL, {
    system: 'system',
    'storage: golden': 'golden',
    'storage: sessions': 'sessions',
    'storage: self-test': 'self-test',
    'storage: snapflow': 'snapflow',
  }),
  (v) => c().workspaces.create({ id: v, admin: 'alice' }),
);
refused('workspaces.setGithubAccounts', 'workspace', hostile(ALL, { 'storage: golden': 'golden' }), (v) =>
  c().workspaces.setGithubAccounts({ id: v, allow: ['acme-org'] }),
);
refused(
  'workspaces.setGithubAccounts',
  'allow',
  listOf(ALL, {
    'not a list': 'acme-org',
    'a space': ['acme org'],
    'a URL': ['https://github.com/acme-org'],
    'too long': ['a'.repeat(40)],
    'too many': Array.from({ length: 21 }, (_, i) => `org-${i}`),
  }),
  (v) => c().workspaces.setGithubAccounts({ id: ws, allow: v }),
);
refused('workspaces.githubAccounts', 'workspace', hostile(), (v) => c().workspaces.githubAccounts(v));
refused('workspaces.create', 'plan', hostile(ALL, { unknown: 'enterprise' }), (v) =>
  c().workspaces.create({ id: 'ws-new', plan: v, admin: 'alice' }),
);
refused('workspaces.create', 'admin', hostile(), (v) => c().workspaces.create({ id: 'ws-new', admin: v }));
refused('workspaces.setPlan', 'plan', hostile(ALL, { unknown: 'enterprise' }), (v) => c().workspaces.setPlan({ id: ws, plan: v }));
refused('workspaces.setPlan', 'workspace', { unknown: 'ws-nobody' }, (v) => c().workspaces.setPlan({ id: v, plan: 'paid' }), 'NOT_FOUND');
for (const field of ['workspace', 'user', 'role'] as const)
  refused('workspaces.addMember', field, hostile(), (v) => c().workspaces.addMember({ workspace: ws, user: 'bob', [field]: v }));
refused('workspaces.removeMember', 'user', hostile(), (v) => c().workspaces.removeMember({ workspace: ws, user: v }));
refused('workspaces.members', 'workspace', hostile(), (v) => c().workspaces.members(v));
refused('workspaces.audit', 'workspace', hostile(), (v) => c().workspaces.audit(v));
for (const field of ['workspace', 'name', 'snapshot'] as const)
  refused('agents.create', field, hostile(), (v) =>
    c().agents.create({ workspace: ws, name: 'helper', snapshot: 'golden-v1', [field]: v }),
  );
refused(
  'agents.create',
  'workspace',
  { unknown: 'ws-nobody' },
  (v) => c().agents.create({ workspace: v, name: 'helper', snapshot: 'golden-v1' }),
  'NOT_FOUND',
);
refused('agents.list', 'workspace', hostile(), (v) => c().agents.list({ workspace: v }));
const rollout = { workspace: ws, snapshot: 'golden-v1', agents: ['helper'] };
for (const field of ['workspace', 'snapshot'] as const)
  refused('agents.rollout', field, hostile(), (v) => c().agents.rollout({ ...rollout, [field]: v }));
refused('agents.rollout', 'agents', listOf(ALL, { none: [], twice: ['a', 'a'], 'not a list': 'helper' }), (v) =>
  c().agents.rollout({ ...rollout, agents: v }),
);
refused('agents.rollout', 'canary', NUMBERS, (v) => c().agents.rollout({ ...rollout, canary: v }));
refused('agents.rollout', 'batchSize', NUMBERS, (v) => c().agents.rollout({ ...rollout, batchSize: v }));
refused('agents.rollout', 'healthTimeout', hostile(ALL, { 'zero seconds': '0s', 'a year': '365 days', negative: -5 }), (v) =>
  c().agents.rollout({ ...rollout, healthTimeout: v }),
);
refused('agents.rollout', 'auto', { string: 'yes', number: 1 }, (v) => c().agents.rollout({ ...rollout, auto: v }));
for (const method of ['status', 'pause', 'resume', 'abort'] as const) {
  refused(`agents.${method}`, 'snapshot', hostile(), (v) => c().agents[method]({ workspace: ws, snapshot: v }));
  refused(
    `agents.${method}`,
    'snapshot',
    { unknown: 'no-such-v1' },
    (v) => c().agents[method]({ workspace: ws, snapshot: v }),
    'NOT_FOUND',
  );
}
refused('agents.pause', 'reason', hostile(TEXT), (v) => c().agents.pause({ workspace: ws, snapshot: 'golden-v1', reason: v }));
refused('agents.reportHealth', 'agent', hostile(), (v) =>
  c().agents.reportHealth({ workspace: ws, snapshot: 'golden-v1', agent: v, ok: true }),
);
refused('agents.reportHealth', 'ok', { string: 'yes', number: 1, null: null }, (v) =>
  c().agents.reportHealth({ workspace: ws, snapshot: 'golden-v1', agent: 'helper', ok: v }),
);
refused('agents.reportHealth', 'detail', hostile(TEXT), (v) =>
  c().agents.reportHealth({ workspace: ws, snapshot: 'golden-v1', agent: 'helper', ok: true, detail: v }),
);
refused('snapshots.create', 'rollout', { 'without --replace': { canary: 1 } }, (v) => c().snapshots.create({ ...image, rollout: v }));
refused('snapshots.create', 'canary', NUMBERS, (v) => c().snapshots.create({ ...image, replace: true, rollout: { canary: v } }));

// ---- what must stay as it was ----
interface Footprint {
  rows: Record<string, number>;
  workflows: string[];
  schedules: string[];
}
const CATALOG = [
  'snapshots',
  'sandboxes',
  'issues',
  'golden_build_configs',
  'github_connections',
  'default_pointers',
  'default_history',
  'snapshot_events',
];
let before: Footprint;

/** Row counts of every table in the catalog, and every workflow run and schedule in the namespace. */
async function footprint(): Promise<Footprint> {
  const rows: Record<string, number> = {};
  const tables = await t.db.sql<
    Array<{ name: string }>
  >`select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`;
  for (const { name } of tables)
    rows[name] = (await t.db.sql<Array<{ n: number }>>`select count(*)::int as n from ${t.db.sql(name)}`)[0]!.n;
  const workflows: string[] = [];
  // The reconcile schedule fires on its own every 5 minutes; everything else must be ours.
  for await (const w of t.client.temporal.workflow.list())
    if (w.type !== 'reconcileSnapshots') workflows.push(`${w.workflowId} ${w.runId}`);
  const schedules: string[] = [];
  for await (const s of t.client.temporal.schedule.list()) schedules.push(s.scheduleId);
  return { rows, workflows: workflows.sort(), schedules: schedules.sort() };
}

/** A row that slips through may start a run nobody finishes: give up on it rather than wait for its timeout. */
async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((resolve) => (timer = setTimeout(() => resolve(new Error('no answer within 10s')), 10_000)));
  try {
    return await Promise.race([
      call().then(
        (value) => ({ accepted: value }),
        (err: unknown) => err,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  // Real targets, so a value that slipped through would have something to act on: an idle vm sandbox (a job
  // or promotion would write a snapshot) and an active golden snapshot promoted from it (a pin or set-default would write).
  sandboxId = (await t.client.sandboxes.create({ ...box, keepAlive: true })).sandboxId;
  await t.client.sandboxes.promote(sandboxId, { name: 'golden-v1' });
  before = await footprint();
  expect(Object.keys(before.rows)).toEqual(expect.arrayContaining(CATALOG));
});
afterAll(async () => {
  if (sandboxId) await t?.client.sandboxes.destroy(sandboxId).catch(() => undefined);
  await t?.teardown();
});

/** What came back, short enough to read in a failure: the typed error, or what was thrown or returned instead. */
function seen(result: unknown): Record<string, unknown> {
  if (result instanceof SnapflowError) return { code: result.code, field: result.field };
  if (result instanceof Error) return { thrown: `${result.constructor.name}: ${result.message.slice(0, 160)}` };
  return { returned: JSON.stringify(result)?.slice(0, 160) };
}

// The README's security paragraph states both figures: a value added here changes them, there too.
test('the table sends exactly 1,397 hostile values to the client, and 24 go through the real CLI', () => {
  expect(rows).toHaveLength(1397);
  expect(cliCases()).toHaveLength(24);
});

test.each(rows.map((r) => [`${r.method} ${r.field}: ${r.kind}`, r] as const))('%s', async (_name, row) => {
  const err = await outcome(row.call);
  expect(seen(err)).toEqual({ code: row.code, field: row.field });
  const { message, hint } = err as SnapflowError;
  expect(message.length).toBeLessThan(300); // cut, never echoed back whole
  // eslint-disable-next-line no-control-regex -- no control character reaches a terminal or log raw
  expect(message).not.toMatch(/[\u0000-\u0008\u000a-\u001f\u202e]/);
  if (row.code === 'VALIDATION_FAILED') expect(hint).toBeTruthy();
});

/** The real CLI's cases, a subset of the table: arguments, and the code and field each must come back with. */
function cliCases(): Array<[string[], ErrorCode, string]> {
  const golden = ['golden', 'config', 'set', '--workspace', ws, '--target', 'small:codex'];
  return [
    [
      [
        'snapshot',
        'create',
        '--workspace',
        ws,
        '--name',
        "x'; drop table snapshots;--",
        '--image',
        'ghcr.io/org/image:v1',
        '--runtime',
        'codex',
        '--size',
        'small',
      ],
      'VALIDATION_FAILED',
      'name',
    ],
    [
      [
        'snapshot',
        'create',
        '--workspace',
        ws,
        '--name',
        'agent-v1',
        '--image',
        'ghcr.io/org/image:v1',
        '--entrypoint',
        '/app/$(rm -rf /)',
        '--runtime',
        'codex',
        '--size',
        'small',
      ],
      'VALIDATION_FAILED',
      'entrypoint',
    ],
    [['snapshot', 'get', 'agent\nv1', '--workspace', ws], 'VALIDATION_FAILED', 'name'],
    [['snapshot', 'list', '--workspace', ws, '--status', "active' or '1'='1"], 'VALIDATION_FAILED', 'status'],
    [['snapshot', 'prune', '--workspace', ws, '--unused-for', '14d; rm -rf /'], 'VALIDATION_FAILED', 'unused-for'],
    [['github', 'connect', '--workspace', ws, '--installation-id', '42abc'], 'VALIDATION_FAILED', 'installationId'],
    [['host', 'self-test', '../../etc/passwd'], 'VALIDATION_FAILED', 'hostId'],
    [[...golden, '--skills-path', '/srv/../../etc/passwd'], 'VALIDATION_FAILED', 'skillsPath'],
    [[...golden, '--embed-skills', '--skills-path', '/etc'], 'VALIDATION_FAILED', 'skillsPath'],
    [[...golden, '--repo', 'file:///root/.git'], 'VALIDATION_FAILED', 'repos'],
    [['workspace', 'github-accounts', ws, '--allow', 'acme;rm -rf /'], 'VALIDATION_FAILED', 'allow'],
    [['workspace', 'create', 'golden', '--admin', 'mallory'], 'VALIDATION_FAILED', 'workspace'],
    [[...golden, '--schedule', '`rm -rf /`'], 'VALIDATION_FAILED', 'schedule'],
    [[...golden, '--time-zone', 'Europe/Paris\u202e'], 'VALIDATION_FAILED', 'timeZone'],
    [['golden', 'set-default', 'a'.repeat(10 * 1024), '--workspace', ws], 'VALIDATION_FAILED', 'name'],
    [['golden', 'build', '--workspace', 'ws-nobody'], 'NOT_FOUND', 'workspace'],
    [['sandbox', 'create', '--workspace', 'acme;rm -rf /', '--size', 'small', '--runtime', 'codex'], 'VALIDATION_FAILED', 'workspace'],
    [['sandbox', 'run', sandboxId, '--workdir', '../../etc', '--', 'true'], 'VALIDATION_FAILED', 'workdir'],
    [['sandbox', 'start', UNKNOWN_ID], 'NOT_FOUND', 'sandbox'],
    [['issue', 'pin', 'ENG-1;rm -rf /', 'golden-v1', '--workspace', ws], 'VALIDATION_FAILED', 'issue'],
    [['workspace', 'create', 'ws;rm -rf /', '--admin', 'alice'], 'VALIDATION_FAILED', 'workspace'],
    [['member', 'add', '$(whoami)', '--workspace', ws], 'VALIDATION_FAILED', 'user'],
    [['agent', 'rollout', '--workspace', ws, '--snapshot', 'golden-v1', '--agents', 'a,`rm -rf /`'], 'VALIDATION_FAILED', 'agents'],
    [['agent', 'rollout', '--workspace', ws, '--snapshot', 'golden-v1', '--all', '--canary', '1; rm -rf /'], 'VALIDATION_FAILED', 'canary'],
  ];
}

/** The real CLI, a subset of the table: with --json, nothing on stdout, `{ code, message, field, hint }` on stderr, exit code by kind. */
test('the CLI answers hostile arguments with its exit code for the kind (2 validation, 4 not found) and the typed error as JSON on stderr, no stack trace', async () => {
  const cases = cliCases();
  const results = await inBatches(cases, 4, ([args]) => cli(args));
  results.forEach((r, i) => {
    const [args, code, field] = cases[i]!;
    expect({ args: args.join(' ').slice(0, 80), status: r.status, stdout: r.stdout, stack: /\n\s+at /.test(r.stderr) }).toEqual({
      args: args.join(' ').slice(0, 80),
      status: exitCodeFor(code),
      stdout: '',
      stack: false,
    });
    const failure = JSON.parse(r.stderr) as Record<string, unknown>;
    expect(Object.keys(failure).sort()).toEqual(['code', 'field', 'hint', 'message']);
    expect(failure).toMatchObject({ code, field, message: expect.any(String) });
  });
}, 120_000); // 20 cold CLI starts: a minute was not enough on a loaded 2-core machine

test('after the whole table: no catalog row written, no workflow started, no schedule created', async () => {
  await new Promise((r) => setTimeout(r, 1000)); // visibility catches up with a start within a second
  const after = await footprint();
  expect(after.rows).toEqual(before.rows);
  expect(after.workflows).toEqual(before.workflows);
  expect(after.schedules).toEqual(before.schedules);
});

function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const dash = args.indexOf('--');
  const argv = dash === -1 ? [...args, '--json'] : [...args.slice(0, dash), '--json', ...args.slice(dash)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, '..', 'client', 'bin', 'snapflow.js'), ...argv], {
      env: { ...process.env, ...t.env },
      cwd: t.stack.dir,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill(), 20_000); // a hung command fails its row instead of the whole test
    child.on('error', reject).on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

async function inBatches<T, R>(items: T[], size: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(work))));
  return out;
}
