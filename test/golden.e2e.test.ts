// The golden build on the real stack, top to bottom: temp sandbox → preload repos, skills, deps →
// commit → verify → upload → register → default per size/profile; skipped, failed and scheduled paths too.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { and, asc, eq } from 'drizzle-orm';
import { SnapflowClient } from '../client';
import { defaultHistory, defaultPointers, goldenBuilds, hostCache, snapshots } from '../db/schema';
import { followProgress } from '../activities/progress';
import { loadConfig } from '../lib/config';
import { CONTAINER_LABEL, scheduleIds, workflowIds } from '../lib/ids';
import { recordHistory } from './support/histories';
import { makeBareRepo, makeSkillsDir } from './support/repos';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let repo = '';
let skills = '';
const ws = 'ws-golden';

beforeAll(async () => {
  const dir = mkdtempSync(join(process.env.SNAPFLOW_TEST_STATE!, '..', 'golden-'));
  repo = makeBareRepo(dir, 'agent-tools', { 'README.md': 'agent tools\n', 'tembo.nix': '{ }\n' });
  skills = makeSkillsDir(dir, { 'review.md': '# review skill\n' });
  t = await createTestEnv();
  await t.startControlWorker();
  // 6 GiB offered: enough for small and medium builds, not for large (the skip path).
  const hostId = uniqueHostId('gold');
  await t.startHostWorker({ hostId, memoryLimitMiB: 6144 });
  await t.client.refreshHost(hostId);
});
afterAll(async () => t?.teardown());

const pointer = async (workspace: string, size: string, runtime = 'codex') =>
  (
    await t.db.db
      .select()
      .from(defaultPointers)
      .where(
        and(
          eq(defaultPointers.workspace, workspace),
          eq(defaultPointers.size, size),
          eq(defaultPointers.profileKey, `${runtime}/${size}/base-1`),
        ),
      )
  )[0];
const tempContainers = async () => t.docker.listContainers({ all: true, filters: { label: [`${CONTAINER_LABEL}=temp`] } });

async function build(workspace = ws) {
  const started = await t.client.golden.buildNow({ workspace: workspace });
  return t.client.golden.waitForBuild(started.workflowId);
}

test('without snapshot storage every golden command says golden features are disabled, and starts nothing', async () => {
  const { SNAPFLOW_STORAGE_URL: _u, SNAPFLOW_STORAGE_USERNAME: _n, SNAPFLOW_STORAGE_PASSWORD: _p, ...env } = t.env;
  const bare = await SnapflowClient.connect(loadConfig(env));
  try {
    const disabled = { code: 'GOLDEN_STORAGE_NOT_CONFIGURED', hint: expect.stringContaining('SNAPFLOW_STORAGE_URL') };
    await expect(bare.golden.setConfig({ workspace: 'ws-nostore', targets: ['small:codex'] })).rejects.toMatchObject(disabled);
    await expect(bare.golden.buildNow({ workspace: 'ws-nostore' })).rejects.toMatchObject(disabled);
    await expect(bare.golden.setDefault({ workspace: 'ws-nostore', name: 'x' })).rejects.toMatchObject(disabled);
    await expect(bare.golden.rollback({ workspace: 'ws-nostore', size: 'small', runtime: 'codex' })).rejects.toMatchObject(disabled);
    const runs = [];
    for await (const r of t.client.temporal.workflow.list({ query: `WorkflowId STARTS_WITH 'golden-build/ws-nostore'` })) runs.push(r);
    expect(runs).toHaveLength(0);
  } finally {
    await bare.close();
  }
});

test('build now: repos, skills and deps are preloaded, verified, stored, registered and made the defaults', async () => {
  await t.client.golden.setConfig({
    workspace: ws,
    repos: [repo],
    embedSkills: true,
    skillsPath: skills,
    prebuildDeps: true,
    depsFallbackCommand: 'echo "deps for $(basename $PWD)" > .deps-built',
    targets: ['small:codex', 'medium:codex'],
  });
  const result = await build();
  expect(result.status).toBe('succeeded');
  expect(result.snapshots.map((s) => s.size)).toEqual(['small', 'medium']);
  for (const s of result.snapshots) {
    expect(await pointer(ws, s.size)).toMatchObject({ snapshotId: s.snapshotId, version: 1 });
    const [row] = await t.db.db.select().from(snapshots).where(eq(snapshots.id, s.snapshotId));
    expect(row).toMatchObject({ kind: 'golden', status: 'active', origin: 'build-now', workspace: ws, storedRef: result.storedRef });
  }
  expect(await t.db.db.select().from(hostCache).where(eq(hostCache.snapshotId, result.snapshots[0]!.snapshotId))).toHaveLength(1);
  const [record] = await t.db.db.select().from(goldenBuilds).where(eq(goldenBuilds.id, result.buildId));
  expect(record).toMatchObject({ status: 'succeeded', trigger: 'build-now' });
  expect(await tempContainers()).toEqual([]);

  // A sandbox started from the stored golden image sees everything that was preloaded.
  const { username, password, registryHost } = t.stack.storage;
  await followProgress(
    t.docker,
    await t.docker.pull(result.storedRef!, { authconfig: { username, password, serveraddress: registryHost } }),
  );
  const box = await t.docker.createContainer({
    Image: result.storedRef!,
    Cmd: ['sh', '-c', 'cat /workspace/agent-tools/README.md /opt/snapflow/skills/review.md /workspace/agent-tools/.deps-built'],
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await box.start();
    await box.wait();
    const out = (await box.logs({ stdout: true, stderr: true })).toString('utf8');
    expect(out).toContain('agent tools');
    expect(out).toContain('# review skill');
    expect(out).toContain('deps for agent-tools');
  } finally {
    await box.remove({ force: true });
  }
  await recordHistory(t.client.temporal, workflowIds.goldenBuild(ws), 'golden-build');
});

test('a vm target saves a booted machine of the built image as the default: sandboxes restore it warm', async () => {
  const vmWs = 'ws-golden-vm';
  await t.client.golden.setConfig({ workspace: vmWs, repos: [repo], targets: ['small:codex:vm'] });
  expect((await t.client.golden.getConfig(vmWs)).targets).toEqual([{ size: 'small', runtime: 'codex', machine: true }]);
  const result = await build(vmWs);
  expect(result.status).toBe('succeeded');
  const [golden] = result.snapshots;
  const [row] = await t.db.db.select().from(snapshots).where(eq(snapshots.id, golden!.snapshotId));
  expect(row).toMatchObject({ kind: 'golden', machineProfile: expect.stringContaining('/512m/') });
  expect(row!.storedRef).not.toBe(result.storedRef); // the machine, not the image
  expect(await pointer(vmWs, 'small')).toMatchObject({ snapshotId: golden!.snapshotId });

  const box = await t.client.sandboxes.create({ workspace: vmWs, class: 'vm', size: 'small', runtime: 'codex' });
  try {
    expect(box.status.lastStart).toMatchObject({
      source: 'golden-workspace',
      snapshotId: golden!.snapshotId,
      machineProfile: row!.machineProfile,
    });
    const job = await t.client.sandboxes.runJob(box.sandboxId, { command: ['cat', '/workspace/agent-tools/README.md'] });
    expect(job.stdout).toBe('agent tools\n');
  } finally {
    await t.client.sandboxes.destroy(box.sandboxId).catch(() => undefined);
  }
  await recordHistory(t.client.temporal, workflowIds.goldenBuild(vmWs), 'golden-build-vm');
});

test('tembo.nix without Nix and without a fallback fails as NIX_UNAVAILABLE; the default stays', async () => {
  const before = await pointer(ws, 'small');
  await t.client.golden.setConfig({ workspace: ws, repos: [repo], prebuildDeps: true, targets: ['small:codex'] });
  await expect(build()).rejects.toMatchObject({ code: 'NIX_UNAVAILABLE', hint: expect.stringContaining('fallback') });
  expect(await pointer(ws, 'small')).toEqual(before);
  expect(await tempContainers()).toEqual([]);
});

test('an image that fails its boot check is never stored or made default', async () => {
  const before = await pointer(ws, 'small');
  await t.client.golden.setConfig({
    workspace: ws,
    repos: [repo],
    prebuildDeps: true,
    depsFallbackCommand: 'chmod -x /app/start.sh',
    targets: ['small:codex'],
  });
  await expect(build()).rejects.toMatchObject({ code: 'VERIFY_FAILED' });
  expect(await pointer(ws, 'small')).toEqual(before);
  const [failed] = await t.db.db
    .select()
    .from(goldenBuilds)
    .where(and(eq(goldenBuilds.workspace, ws), eq(goldenBuilds.status, 'failed'), eq(goldenBuilds.reason, 'VERIFY_FAILED')));
  expect(failed).toBeDefined();
  expect(await tempContainers()).toEqual([]);
});

test('no host with enough memory: the build is skipped with the reason and the figures, not failed', async () => {
  await t.client.golden.setConfig({ workspace: ws, targets: ['large:codex'] });
  const result = await build();
  expect(result).toMatchObject({ status: 'skipped', reason: 'INSUFFICIENT_HOST_MEMORY', figures: { neededMiB: 8192 } });
  const [record] = await t.db.db.select().from(goldenBuilds).where(eq(goldenBuilds.id, result.buildId));
  expect(record).toMatchObject({ status: 'skipped', reason: 'INSUFFICIENT_HOST_MEMORY' });
  expect(Object.values(record!.figures!).some((v) => typeof v === 'number' && v <= 6144)).toBe(true);
});

test('concurrent set-defaults: exactly one wins, the history stays consistent; rollback returns to the previous', async () => {
  await t.client.golden.setConfig({ workspace: ws, targets: ['small:codex'] });
  const second = await build();
  const latest = second.snapshots[0]!;
  const first = await t.db.db
    .select()
    .from(defaultHistory)
    .where(and(eq(defaultHistory.workspace, ws), eq(defaultHistory.size, 'small')))
    .orderBy(asc(defaultHistory.id));
  const firstSnapshot = first[0]!.snapshotId;
  const [firstRow] = await t.db.db.select().from(snapshots).where(eq(snapshots.id, firstSnapshot));
  const before = await pointer(ws, 'small');
  expect(before?.snapshotId).toBe(latest.snapshotId);

  const names = [firstRow!.name, latest.name];
  // Ten operators who all saw the same version race to change it: compare-and-set lets exactly one through.
  const attempts = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) =>
      t.client.golden.setDefault({ workspace: ws, name: names[i % 2]!, reason: `race ${i}`, expectedVersion: before!.version }),
    ),
  );
  const won = attempts.filter((a) => a.status === 'fulfilled');
  expect(won).toHaveLength(1);
  for (const lost of attempts.filter((a) => a.status === 'rejected'))
    expect((lost as PromiseRejectedResult).reason).toMatchObject({ code: 'CONFLICT' });
  const after = await pointer(ws, 'small');
  expect(after!.version).toBe(before!.version + 1);
  const history = await t.db.db
    .select()
    .from(defaultHistory)
    .where(and(eq(defaultHistory.workspace, ws), eq(defaultHistory.size, 'small')))
    .orderBy(asc(defaultHistory.id));
  expect(history).toHaveLength(first.length + 1); // ten racers, one history row
  expect(history[history.length - 1]).toMatchObject({ snapshotId: after!.snapshotId, previousSnapshotId: before!.snapshotId });

  const rolled = await t.client.golden.rollback({ workspace: ws, size: 'small', runtime: 'codex' });
  expect(rolled).toMatchObject({ snapshotId: before!.snapshotId, version: after!.version + 1 });
});

test('the daily schedule is a Temporal Schedule in the configured time zone; a trigger builds a new default', async () => {
  const workspace = 'ws-daily';
  const { schedule } = await t.client.golden.setConfig({
    workspace: workspace,
    targets: ['small:pi'],
    schedule: '03:00',
    timeZone: 'Europe/Paris',
  });
  expect(schedule).toMatchObject({ paused: true, timeZone: 'Europe/Paris' });
  // Every next run is at 03:00:00 on the Paris wall clock, one day apart (23 or 25 hours across a clock change):
  // that is 01:00 or 02:00 UTC, never the 03:00 UTC a schedule that ignored the zone would give.
  const runs = schedule!.nextRuns;
  expect(runs.length).toBeGreaterThanOrEqual(2);
  const parisClock = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/Paris',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  });
  expect(runs.map((run) => parisClock.format(run))).toEqual(runs.map(() => '03:00:00'));
  for (const run of runs) expect([1, 2]).toContain(run.getUTCHours());
  for (let i = 1; i < runs.length; i++) expect([23, 24, 25]).toContain((runs[i]!.getTime() - runs[i - 1]!.getTime()) / 3_600_000);

  await t.client.temporal.schedule.getHandle(scheduleIds.golden(workspace)).trigger();
  const deadline = Date.now() + 90_000;
  let record;
  while (Date.now() < deadline && record?.status !== 'succeeded') {
    [record] = await t.db.db
      .select()
      .from(goldenBuilds)
      .where(and(eq(goldenBuilds.workspace, workspace), eq(goldenBuilds.trigger, 'schedule')));
    if (record?.status === 'failed') throw new Error(`scheduled build failed: ${record.reason} ${record.message}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  expect(record).toMatchObject({ status: 'succeeded' });
  expect(await pointer(workspace, 'small', 'pi')).toMatchObject({ snapshotId: record!.snapshotId });

  await t.client.golden.setConfig({ workspace: workspace, targets: ['small:pi'] }); // no schedule any more
  expect(await t.client.golden.scheduleState(workspace)).toBeNull();
});

test('system and workspace scopes keep separate defaults', async () => {
  await t.client.golden.setConfig({ workspace: 'system', targets: ['small:codex'] });
  const system = await build('system');
  expect(system.status).toBe('succeeded');
  expect((await pointer('system', 'small'))?.snapshotId).toBe(system.snapshots[0]!.snapshotId);
  expect((await pointer(ws, 'small'))?.snapshotId).not.toBe(system.snapshots[0]!.snapshotId);
});
