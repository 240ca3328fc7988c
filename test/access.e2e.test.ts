// Who may do what, on the real stack: a role table where every admin-only action is tried as a
// member (PERMISSION_DENIED naming the role) and as an admin (works); free vs paid; two workspaces that cannot
// touch each other; a service that starts a workflow directly gets the same answer; every decision audited.
import { and, eq } from 'drizzle-orm';
import { auditEvents } from '../db/access';
import { goldenBuilds, snapshots } from '../db/schema';
import { scheduleIds, taskQueues, workflowIds } from '../lib/ids';
import type { SnapflowClient } from '../client';
import type { createImageSnapshot, validateGithubConnection } from '../workflows';
import { sourceRegistry } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let image = '';
let source: { stop: () => Promise<void> } | undefined;
const as = (user: string): SnapflowClient => t.client.as(user);

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  const hostId = uniqueHostId('acl');
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  const started = await sourceRegistry(t.docker, 'agent');
  source = started;
  image = started.image;
  // The operator (SNAPFLOW_ACTOR's default) sets up two paid workspaces and a free one.
  await t.client.workspaces.create({ id: 'acme', plan: 'paid', admin: 'alice' });
  await as('alice').workspaces.addMember({ workspace: 'acme', user: 'bob' });
  await t.client.workspaces.create({ id: 'free-co', plan: 'free', admin: 'carol' });
  await t.client.workspaces.create({ id: 'other', plan: 'paid', admin: 'dave' });
});
afterAll(async () => {
  for (const box of t ? await t.client.sandboxes.list('acme') : []) await t.client.sandboxes.destroy(box.id).catch(() => undefined);
  await t?.teardown();
  await source?.stop();
});

const denied = (role = 'admin') => ({ code: 'PERMISSION_DENIED', field: 'actor', message: expect.stringContaining(role) });

test('members create snapshots and run sandboxes; every admin-only action is refused to them and works for an admin', async () => {
  const bob = as('bob');
  const alice = as('alice');
  const created = await bob.snapshots.create({ workspace: 'acme', name: 'agent-v1', image, runtime: 'codex', size: 'small' });
  expect((await bob.snapshots.wait(created)).status).toBe('active');
  const { sandboxId } = await bob.sandboxes.create({ workspace: 'acme', class: 'vm', size: 'small', runtime: 'codex', keepAlive: true });
  expect((await bob.sandboxes.runJob(sandboxId, { command: ['sh', '-c', 'echo hi'] })).stdout).toBe('hi\n');

  const table: Array<[string, (c: SnapflowClient) => Promise<unknown>]> = [
    ['golden config', (c) => c.golden.setConfig({ workspace: 'acme', targets: ['small:codex'] })],
    ['promote', (c) => c.sandboxes.promote(sandboxId, { name: 'acme-golden-v1', setDefault: true })],
    ['set-default', (c) => c.golden.setDefault({ workspace: 'acme', name: 'acme-golden-v1' })],
    ['golden build', async (c) => c.golden.waitForBuild((await c.golden.buildNow({ workspace: 'acme' })).workflowId)],
    ['rollback', (c) => c.golden.rollback({ workspace: 'acme', size: 'small', runtime: 'codex' })],
    ['member add', (c) => c.workspaces.addMember({ workspace: 'acme', user: 'erin' })],
    ['github connect', (c) => c.validateGithub({ workspace: 'acme', installationId: 1 })],
    ['prune --yes', (c) => c.snapshots.prune({ workspace: 'acme', unusedForDays: 1, yes: true })],
    ['delete', (c) => c.snapshots.delete({ workspace: 'acme', name: 'agent-v1' })],
  ];
  for (const [action, attempt] of table) {
    await expect(attempt(bob)).rejects.toMatchObject(denied());
    // As admin the action is allowed; GitHub itself is not configured in this test, which is a different answer.
    const outcome = await attempt(alice).then(
      () => 'ok',
      (err: { code?: string }) => err.code,
    );
    expect([action, outcome]).toEqual([action, action === 'github connect' ? 'GITHUB_APP_NOT_CONFIGURED' : 'ok']);
  }
});

test('a free workspace gets PLAN_REQUIRED for custom golden snapshots, in plain words; the rest works', async () => {
  const carol = as('carol');
  await expect(carol.golden.setConfig({ workspace: 'free-co', targets: ['small:codex'] })).rejects.toMatchObject({
    code: 'PLAN_REQUIRED',
    message: expect.stringContaining('paid-plan feature'),
  });
  const { sandboxId } = await carol.sandboxes.create({
    workspace: 'free-co',
    class: 'vm',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  await expect(carol.sandboxes.promote(sandboxId, { name: 'free-golden-v1' })).rejects.toMatchObject({ code: 'PLAN_REQUIRED' });
  expect((await carol.sandboxes.status(sandboxId)).state).toBe('idle');
  await carol.sandboxes.destroy(sandboxId);
  await t.client.workspaces.setPlan({ id: 'free-co', plan: 'paid' });
  await expect(carol.golden.setConfig({ workspace: 'free-co', targets: ['small:codex'] })).resolves.toBeDefined();
});

test('no command reads or changes another workspace', async () => {
  const dave = as('dave');
  const [bobSandbox] = await t.client.sandboxes.list('acme');
  const attempts: Array<[string, () => Promise<unknown>]> = [
    ['list snapshots', () => dave.snapshots.list({ workspace: 'acme' })],
    ['get snapshot', () => dave.snapshots.get({ workspace: 'acme', name: 'acme-golden-v1' })],
    ['create snapshot', () => dave.snapshots.create({ workspace: 'acme', name: 'intruder-v1', image, runtime: 'codex', size: 'small' })],
    ['delete snapshot', () => dave.snapshots.delete({ workspace: 'acme', name: 'acme-golden-v1' })],
    ['golden config', () => dave.golden.getConfig('acme')],
    ['set-default', () => dave.golden.setDefault({ workspace: 'acme', name: 'acme-golden-v1' })],
    ['github status', () => dave.githubStatus({ workspace: 'acme' })],
    ['sandboxes', () => dave.sandboxes.list('acme')],
    ['run a job', () => dave.sandboxes.runJob(bobSandbox!.id, { command: ['true'] })],
    ['sandbox status', () => dave.sandboxes.status(bobSandbox!.id)],
    ['pin', () => dave.sandboxes.pin({ workspace: 'acme', issue: 'ENG-1', snapshot: 'acme-golden-v1' })],
    ['members', () => dave.workspaces.members('acme')],
  ];
  for (const [what, attempt] of attempts) {
    await expect(attempt().then(() => `${what}: allowed`)).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
      message: expect.stringContaining('not a member of workspace acme'),
    });
  }
  expect(await t.db.db.select().from(snapshots).where(eq(snapshots.name, 'intruder-v1'))).toEqual([]);
  expect((await dave.workspaces.list()).map((w) => w.id)).toEqual(['other']);
});

test('a service that starts the workflows directly is held to the same rules, inside the workflow', async () => {
  const snapshotId = crypto.randomUUID();
  const direct = t.client.temporal.workflow.execute<typeof createImageSnapshot>('createImageSnapshot', {
    taskQueue: taskQueues.control,
    workflowId: workflowIds.imageSnapshot('acme', 'bypass-v1'),
    args: [
      {
        snapshotId,
        workspace: 'acme',
        name: 'bypass-v1',
        image: { registry: image.split('/')[0]!, repository: 'tools/agent', tag: 'v1' },
        imageRef: image,
        entrypoint: '/app/start.sh',
        runtime: 'codex',
        size: 'small',
        profileKey: 'codex/small/base-1',
        requiresGithub: false,
        actor: 'mallory',
      },
    ],
  });
  await expect(direct).rejects.toMatchObject({ cause: { type: 'PERMISSION_DENIED' } });
  expect(await t.db.db.select().from(snapshots).where(eq(snapshots.id, snapshotId))).toEqual([]);

  const connect = t.client.temporal.workflow.execute<typeof validateGithubConnection>('validateGithubConnection', {
    taskQueue: taskQueues.control,
    workflowId: `github-connection/acme-bypass-${snapshotId}`,
    args: [{ workspace: 'acme', installationId: 7, actor: 'bob' }],
  });
  await expect(connect).rejects.toMatchObject({ cause: { type: 'PERMISSION_DENIED', message: expect.stringContaining('admin') } });

  // An admin of another workspace cannot point --replace at acme's snapshot to take over its default and pins.
  const [golden] = await t.db.db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.workspace, 'acme'), eq(snapshots.name, 'acme-golden-v1')));
  const takeover = t.client.temporal.workflow.execute<typeof createImageSnapshot>('createImageSnapshot', {
    taskQueue: taskQueues.control,
    workflowId: workflowIds.imageSnapshot('other', 'takeover-v2'),
    args: [
      {
        snapshotId: crypto.randomUUID(),
        workspace: 'other',
        name: 'takeover-v2',
        image: { registry: image.split('/')[0]!, repository: 'tools/agent', tag: 'v1' },
        imageRef: image,
        entrypoint: '/app/start.sh',
        runtime: 'codex',
        size: 'small',
        profileKey: 'codex/small/base-1',
        requiresGithub: false,
        replaces: golden!.id,
        actor: 'dave',
      },
    ],
  });
  await expect(takeover).rejects.toMatchObject({
    cause: { type: 'PERMISSION_DENIED', message: expect.stringContaining('belongs to acme') },
  });
  expect(await t.db.db.select().from(snapshots).where(eq(snapshots.name, 'takeover-v2'))).toEqual([]);
  // And an image snapshot never replaces a golden one, even for its admin.
  await expect(
    as('alice').snapshots.create({ workspace: 'acme', name: 'acme-golden-v1', image, runtime: 'codex', size: 'small', replace: true }),
  ).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('golden snapshot') });
});

test('every decision is an audit event: who, what, on what, allowed or denied, from which run', async () => {
  const events = await t.db.db.select().from(auditEvents).where(eq(auditEvents.workspace, 'acme'));
  const find = (actor: string, action: string, decision: 'allowed' | 'denied') =>
    events.find((e) => e.actor === actor && e.action === action && e.decision === decision);
  expect(find('alice', 'sandbox.promote', 'allowed')).toMatchObject({
    workflowId: expect.stringMatching(/^sandbox\//),
    runId: expect.any(String),
  });
  expect(find('alice', 'golden.config', 'allowed')).toBeDefined();
  expect(find('bob', 'snapshot.create', 'allowed')).toMatchObject({ target: 'agent-v1', workflowId: 'image-snapshot/acme/agent-v1' });
  expect(find('mallory', 'snapshot.create', 'denied')).toMatchObject({ reason: expect.stringContaining('not a member') });
  expect(find('bob', 'github.connect', 'denied')).toBeDefined();
  const [memberAdd] = await t.db.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.action, 'workspace.manage'), eq(auditEvents.actor, 'alice')));
  expect(memberAdd).toMatchObject({ decision: 'allowed', target: 'bob as member' });
});

test('a scheduled golden build runs as whoever set the config: once they are no longer admin, the run is refused and audited', async () => {
  const alice = as('alice');
  await alice.workspaces.addMember({ workspace: 'acme', user: 'frank', role: 'admin' });
  await as('frank').golden.setConfig({ workspace: 'acme', targets: ['small:codex'], schedule: '03:00', timeZone: 'UTC', enabled: false });
  await alice.workspaces.addMember({ workspace: 'acme', user: 'frank', role: 'member' });
  await t.client.temporal.schedule.getHandle(scheduleIds.golden('acme')).trigger();
  let refusal: typeof auditEvents.$inferSelect | undefined;
  for (let i = 0; i < 120 && !refusal; i++) {
    [refusal] = await t.db.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.actor, 'frank'), eq(auditEvents.action, 'golden.build'), eq(auditEvents.decision, 'denied')));
    if (!refusal) await new Promise((r) => setTimeout(r, 500));
  }
  expect(refusal).toMatchObject({
    workspace: 'acme',
    reason: expect.stringContaining('needs the admin role'),
    workflowId: expect.stringContaining(workflowIds.goldenScheduledBuild('acme')),
  });
  expect(
    await t.db.db
      .select()
      .from(goldenBuilds)
      .where(and(eq(goldenBuilds.workspace, 'acme'), eq(goldenBuilds.trigger, 'schedule'))),
  ).toEqual([]);
  await alice.golden.setConfig({ workspace: 'acme', targets: ['small:codex'] }); // no schedule any more
});
