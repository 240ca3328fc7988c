// Rollouts on the real stack: a snapshot rolled out to a workspace's agents — the canary moves first, its health
// decides (a report, silence, or `--auto` running it in a sandbox of the stored image on a host), the rest follow in batches that
// pause, resume and abort between them; whatever goes wrong, every agent moved goes back where it came from.
import { randomUUID } from 'node:crypto';
import { and, eq, inArray } from 'drizzle-orm';
import { agents, auditEvents } from '../db/access';
import { sandboxes, snapshots } from '../db/schema';
import { workflowIds } from '../lib/ids';
import { profileKey } from '../lib/presets';
import type { RolloutStatus } from '../workflows';
import { abortRolloutUpdate, reportHealthUpdate } from '../workflows/contracts/rollout';
import { deriveImage, pushImage, sourceRegistry } from './support/images';
import { recordHistory } from './support/histories';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('rol');
const ws = 'ws-rollout';
/** `--auto` rolls out to `all`: its agents live in a workspace of their own. */
const autoWs = 'ws-rollout-auto';
const started: string[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  // As an operator and a workspace admin set them up.
  for (const id of [ws, 'ws-elsewhere', autoWs]) await t.client.workspaces.create({ id, plan: 'paid', admin: 'alice' });
  await t.client.as('alice').workspaces.addMember({ workspace: ws, user: 'bob' });
}, 120_000);
afterAll(async () => {
  for (const id of started)
    await t?.client.temporal.workflow
      .getHandle(id)
      .terminate('test cleanup')
      .catch(() => undefined);
  for (const box of t ? await t.db.db.select().from(sandboxes) : []) await t.client.sandboxes.destroy(box.id).catch(() => undefined);
  await t?.teardown();
});

/** An active golden snapshot row, as a build or a promotion leaves it (no image needed to move agents). */
async function snapshot(name: string, extra: Partial<typeof snapshots.$inferInsert> = {}, workspace = ws): Promise<string> {
  const [row] = await t.db.db
    .insert(snapshots)
    .values({
      workspace,
      name,
      kind: 'golden',
      runtime: 'codex',
      size: 'small',
      profileKey: profileKey({ runtime: 'codex', size: 'small' }),
      status: 'active',
      origin: 'promote',
      ...extra,
    })
    .returning({ id: snapshots.id });
  return row!.id;
}

/** `n` agents named `<prefix>-1 … -n` on a fresh `<prefix>-v1`, and the `<prefix>-v2` to roll out. */
async function fleet(prefix: string, n: number, v2: Partial<typeof snapshots.$inferInsert> = {}) {
  const v1Id = await snapshot(`${prefix}-v1`);
  const v2Id = await snapshot(`${prefix}-v2`, v2);
  const names = Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`);
  for (const name of names) await t.client.agents.create({ workspace: ws, name, snapshot: `${prefix}-v1` });
  return { v1Id, v2Id, names, snapshot: `${prefix}-v2` };
}

async function where(names: string[], workspace = ws): Promise<Record<string, { on: string; was: string | null }>> {
  const rows = await t.db.db
    .select()
    .from(agents)
    .where(and(eq(agents.workspace, workspace), inArray(agents.name, names)));
  return Object.fromEntries(rows.map((r) => [r.name, { on: r.snapshotId, was: r.previousSnapshotId }]));
}

async function start(input: Omit<Parameters<TestEnv['client']['agents']['rollout']>[0], 'workspace'> & { workspace?: string }) {
  const run = await t.client.agents.rollout({ workspace: ws, ...input });
  started.push(run.workflowId);
  return run;
}

async function until(snapshotName: string, ok: (s: RolloutStatus) => boolean): Promise<RolloutStatus> {
  let last: RolloutStatus | undefined;
  for (let i = 0; i < 300; i++) {
    last = await t.client.agents.status({ workspace: ws, snapshot: snapshotName }).catch(() => undefined);
    if (last && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`rollout of ${snapshotName} never got there; last status ${JSON.stringify(last)}`);
}

/** How many times the workflow moved agents (one local activity per canary or batch, recorded as a marker). */
async function moveCalls(workflowId: string): Promise<number> {
  const history = await t.client.temporal.workflow.getHandle(workflowId).fetchHistory();
  const markers = (history.events ?? []).flatMap((e) => Object.values(e.markerRecordedEventAttributes?.details ?? {}));
  // The fetched history carries payload bytes as base64 text.
  const texts = markers.flatMap((d) => (d.payloads ?? []).map((p) => Buffer.from(p.data as unknown as string, 'base64').toString('utf8')));
  return texts.filter((m) => m.includes('"activity_type":"moveAgents"')).length;
}

test('agents are created on an active snapshot of their workspace, and listed', async () => {
  await snapshot('base-v1');
  await snapshot('broken-v1', { status: 'failed', errorCode: 'VERIFY_FAILED' });
  await expect(t.client.agents.create({ workspace: ws, name: 'helper', snapshot: 'base-v1' })).resolves.toMatchObject({
    name: 'helper',
    workspace: ws,
    previousSnapshotId: null,
  });
  await expect(t.client.agents.create({ workspace: ws, name: 'helper', snapshot: 'base-v1' })).rejects.toMatchObject({
    code: 'CONFLICT',
    field: 'name',
  });
  await expect(t.client.agents.create({ workspace: ws, name: 'other', snapshot: 'broken-v1' })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'snapshot',
  });
  await expect(t.client.agents.create({ workspace: 'ws-elsewhere', name: 'other', snapshot: 'base-v1' })).rejects.toMatchObject({
    code: 'NOT_FOUND',
    field: 'snapshot',
  });
  await expect(t.client.agents.create({ workspace: ws, name: 'Bad Name', snapshot: 'base-v1' })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'name',
  });
  await expect(t.client.agents.create({ workspace: ws, name: 'by-bob', snapshot: 'base-v1', actor: 'bob' })).rejects.toMatchObject({
    code: 'PERMISSION_DENIED',
  });
  await expect(t.client.agents.create({ workspace: ws, name: 'by-alice', snapshot: 'base-v1', actor: 'alice' })).resolves.toMatchObject({
    name: 'by-alice',
  });
  expect((await t.client.agents.list({ workspace: ws })).map((a) => a.name)).toEqual(expect.arrayContaining(['by-alice', 'helper']));
});

test('a rollout request is checked before anything starts', async () => {
  const { names, snapshot: snap } = await fleet('chk', 2);
  const bad = (input: Partial<Parameters<typeof start>[0]>) => start({ snapshot: snap, agents: names, ...input });
  await expect(bad({ agents: [] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'agents' });
  await expect(bad({ agents: ['chk-1', 'chk-1'] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'agents' });
  await expect(bad({ canary: 3 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'canary' });
  await expect(bad({ batchSize: 0 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'batchSize' });
  await expect(bad({ healthTimeout: 'soon' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'healthTimeout' });
  await expect(bad({ auto: true })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'auto' }); // not in storage
  await expect(bad({ snapshot: 'no-such-v9' })).rejects.toMatchObject({ code: 'NOT_FOUND', field: 'snapshot' });
  await expect(t.client.agents.rollout({ workspace: 'system', snapshot: snap, agents: names })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'workspace',
  });
  await expect(bad({ actor: 'bob' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  expect(started).toHaveLength(0);
});

test('canary healthy → the rest move in batches (pause holds them, resume lets them go) → completed', async () => {
  const { v1Id, v2Id, names, snapshot: snap } = await fleet('ok', 5);
  const { workflowId } = await start({ snapshot: snap, agents: names, canary: 1, batchSize: 2, actor: 'alice' });
  expect(workflowId).toBe(workflowIds.rollout(ws, v2Id));
  await expect(start({ snapshot: snap, agents: names })).rejects.toMatchObject({ code: 'CONFLICT', field: 'snapshot' });

  const waiting = await until(snap, (s) => s.phase === 'health');
  expect(waiting).toMatchObject({ canary: ['ok-1'], moved: ['ok-1'], pending: ['ok-2', 'ok-3', 'ok-4', 'ok-5'], paused: false });
  expect(await where(names)).toMatchObject({
    'ok-1': { on: v2Id, was: v1Id },
    'ok-2': { on: v1Id, was: null },
    'ok-5': { on: v1Id, was: null },
  });

  await expect(t.client.agents.reportHealth({ workspace: ws, snapshot: snap, agent: 'ok-3', ok: true })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'agent',
  });
  await t.client.agents.pause({ workspace: ws, snapshot: snap, reason: 'watching the canary a little longer' });
  await t.client.agents.reportHealth({ workspace: ws, snapshot: snap, agent: 'ok-1', ok: true, detail: 'answers in 80 ms' });
  const held = await until(snap, (s) => s.phase === 'rolling' && s.paused);
  await new Promise((r) => setTimeout(r, 1000));
  expect(await t.client.agents.status({ workspace: ws, snapshot: snap })).toMatchObject({ moved: held.moved, paused: true });
  expect(held.moved).toEqual(['ok-1']);

  await t.client.agents.resume({ workspace: ws, snapshot: snap });
  const result = await t.client.agents.wait({ workspace: ws, snapshot: snap });
  expect(result).toMatchObject({
    status: 'completed',
    moved: names,
    movedBack: [],
    health: [{ agent: 'ok-1', ok: true, detail: 'answers in 80 ms', actor: 'operator' }],
  });
  expect(Object.values(await where(names))).toEqual(names.map(() => ({ on: v2Id, was: v1Id })));
  expect(await moveCalls(workflowId)).toBe(3); // the canary, then [ok-2, ok-3], then [ok-4, ok-5]
  const trail = await t.db.db.select().from(auditEvents).where(eq(auditEvents.workflowId, workflowId)).orderBy(auditEvents.id);
  expect(trail.map((e) => [e.actor, e.decision, e.target])).toEqual([
    ['alice', 'allowed', v2Id],
    ['alice', 'allowed', `ok-1 moved to ${v2Id}`],
    ['operator', 'allowed', `${v2Id}: pause (watching the canary a little longer)`],
    ['operator', 'allowed', `${v2Id}: health of ok-1: ok`],
    ['operator', 'allowed', `${v2Id}: resume`],
    ['alice', 'allowed', `ok-2, ok-3 moved to ${v2Id}`],
    ['alice', 'allowed', `ok-4, ok-5 moved to ${v2Id}`],
  ]);
  await expect(t.client.agents.abort({ workspace: ws, snapshot: snap })).rejects.toMatchObject({ code: 'CONFLICT' });
  await recordHistory(t.client.temporal, workflowId, 'rollout-canary');
});

test('canary reported unhealthy → the canary goes back, the others never moved: rolled-back with the reason', async () => {
  const { v1Id, v2Id, names, snapshot: snap } = await fleet('bad', 3);
  const { workflowId } = await start({ snapshot: snap, agents: names });
  await until(snap, (s) => s.phase === 'health');
  // Sent straight to the workflow, past the client: it decides who may report or abort, and refuses an anonymous call.
  const handle = t.client.temporal.workflow.getHandle(workflowId);
  await expect(handle.executeUpdate(reportHealthUpdate, { args: [{ agent: 'bad-1', ok: true, actor: 'bob' }] })).rejects.toMatchObject({
    cause: { type: 'PERMISSION_DENIED' },
  });
  await expect(handle.executeUpdate(abortRolloutUpdate, { args: [{ actor: 'bob' }] })).rejects.toMatchObject({
    cause: { type: 'PERMISSION_DENIED' },
  });
  await expect(handle.executeUpdate(abortRolloutUpdate, { args: [{} as never] })).rejects.toMatchObject({
    cause: { type: 'VALIDATION_FAILED' },
  });
  expect(await t.client.agents.status({ workspace: ws, snapshot: snap })).toMatchObject({ phase: 'health', health: [] });
  await t.client.agents.reportHealth({ workspace: ws, snapshot: snap, agent: 'bad-1', ok: false, detail: 'crash loop on start' });
  const result = await t.client.agents.wait({ workspace: ws, snapshot: snap });
  expect(result).toMatchObject({
    status: 'rolled-back',
    moved: [],
    movedBack: ['bad-1'],
    reason: 'canary bad-1 reported unhealthy: crash loop on start',
  });
  expect(await where(names)).toEqual({
    'bad-1': { on: v1Id, was: v2Id },
    'bad-2': { on: v1Id, was: null },
    'bad-3': { on: v1Id, was: null },
  });
  expect(await t.client.agents.status({ workspace: ws, snapshot: snap })).toMatchObject({
    phase: 'rolled-back',
    pending: ['bad-2', 'bad-3'],
  });
});

test('an agent moved elsewhere meanwhile is skipped, not pulled back; an origin deleted meanwhile strands its agent, said plainly', async () => {
  const { v2Id, names, snapshot: snap } = await fleet('side', 3);
  const otherId = await snapshot('side-other-v1');
  await start({ snapshot: snap, agents: names, batchSize: 5 });
  await until(snap, (s) => s.phase === 'health');
  // Another rollout takes side-3 meanwhile: as its canary, it moves at once.
  await start({ snapshot: 'side-other-v1', agents: ['side-3'] });
  await until('side-other-v1', (s) => s.phase === 'health');
  await t.client.agents.reportHealth({ workspace: ws, snapshot: snap, agent: 'side-1', ok: true });
  expect(await t.client.agents.wait({ workspace: ws, snapshot: snap })).toMatchObject({
    status: 'completed',
    moved: ['side-1', 'side-2'],
    skipped: ['side-3'],
  });
  expect(await where(names)).toMatchObject({ 'side-1': { on: v2Id }, 'side-2': { on: v2Id }, 'side-3': { on: otherId } });
  await t.client.agents.reportHealth({ workspace: ws, snapshot: 'side-other-v1', agent: 'side-3', ok: true });
  expect(await t.client.agents.wait({ workspace: ws, snapshot: 'side-other-v1' })).toMatchObject({
    status: 'completed',
    moved: ['side-3'],
  });

  const lone = await fleet('lone', 1);
  await start({ snapshot: lone.snapshot, agents: lone.names });
  await until(lone.snapshot, (s) => s.phase === 'health');
  await t.client.snapshots.delete({ workspace: ws, name: 'lone-v1' }); // nobody runs on it any more
  await t.client.agents.reportHealth({ workspace: ws, snapshot: lone.snapshot, agent: 'lone-1', ok: false });
  const result = await t.client.agents.wait({ workspace: ws, snapshot: lone.snapshot });
  expect(result).toMatchObject({
    status: 'rolled-back',
    movedBack: [],
    moved: ['lone-1'],
    reason: expect.stringContaining('lone-1 stayed on the new snapshot: the one they came from is no longer active'),
  });
  expect(await where(lone.names)).toEqual({ 'lone-1': { on: lone.v2Id, was: lone.v1Id } });
});

test('no health report within the timeout → rolled back', async () => {
  const { v1Id, names, snapshot: snap } = await fleet('quiet', 2);
  await start({ snapshot: snap, agents: names, healthTimeout: '2 seconds' });
  const result = await t.client.agents.wait({ workspace: ws, snapshot: snap });
  expect(result).toMatchObject({
    status: 'rolled-back',
    movedBack: ['quiet-1'],
    reason: 'no health report from canary quiet-1 within 2 seconds',
  });
  expect(Object.values(await where(names)).map((a) => a.on)).toEqual([v1Id, v1Id]);
  await expect(t.client.agents.reportHealth({ workspace: ws, snapshot: snap, agent: 'quiet-1', ok: true })).rejects.toMatchObject({
    code: 'CONFLICT',
    message: expect.stringContaining('already ended'),
  });
});

test('abort mid-rollout (paused after the canary) moves every moved agent back', async () => {
  const { v1Id, v2Id, names, snapshot: snap } = await fleet('stop', 4);
  await start({ snapshot: snap, agents: names, canary: 2, batchSize: 1 });
  await until(snap, (s) => s.phase === 'health');
  await t.client.agents.pause({ workspace: ws, snapshot: snap });
  for (const agent of ['stop-1', 'stop-2']) await t.client.agents.reportHealth({ workspace: ws, snapshot: snap, agent, ok: true });
  await until(snap, (s) => s.phase === 'rolling' && s.paused);
  expect(Object.values(await where(['stop-1', 'stop-2'])).map((a) => a.on)).toEqual([v2Id, v2Id]);

  await t.client.agents.abort({ workspace: ws, snapshot: snap, reason: 'error rate up in another region' });
  const result = await t.client.agents.wait({ workspace: ws, snapshot: snap });
  expect(result).toMatchObject({
    status: 'aborted',
    moved: [],
    movedBack: ['stop-1', 'stop-2'],
    reason: 'aborted by operator: error rate up in another region',
  });
  expect(Object.values(await where(names)).map((a) => a.on)).toEqual([v1Id, v1Id, v1Id, v1Id]);
});

test('unknown agents: NOT_FOUND naming them, nothing moved; a member may not start the workflow itself', async () => {
  const { v1Id, v2Id, names, snapshot: snap } = await fleet('unk', 2);
  await start({ snapshot: snap, agents: ['unk-1', 'ghost-7', 'ghost-8'] });
  await expect(t.client.agents.wait({ workspace: ws, snapshot: snap })).rejects.toMatchObject({
    code: 'NOT_FOUND',
    field: 'agents',
    message: expect.stringContaining('ghost-7, ghost-8'),
  });
  expect(Object.values(await where(names)).map((a) => a.on)).toEqual([v1Id, v1Id]);

  // Past the client's own check: the workflow's first step decides and records the refusal.
  const handle = await t.client.temporal.workflow.start('rolloutSnapshot', {
    taskQueue: 'snapflow-control-v1',
    workflowId: `rollout-denied-${randomUUID()}`,
    args: [{ workspace: ws, snapshotId: v2Id, agents: names, actor: 'bob' }],
  });
  started.push(handle.workflowId);
  await expect(handle.result()).rejects.toMatchObject({ cause: { type: 'PERMISSION_DENIED' } });
  expect(Object.values(await where(names)).map((a) => a.on)).toEqual([v1Id, v1Id]);
  const audit = await t.db.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.workspace, ws), eq(auditEvents.actor, 'bob'), eq(auditEvents.action, 'agent.rollout')));
  expect(audit.filter((a) => a.workflowId === handle.workflowId)).toEqual([
    expect.objectContaining({ decision: 'denied', target: v2Id, runId: expect.any(String) }),
  ]);
});

describe('--auto: the workflow runs the canary itself in a sandbox of the stored snapshot on a host', () => {
  let storedRef: string;
  let agentSource: Awaited<ReturnType<typeof sourceRegistry>> | undefined;
  beforeAll(async () => {
    // An image whose /app/agent.sh is the long-lived agent process, stored as the image snapshot auto-v2.
    agentSource = await sourceRegistry(t.docker, 'rollout-auto');
    const agent = `echo agent-v2 > /etc/agent-version && printf '#!/bin/sh\\necho agent up\\nexec sleep 600\\n' > /app/agent.sh && chmod +x /app/agent.sh`;
    await pushImage(t.docker, await deriveImage(t.docker, agent, 'rollout-auto-v2'), {
      registryHost: agentSource.host,
      repository: 'agents/auto',
      tag: 'v2',
    });
    const created = await t.client.snapshots.create({
      workspace: autoWs,
      name: 'auto-v2',
      image: `${agentSource.host}/agents/auto:v2`,
      runtime: 'codex',
      size: 'small',
      entrypoint: '/app/agent.sh',
    });
    await t.client.snapshots.wait(created);
    const [row] = await t.db.db
      .select()
      .from(snapshots)
      .where(and(eq(snapshots.workspace, autoWs), eq(snapshots.name, 'auto-v2')));
    storedRef = row!.storedRef!;
  }, 300_000);
  afterAll(async () => agentSource?.stop());

  test('a promoted vm sandbox is a saved machine, not an image: no agent runs on it', async () => {
    const box = await t.client.sandboxes.create({ workspace: autoWs, class: 'vm', size: 'small', runtime: 'codex', keepAlive: true });
    await t.client.sandboxes.promote(box.sandboxId, { name: 'auto-machine' });
    await t.client.sandboxes.destroy(box.sandboxId);
    await expect(t.client.agents.create({ workspace: autoWs, name: 'on-machine', snapshot: 'auto-machine' })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'snapshot',
      message: expect.stringContaining('saved vm machine'),
    });
  }, 120_000);

  test('the entrypoint stays up and `true` succeeds → completed, the run recorded as the canary health', async () => {
    const v1Id = await snapshot('auto-v1', {}, autoWs);
    const names = ['auto-1', 'auto-2', 'auto-3'];
    for (const name of names) await t.client.agents.create({ workspace: autoWs, name, snapshot: 'auto-v1' });
    await start({ workspace: autoWs, snapshot: 'auto-v2', agents: 'all', auto: true, batchSize: 5 });
    const result = await t.client.agents.wait({ workspace: autoWs, snapshot: 'auto-v2' });
    // `all`: every agent of the workspace, by name; the first is the canary, the rest one batch.
    expect(result).toMatchObject({
      status: 'completed',
      moved: names,
      movedBack: [],
      health: [
        { agent: 'auto-1', ok: true, actor: 'auto', detail: expect.stringContaining(`true exited 0 in a sandbox of auto-v2 on ${hostId}`) },
      ],
    });
    const [v2] = await t.db.db
      .select()
      .from(snapshots)
      .where(and(eq(snapshots.workspace, autoWs), eq(snapshots.name, 'auto-v2')));
    expect(Object.values(await where(names, autoWs))).toEqual(names.map(() => ({ on: v2!.id, was: v1Id })));
    await recordHistory(t.client.temporal, workflowIds.rollout(autoWs, v2!.id), 'rollout-auto');
  }, 120_000);

  test('an entrypoint that exits → ENTRYPOINT_EXITED, the canary goes back', async () => {
    // The stored image is autoWs's own: a host boots only its workspace's (or the system's) stored images.
    const v1Id = await snapshot('boot-v1', {}, autoWs);
    await snapshot('boot-v2', { storedRef, entrypoint: '/bin/false' }, autoWs);
    const names = ['boot-1', 'boot-2'];
    for (const name of names) await t.client.agents.create({ workspace: autoWs, name, snapshot: 'boot-v1' });
    await start({ workspace: autoWs, snapshot: 'boot-v2', agents: names, auto: true });
    const result = await t.client.agents.wait({ workspace: autoWs, snapshot: 'boot-v2' });
    expect(result).toMatchObject({ status: 'rolled-back', movedBack: ['boot-1'], reason: expect.stringContaining('ENTRYPOINT_EXITED') });
    expect(Object.values(await where(names, autoWs)).map((a) => a.on)).toEqual([v1Id, v1Id]);
  }, 120_000);

  test("another workspace's stored image is never booted for a rollout: the canary goes back, refused", async () => {
    const { v1Id, names, snapshot: snap } = await fleet('theft', 2, { storedRef });
    await start({ snapshot: snap, agents: names, auto: true });
    const result = await t.client.agents.wait({ workspace: ws, snapshot: snap });
    expect(result).toMatchObject({ status: 'rolled-back', reason: expect.stringContaining('PERMISSION_DENIED') });
    expect(Object.values(await where(names)).map((a) => a.on)).toEqual([v1Id, v1Id]);
  }, 120_000);
});

describe('--replace: the replaced snapshot’s agents move with it, or through a rollout', () => {
  let image = '';
  let source: { stop: () => Promise<void> } | undefined;
  beforeAll(async () => {
    const started = await sourceRegistry(t.docker, 'fleet');
    source = started;
    image = started.image;
  }, 120_000);
  afterAll(async () => source?.stop());

  /** `<name>` built from the image, with `n` agents on it; then the changed spec that --replace turns into `<name>`'s next version. */
  async function agentsOnImageSnapshot(name: string, n: number) {
    const created = await t.client.snapshots.create({ workspace: ws, name, image, runtime: 'codex', size: 'small' });
    await t.client.snapshots.wait(created);
    const names = Array.from({ length: n }, (_, i) => `${name}-agent-${i + 1}`);
    for (const agent of names) await t.client.agents.create({ workspace: ws, name: agent, snapshot: name });
    return { oldId: created.snapshotId, names };
  }

  test('plain --replace moves every agent at once, remembering the old snapshot; the old one cannot be deleted while agents run on it', async () => {
    const { oldId, names } = await agentsOnImageSnapshot('plain-v1', 2);
    await expect(t.client.snapshots.delete({ workspace: ws, name: 'plain-v1' })).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining(`agent ${names[0]}`),
    });
    const created = await t.client.snapshots.create({
      workspace: ws,
      name: 'plain-v1',
      image,
      runtime: 'codex',
      size: 'small',
      entrypoint: '/bin/sh',
      replace: true,
    });
    expect(created).toMatchObject({ name: 'plain-v2', replaces: oldId });
    const done = await t.client.snapshots.wait(created);
    expect(done.status).toBe('active');
    expect(done.rollout).toBeUndefined();
    expect(Object.values(await where(names))).toEqual(names.map(() => ({ on: created.snapshotId, was: oldId })));
    await expect(t.client.snapshots.delete({ workspace: ws, name: 'plain-v1' })).resolves.toMatchObject({ status: 'deleted' });
  }, 180_000);

  test('--replace --rollout hands them to a canary rollout of the new version instead', async () => {
    const { oldId, names } = await agentsOnImageSnapshot('canary-v1', 3);
    await expect(
      t.client.snapshots.create({ workspace: ws, name: 'canary-v1', image, runtime: 'codex', size: 'small', rollout: { canary: 1 } }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'rollout' });
    await expect(
      t.client.snapshots.create({
        workspace: ws,
        name: 'canary-v1',
        image,
        runtime: 'codex',
        size: 'small',
        entrypoint: '/bin/sh',
        replace: true,
        rollout: { batchSize: 0 },
      }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'batchSize' });
    await expect(
      t.client.as('bob').snapshots.create({
        workspace: ws,
        name: 'canary-v1',
        image,
        runtime: 'codex',
        size: 'small',
        entrypoint: '/bin/sh',
        replace: true,
      }),
    ).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });

    const created = await t.client.as('alice').snapshots.create({
      workspace: ws,
      name: 'canary-v1',
      image,
      runtime: 'codex',
      size: 'small',
      entrypoint: '/bin/sh',
      replace: true,
      rollout: { canary: 1, batchSize: 5 },
    });
    const done = await t.client.snapshots.wait(created);
    expect(done.rollout).toEqual({ workflowId: workflowIds.rollout(ws, created.snapshotId), agents: names });
    started.push(done.rollout!.workflowId);
    const waiting = await until('canary-v2', (s) => s.phase === 'health');
    expect(waiting).toMatchObject({ canary: [names[0]], moved: [names[0]], pending: names.slice(1) });
    await t.client.agents.reportHealth({ workspace: ws, snapshot: 'canary-v2', agent: names[0]!, ok: true });
    expect(await t.client.agents.wait({ workspace: ws, snapshot: 'canary-v2' })).toMatchObject({ status: 'completed', moved: names });
    expect(Object.values(await where(names))).toEqual(names.map(() => ({ on: created.snapshotId, was: oldId })));
  }, 180_000);
});
