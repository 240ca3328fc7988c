// The catalog's own entry points decide: a service that calls them directly, without the client, is refused the
// same way (PERMISSION_DENIED / PLAN_REQUIRED), nothing is written and the refusal is audited; an allowed change
// is written with its allowed audit row, in one transaction.
import { and, eq } from 'drizzle-orm';
import type { Caller } from '../catalog/access';
import { createAgent } from '../catalog/agents';
import { setAllowedGithubAccounts } from '../catalog/connections';
import { findBuildConfig, saveBuildConfig } from '../catalog/golden';
import { pinSnapshot, unpinSnapshot } from '../catalog/sandboxes';
import { createWorkspace, deleteMember, saveMember, setSandboxDefaults, setWorkspacePlan } from '../catalog/workspaces';
import { createDb, type DbHandle } from '../db/client';
import { agents, auditEvents, members, workspaceGithubAccounts, workspaces } from '../db/access';
import { issues, snapshots } from '../db/schema';
import type { GoldenConfig } from '../lib/goldenConfig';
import { profileKey } from '../lib/presets';
import { createTestDatabase, type TestDatabase } from './support/db';

const operators = ['ops'];
const as = (actor: string): Caller => ({ actor, operators });
const [ops, alice, bob, erin, fay, mallory] = ['ops', 'alice', 'bob', 'erin', 'fay', 'mallory'].map(as) as [
  Caller,
  Caller,
  Caller,
  Caller,
  Caller,
  Caller,
];

let testDb: TestDatabase;
let handle: DbHandle;
const db = () => handle.db;

beforeAll(async () => {
  testDb = await createTestDatabase();
  handle = createDb(testDb.url);
  // acme (paid): alice admin, bob, dave and erin members; free-co: fay admin; plan-co for the plan change.
  await db()
    .insert(workspaces)
    .values([
      { id: 'acme', plan: 'paid' },
      { id: 'free-co', plan: 'free' },
      { id: 'plan-co', plan: 'free' },
    ]);
  await db()
    .insert(members)
    .values([
      { workspace: 'acme', userId: 'alice', role: 'admin' },
      { workspace: 'acme', userId: 'bob', role: 'member' },
      { workspace: 'acme', userId: 'dave', role: 'member' },
      { workspace: 'acme', userId: 'erin', role: 'member' },
      { workspace: 'free-co', userId: 'fay', role: 'admin' },
    ]);
  const snapshot = (name: string, kind: 'golden' | 'image') => ({
    workspace: 'acme',
    name,
    kind,
    runtime: 'codex' as const,
    size: 'small',
    profileKey: profileKey({ runtime: 'codex', size: 'small' }),
    status: 'active' as const,
    origin: 'build-now' as const,
    storedRef: `registry.test/snapflow/${name}@sha256:${'c'.repeat(64)}`,
  });
  const [golden] = await db()
    .insert(snapshots)
    .values([snapshot('golden-v1', 'golden'), snapshot('app-v1', 'image')])
    .returning({ id: snapshots.id });
  await db().insert(issues).values({ workspace: 'acme', externalKey: 'ISSUE-PINNED', pinnedSnapshotId: golden!.id });
});

afterAll(async () => {
  await handle?.close();
  await testDb?.drop();
});

async function auditRows(who: Caller, action: string, target: string) {
  return db()
    .select({ decision: auditEvents.decision, workspace: auditEvents.workspace, reason: auditEvents.reason })
    .from(auditEvents)
    .where(and(eq(auditEvents.actor, who.actor), eq(auditEvents.action, action), eq(auditEvents.target, target)));
}

interface Case {
  name: string;
  action: string;
  target: string;
  /** What the change would alter, read straight from the tables. */
  state: () => Promise<unknown>;
  call: (who: Caller) => Promise<unknown>;
  denied: Array<[Caller, 'PERMISSION_DENIED' | 'PLAN_REQUIRED']>;
  allowed: Caller;
}

const memberRole = (workspace: string, userId: string) => async () =>
  (
    await db()
      .select({ role: members.role })
      .from(members)
      .where(and(eq(members.workspace, workspace), eq(members.userId, userId)))
  )[0]?.role ?? null;

const goldenConfig: GoldenConfig = {
  workspace: 'acme',
  repos: [],
  embedSkills: false,
  skillsPath: null,
  prebuildDeps: false,
  depsFallbackCommand: null,
  targets: [{ size: 'small', runtime: 'codex' }],
  scheduleCron: '0 3 * * *',
  scheduleTimeZone: 'UTC',
  enabled: true,
};

const cases: Case[] = [
  {
    name: 'createWorkspace (operators only)',
    action: 'workspace.manage',
    target: 'create newco',
    state: async () => ({
      workspace: (await db().select().from(workspaces).where(eq(workspaces.id, 'newco'))).length,
      admin: await memberRole('newco', 'alice')(),
    }),
    call: (who) => createWorkspace(db(), who, { id: 'newco', plan: 'free', admin: 'alice' }),
    denied: [[alice, 'PERMISSION_DENIED']],
    allowed: ops,
  },
  {
    name: 'setWorkspacePlan (operators only)',
    action: 'workspace.manage',
    target: 'plan-co plan paid',
    state: async () => (await db().select({ plan: workspaces.plan }).from(workspaces).where(eq(workspaces.id, 'plan-co')))[0]!.plan,
    call: (who) => setWorkspacePlan(db(), who, { id: 'plan-co', plan: 'paid' }),
    denied: [[fay, 'PERMISSION_DENIED']],
    allowed: ops,
  },
  {
    name: 'setSandboxDefaults (admins)',
    action: 'workspace.manage',
    target: 'acme sandbox defaults',
    state: async () =>
      (await db().select({ idle: workspaces.sandboxIdleTimeoutSeconds }).from(workspaces).where(eq(workspaces.id, 'acme')))[0]!.idle,
    call: (who) => setSandboxDefaults(db(), who, { id: 'acme', sandboxIdleTimeoutSeconds: 600 }),
    denied: [
      [bob, 'PERMISSION_DENIED'],
      [mallory, 'PERMISSION_DENIED'],
    ],
    allowed: alice,
  },
  {
    name: 'saveMember (admins): a member cannot make themselves admin',
    action: 'workspace.manage',
    target: 'erin as admin',
    state: memberRole('acme', 'erin'),
    call: (who) => saveMember(db(), who, { workspace: 'acme', userId: 'erin', role: 'admin' }),
    denied: [
      [erin, 'PERMISSION_DENIED'],
      [fay, 'PERMISSION_DENIED'],
    ],
    allowed: alice,
  },
  {
    name: 'deleteMember (admins)',
    action: 'workspace.manage',
    target: 'remove dave',
    state: memberRole('acme', 'dave'),
    call: (who) => deleteMember(db(), who, { workspace: 'acme', userId: 'dave' }),
    denied: [[mallory, 'PERMISSION_DENIED']],
    allowed: alice,
  },
  {
    name: 'setAllowedGithubAccounts (operators only)',
    action: 'workspace.manage',
    target: 'acme github accounts acme-org',
    state: async () => db().select().from(workspaceGithubAccounts).where(eq(workspaceGithubAccounts.workspace, 'acme')),
    call: (who) => setAllowedGithubAccounts(db(), who, { workspace: 'acme', accounts: ['acme-org'] }),
    denied: [[alice, 'PERMISSION_DENIED']],
    allowed: ops,
  },
  {
    name: 'pinSnapshot (members)',
    action: 'issue.pin',
    target: 'ISSUE-NEW → golden-v1',
    state: async () => db().select({ pinned: issues.pinnedSnapshotId }).from(issues).where(eq(issues.externalKey, 'ISSUE-NEW')),
    call: (who) => pinSnapshot(db(), who, { workspace: 'acme', issue: 'ISSUE-NEW', snapshotName: 'golden-v1' }),
    denied: [[mallory, 'PERMISSION_DENIED']],
    allowed: bob,
  },
  {
    name: 'unpinSnapshot (members)',
    action: 'issue.pin',
    target: 'ISSUE-PINNED unpinned',
    state: async () =>
      (await db().select({ pinned: issues.pinnedSnapshotId }).from(issues).where(eq(issues.externalKey, 'ISSUE-PINNED')))[0],
    call: (who) => unpinSnapshot(db(), who, { workspace: 'acme', issue: 'ISSUE-PINNED' }),
    denied: [
      [mallory, 'PERMISSION_DENIED'],
      [fay, 'PERMISSION_DENIED'],
    ],
    allowed: bob,
  },
  {
    name: 'createAgent (admins)',
    action: 'agent.manage',
    target: 'web → app-v1',
    state: async () => db().select({ id: agents.id }).from(agents).where(eq(agents.name, 'web')),
    call: (who) => createAgent(db(), who, { workspace: 'acme', name: 'web', snapshotName: 'app-v1' }),
    denied: [[bob, 'PERMISSION_DENIED']],
    allowed: alice,
  },
  {
    name: 'saveBuildConfig (admins of a paid workspace)',
    action: 'golden.config',
    target: 'golden config',
    state: async () => (await findBuildConfig(db(), 'acme')) ?? null,
    call: (who) => saveBuildConfig(db(), who, goldenConfig),
    denied: [[bob, 'PERMISSION_DENIED']],
    allowed: alice,
  },
];

describe.each(cases)('$name', ({ action, target, state, call, denied, allowed }) => {
  const refusals = denied.map(([who, code]) => [who.actor, code, who] as const);
  test.each(refusals)('called directly by %s: %s, nothing written, the refusal audited', async (_actor, code, who) => {
    const before = await state();
    await expect(call(who)).rejects.toMatchObject({ code, field: 'actor' });
    expect(await state()).toEqual(before);
    expect(await auditRows(who, action, target)).toEqual([expect.objectContaining({ decision: 'denied' })]);
  });

  test('called by someone allowed: written, with an allowed audit row', async () => {
    const before = await state();
    await call(allowed);
    expect(await state()).not.toEqual(before);
    expect(await auditRows(allowed, action, target)).toEqual([expect.objectContaining({ decision: 'allowed' })]);
  });
});

test('the golden config of a free workspace is PLAN_REQUIRED for its admin: no row, the refusal audited', async () => {
  await expect(saveBuildConfig(db(), fay, { ...goldenConfig, workspace: 'free-co' })).rejects.toMatchObject({ code: 'PLAN_REQUIRED' });
  expect(await findBuildConfig(db(), 'free-co')).toBeUndefined();
  expect(await auditRows(fay, 'golden.config', 'golden config')).toEqual([
    expect.objectContaining({ decision: 'denied', workspace: 'free-co' }),
  ]);
});

test('the golden config callback runs inside the transaction: when it throws (Temporal refused the schedule), nothing changes', async () => {
  await saveBuildConfig(db(), alice, goldenConfig);
  const before = await findBuildConfig(db(), 'acme');
  expect(before?.scheduleCron).toBe('0 3 * * *');
  const allowedBefore = await auditRows(alice, 'golden.config', 'golden config');
  const seen: unknown[] = [];
  const changed = { ...goldenConfig, scheduleCron: '0 4 * * *' };
  await expect(
    saveBuildConfig(db(), alice, changed, async (written) => {
      seen.push(written.scheduleCron);
      throw new Error('schedule refused');
    }),
  ).rejects.toThrow('schedule refused');
  expect(seen).toEqual(['0 4 * * *']);
  expect(await findBuildConfig(db(), 'acme')).toEqual(before);
  expect(await auditRows(alice, 'golden.config', 'golden config')).toEqual(allowedBefore);
});

test('a refused caller is refused before validation: a non-member learns nothing about what exists', async () => {
  await expect(unpinSnapshot(db(), mallory, { workspace: 'acme', issue: 'NO-SUCH-ISSUE' })).rejects.toMatchObject({
    code: 'PERMISSION_DENIED',
  });
  await expect(unpinSnapshot(db(), bob, { workspace: 'acme', issue: 'NO-SUCH-ISSUE' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
});
