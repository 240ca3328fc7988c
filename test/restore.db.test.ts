// loadRestoreInput against a freshly migrated catalog: the one query finds the sandbox, its host and issue, the
// latest session, the pin and both defaults, with the hosts caching each; explainRestore then walks the order.
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import { createRestoreActivities } from '../activities/restore';
import { readRestoreInput } from '../catalog/restore';
import { createDb, type DbHandle } from '../db/client';
import { defaultPointers, hostCache, hosts, issues, sandboxes, snapshots, type NewSnapshot } from '../db/schema';
import { SYSTEM_SCOPE } from '../lib/ids';
import { BASE_IMAGE_REF, RUNTIMES, SIZE_PRESETS, profileKey } from '../lib/presets';
import { createTestDatabase, type TestDatabase } from './support/db';

const profile = profileKey({ runtime: 'codex', size: 'small' });
const ws = 'ws-restore';
const digest = `sha256:${'b'.repeat(64)}`;

let testDb: TestDatabase;
let handle: DbHandle;

beforeAll(async () => {
  testDb = await createTestDatabase();
  handle = createDb(testDb.url);
  await handle.db.insert(hosts).values([
    { id: 'host-on', taskQueue: 'q-on', dockerEndpoint: 'unix:///on.sock', memoryTotalMib: 8192, status: 'online' },
    { id: 'host-off', taskQueue: 'q-off', dockerEndpoint: 'unix:///off.sock', memoryTotalMib: 8192, status: 'offline' },
  ]);
});

afterAll(async () => {
  await handle?.close();
  await testDb?.drop();
});

async function addSnapshot(name: string, overrides: Partial<NewSnapshot> = {}): Promise<string> {
  const [row] = await handle.db
    .insert(snapshots)
    .values({
      workspace: ws,
      name,
      kind: 'golden',
      runtime: 'codex',
      size: 'small',
      profileKey: profile,
      status: 'active',
      origin: 'build-now',
      storedRef: `registry.test/snapflow/${name}@${digest}`,
      ...overrides,
    })
    .returning({ id: snapshots.id });
  return row!.id;
}

async function addSandbox(overrides: Partial<typeof sandboxes.$inferInsert> = {}): Promise<string> {
  const [row] = await handle.db
    .insert(sandboxes)
    .values({
      workspace: ws,
      class: 'vm',
      size: 'small',
      runtime: 'codex',
      profileKey: profile,
      state: 'stopped',
      hostId: 'host-on',
      ...overrides,
    })
    .returning({ id: sandboxes.id });
  return row!.id;
}

test('an unknown sandbox is NOT_FOUND and a malformed id VALIDATION_FAILED, typed and non-retryable at the boundary', async () => {
  await expect(readRestoreInput(handle.db, { sandboxId: '00000000-0000-4000-8000-000000000000' })).rejects.toMatchObject({
    code: 'NOT_FOUND',
  });
  await expect(readRestoreInput(handle.db, { sandboxId: 'sb-1' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'sandbox' });
  const failure = await createRestoreActivities({ db: handle.db })
    .explainRestore({ sandboxId: '00000000-0000-4000-8000-000000000000' })
    .catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure).toMatchObject({ type: 'NOT_FOUND', nonRetryable: true });
});

test('one query loads the sandbox, its session, pin, workspace and system defaults, and who caches each', async () => {
  const sandboxId = await addSandbox();
  const sessionId = await addSnapshot('full-session', {
    kind: 'session',
    origin: 'job',
    sandboxId,
    storedRef: null,
    sourceImage: 'snapflow/session-local:1',
  });
  const pinId = await addSnapshot('full-pin');
  const wsId = await addSnapshot('full-ws-default');
  const sysId = await addSnapshot('full-sys-default', { workspace: SYSTEM_SCOPE });
  const [issue] = await handle.db.insert(issues).values({ workspace: ws, externalKey: 'ISSUE-1', pinnedSnapshotId: pinId }).returning();
  await handle.db.update(sandboxes).set({ latestSessionSnapshotId: sessionId, issueId: issue!.id }).where(eq(sandboxes.id, sandboxId));
  await handle.db.insert(defaultPointers).values([
    { workspace: ws, size: 'small', profileKey: profile, snapshotId: wsId },
    { workspace: SYSTEM_SCOPE, size: 'small', profileKey: profile, snapshotId: sysId },
    // Another profile's default is not this sandbox's.
    { workspace: ws, size: 'small', profileKey: profileKey({ runtime: 'pi', size: 'small' }), snapshotId: pinId },
  ]);
  await handle.db.insert(hostCache).values([
    { hostId: 'host-off', snapshotId: sessionId },
    { hostId: 'host-on', snapshotId: wsId },
    { hostId: 'host-off', snapshotId: wsId },
  ]);

  const loaded = await readRestoreInput(handle.db, { sandboxId });
  expect(loaded).toEqual({
    sandbox: {
      id: sandboxId,
      workspace: ws,
      class: 'vm',
      size: 'small',
      profileKey: profile,
      keepAlive: false,
      state: 'stopped',
      hostId: 'host-on',
      hostStatus: 'online',
      containerId: null,
      issueId: issue!.id,
      machines: {},
    },
    hostId: null,
    // Offline hosts' copies do not count unless that host is the one asked for.
    session: {
      id: sessionId,
      workspace: ws,
      name: 'full-session',
      kind: 'session',
      status: 'active',
      profileKey: profile,
      storedRef: null,
      sourceImage: 'snapflow/session-local:1',
      machineProfile: null,
      // Its own session: a session of another sandbox is where a fork started.
      sandboxId,
      cachedOn: [],
    },
    // Not a fork.
    fork: null,
    pin: expect.objectContaining({ id: pinId, kind: 'golden', cachedOn: [] }),
    workspaceDefault: expect.objectContaining({
      id: wsId,
      storedRef: `registry.test/snapflow/full-ws-default@${digest}`,
      cachedOn: ['host-on'],
    }),
    systemDefault: expect.objectContaining({ id: sysId, workspace: SYSTEM_SCOPE }),
    base: null,
  });

  const restore = createRestoreActivities({ db: handle.db });
  // The session copy sits only on an offline host: passed over, the pin wins.
  const decision = await restore.explainRestore({ sandboxId });
  expect(decision).toMatchObject({
    source: 'golden-pin',
    snapshotId: pinId,
    hostId: 'host-on',
    imageRef: `registry.test/snapflow/full-pin@${digest}`,
  });
  expect(decision.skipped.map((s) => s.reason)).toEqual(['keep-alive-off', 'not-available']);

  // Asked to run on that host, its copy counts and the session resumes there.
  const onOff = await restore.explainRestore({ sandboxId, hostId: 'host-off' });
  expect(onOff).toMatchObject({ source: 'session', snapshotId: sessionId, hostId: 'host-off', imageRef: 'snapflow/session-local:1' });
  expect((await restore.loadRestoreInput({ sandboxId, hostId: 'host-off' })).workspaceDefault?.cachedOn).toEqual(['host-off', 'host-on']);

  // Pin gone and session failed: the workspace default, then the system default, then base.
  await handle.db.update(issues).set({ pinnedSnapshotId: null }).where(eq(issues.id, issue!.id));
  await handle.db.update(snapshots).set({ status: 'failed', errorCode: 'INTERNAL' }).where(eq(snapshots.id, sessionId));
  expect(await restore.explainRestore({ sandboxId })).toMatchObject({
    source: 'golden-workspace',
    snapshotId: wsId,
    skipped: [{ reason: 'keep-alive-off' }, { reason: 'not-active' }, { reason: 'no-pin' }],
  });
  await handle.db.delete(defaultPointers).where(eq(defaultPointers.snapshotId, wsId));
  expect(await restore.explainRestore({ sandboxId })).toMatchObject({ source: 'golden-system', snapshotId: sysId });
  await handle.db.delete(defaultPointers).where(eq(defaultPointers.snapshotId, sysId));
  const base = await restore.explainRestore({ sandboxId });
  expect(base).toMatchObject({ source: 'base', imageRef: BASE_IMAGE_REF, hostId: 'host-on' });
  expect(base.skipped.map((s) => `${s.step}:${s.reason}`)).toEqual([
    'running:keep-alive-off',
    'session:not-active',
    'golden-pin:no-pin',
    'golden-workspace:no-workspace-default',
    'golden-system:no-system-default',
  ]);
});

test('a keep-alive sandbox with a live container is reused; a container sandbox starts from base', async () => {
  const restore = createRestoreActivities({ db: handle.db });
  const live = await addSandbox({ keepAlive: true, state: 'idle', containerId: 'container-1' });
  expect(await restore.explainRestore({ sandboxId: live })).toEqual({
    source: 'running',
    hostId: 'host-on',
    containerId: 'container-1',
    skipped: [],
  });

  const box = await addSandbox({ class: 'container', issueId: null });
  const decision = await restore.explainRestore({ sandboxId: box });
  expect(decision).toMatchObject({ source: 'base', imageRef: BASE_IMAGE_REF });
  expect(decision.skipped.map((s) => s.reason)).toEqual([
    'keep-alive-off',
    'container-class',
    'container-class',
    'container-class',
    'container-class',
  ]);
});

test('a sandbox with no host, issue or snapshots yet still loads (left joins), all candidates null', async () => {
  const orphan = await addSandbox({ hostId: null, state: 'provisioning' });
  const loaded = await readRestoreInput(handle.db, { sandboxId: orphan });
  expect(loaded.sandbox).toMatchObject({ hostId: null, hostStatus: null, issueId: null });
  expect(loaded).toMatchObject({ session: null, pin: null, workspaceDefault: null, systemDefault: null });
});

test("the catalog's profile key of an image base is lib/presets.ts profileKey, on real rows of every runtime and size", async () => {
  const cases = RUNTIMES.flatMap((runtime) => SIZE_PRESETS.map((p) => ({ runtime, size: p.key })));
  for (const [i, { runtime, size }] of cases.entries()) {
    const storedRef = `registry.test/snapflow/${ws}/agent-${i}@sha256:${String(i).repeat(8).slice(0, 8)}${'c'.repeat(56)}`;
    const baseSnapshotId = await addSnapshot(`image-base-${i}`, { kind: 'image', runtime, size, storedRef, profileKey: 'unused' });
    const sandboxId = await addSandbox({ runtime, size, baseSnapshotId, profileKey: profileKey({ runtime, size }) });
    const loaded = await readRestoreInput(handle.db, { sandboxId });
    expect(loaded.sandbox.profileKey).toBe(profileKey({ runtime, size, baseDigest: storedRef }));
    expect(loaded.sandbox.profileKey).not.toBe(profileKey({ runtime, size }));
  }
});
