// The catalog's guards live in the database. Each test proves one a user relies on really holds,
// against a freshly migrated database on the local Postgres.
import { eq, sql as dsql } from 'drizzle-orm';
import { createDb, type DbHandle } from '../db/client';
import { migrationJournal, pendingMigrations, runMigrations } from '../db/migrate';
import { compareAndSetDefault } from '../catalog/defaults';
import { once } from '../catalog/effects';
import { defaultHistory, defaultPointers, sandboxes, sizePresets, snapshots, type NewSnapshot } from '../db/schema';
import { SIZE_PRESETS, profileKey } from '../lib/presets';
import { SYSTEM_SCOPE } from '../lib/ids';
import { createTestDatabase, type TestDatabase } from './support/db';

const profile = profileKey({ runtime: 'codex', size: 'small' });

/** A valid image snapshot row; tests change the one field they are about. */
function snapshot(overrides: Partial<NewSnapshot> = {}): NewSnapshot {
  return {
    workspace: 'ws-1',
    name: 'api-base.v1',
    kind: 'image',
    sourceImage: 'ghcr.io/acme/api:1',
    runtime: 'codex',
    size: 'small',
    profileKey: profile,
    origin: 'user',
    ...overrides,
  };
}

/** Awaits a rejection and returns the Postgres error under drizzle's wrapper. */
async function pgError(work: Promise<unknown>): Promise<{ code?: string; constraint_name?: string }> {
  try {
    await work;
  } catch (err) {
    let current: unknown = err;
    while (current && !(current as { code?: string }).code) current = (current as { cause?: unknown }).cause;
    return (current ?? {}) as { code?: string; constraint_name?: string };
  }
  throw new Error('expected the database to reject this, but it was accepted');
}

let testDb: TestDatabase;
let blankDb: TestDatabase;
let handle: DbHandle;

beforeAll(async () => {
  testDb = await createTestDatabase();
  blankDb = await createTestDatabase({ migrate: false });
  handle = createDb(testDb.url);
});

afterAll(async () => {
  await handle?.close();
  await testDb?.drop();
  await blankDb?.drop();
});

describe('migrations', () => {
  test('seed the three size presets from lib/presets.ts', async () => {
    const rows = await handle.db.select().from(sizePresets).orderBy(sizePresets.vcpus);
    expect(rows).toEqual(SIZE_PRESETS.map((p) => ({ key: p.key, vcpus: p.vcpus, memoryMib: p.memoryMiB })));
  });

  test('nothing is pending after migrate; everything is pending on a blank database', async () => {
    expect(await pendingMigrations(testDb.url)).toBe(0);
    expect(await pendingMigrations(blankDb.url)).toBe(migrationJournal().length);
    expect(migrationJournal().length).toBeGreaterThan(0);
  });

  test('running migrations again is a no-op', async () => {
    const count = async () => (await handle.sql<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`)[0]?.n;
    const before = await count();
    await runMigrations(testDb.url);
    expect(await count()).toBe(before);
    expect(before).toBe(migrationJournal().length);
    expect(await pendingMigrations(testDb.url)).toBe(0);
  });
});

describe('snapshot names', () => {
  test('unique per workspace, free in another workspace, and freed again by a tombstone', async () => {
    const { db } = handle;
    const [first] = await db
      .insert(snapshots)
      .values(snapshot({ name: 'dup' }))
      .returning();

    const dup = await pgError(db.insert(snapshots).values(snapshot({ name: 'dup' })));
    expect(dup).toMatchObject({ code: '23505', constraint_name: 'snapshots_scope_name_live_idx' });

    await db.insert(snapshots).values(snapshot({ name: 'dup', workspace: SYSTEM_SCOPE }));

    await db.update(snapshots).set({ status: 'deleted', deletedAt: new Date() }).where(eq(snapshots.id, first!.id));
    const [reused] = await db
      .insert(snapshots)
      .values(snapshot({ name: 'dup' }))
      .returning();
    expect(reused?.id).not.toBe(first?.id);
  });

  test('must be a lowercase slug, and the entrypoint an absolute path', async () => {
    const { db } = handle;
    expect(await pgError(db.insert(snapshots).values(snapshot({ name: 'Bad Name' })))).toMatchObject({
      code: '23514',
      constraint_name: 'snapshots_name_format',
    });
    expect(await pgError(db.insert(snapshots).values(snapshot({ name: 'ep', entrypoint: 'app/start.sh' })))).toMatchObject({
      code: '23514',
      constraint_name: 'snapshots_entrypoint_absolute',
    });
    const [ok] = await db
      .insert(snapshots)
      .values(snapshot({ name: 'ep' }))
      .returning();
    expect(ok?.entrypoint).toBe('/app/start.sh');
  });
});

describe('snapshot rows', () => {
  test('failed requires an error code', async () => {
    const { db } = handle;
    const rejected = await pgError(db.insert(snapshots).values(snapshot({ name: 'broken', status: 'failed' })));
    expect(rejected).toMatchObject({ code: '23514', constraint_name: 'snapshots_failed_has_error_code' });

    const [failed] = await db
      .insert(snapshots)
      .values(snapshot({ name: 'broken', status: 'failed', errorCode: 'IMAGE_NOT_FOUND', errorMessage: 'no such tag' }))
      .returning();
    expect(failed?.status).toBe('failed');
  });

  test('an unknown size is rejected by the size_presets foreign key', async () => {
    const rejected = await pgError(handle.db.insert(snapshots).values(snapshot({ name: 'huge', size: 'xxl' })));
    expect(rejected).toMatchObject({ code: '23503', constraint_name: 'snapshots_size_size_presets_key_fk' });
  });

  test('a value outside a state enum is rejected', async () => {
    const rejected = await pgError(handle.db.insert(snapshots).values(snapshot({ name: 'odd', status: 'ready' as unknown as 'active' })));
    expect(rejected.code).toBe('22P02'); // invalid input value for enum snapshot_status
  });
});

describe('default pointers', () => {
  test('at most one default per (workspace, size, profile); another profile gets its own', async () => {
    const { db } = handle;
    const [a] = await db
      .insert(snapshots)
      .values(snapshot({ name: 'golden-a', kind: 'golden', status: 'active' }))
      .returning();
    const [b] = await db
      .insert(snapshots)
      .values(snapshot({ name: 'golden-b', kind: 'golden', status: 'active' }))
      .returning();
    const pointer = { workspace: 'ws-1', size: 'small', profileKey: profile };

    await db.insert(defaultPointers).values({ ...pointer, snapshotId: a!.id });
    const second = await pgError(db.insert(defaultPointers).values({ ...pointer, snapshotId: b!.id }));
    expect(second).toMatchObject({ code: '23505', constraint_name: 'default_pointers_pkey' });

    const piProfile = profileKey({ runtime: 'pi', size: 'small' });
    await db.insert(defaultPointers).values({ ...pointer, profileKey: piProfile, snapshotId: b!.id });
    const rows = await db.select().from(defaultPointers).where(eq(defaultPointers.workspace, 'ws-1'));
    expect(rows.map((r) => r.profileKey).sort()).toEqual([profile, piProfile].sort());
  });
});

describe('sandboxes', () => {
  test('only a vm sandbox can point at a session snapshot', async () => {
    const { db } = handle;
    const base = { workspace: 'ws-1', size: 'small', runtime: 'codex' as const, profileKey: profile };
    const [vm] = await db
      .insert(sandboxes)
      .values({ ...base, class: 'vm' })
      .returning();
    const [session] = await db
      .insert(snapshots)
      .values(snapshot({ name: 'session-1', kind: 'session', origin: 'job', sandboxId: vm!.id }))
      .returning();

    await db.update(sandboxes).set({ latestSessionSnapshotId: session!.id }).where(eq(sandboxes.id, vm!.id));

    const container = await pgError(db.insert(sandboxes).values({ ...base, class: 'container', latestSessionSnapshotId: session!.id }));
    expect(container).toMatchObject({ code: '23514', constraint_name: 'sandboxes_snapshot_only_vm' });
  });

  test('a session snapshot must name its sandbox', async () => {
    const rejected = await pgError(handle.db.insert(snapshots).values(snapshot({ name: 'orphan', kind: 'session', origin: 'job' })));
    expect(rejected).toMatchObject({ code: '23514', constraint_name: 'snapshots_session_has_sandbox' });
  });
});

test('the catalog stores no GitHub token anywhere (the one token column is the hash of our own API tokens)', async () => {
  const rows = await handle.db.execute<{ table_name: string; column_name: string }>(
    dsql`select table_name, column_name from information_schema.columns where table_schema = 'public' and column_name ilike '%token%'`,
  );
  expect([...rows]).toEqual([{ table_name: 'api_tokens', column_name: 'token_hash' }]);
});

describe('a retried compare-and-set after its first attempt committed', () => {
  const target = { workspace: 'ws-retry', size: 'small', profileKey: profile, actor: 'alice' };
  let ids: string[];
  const history = async () => (await handle.db.select().from(defaultHistory).where(eq(defaultHistory.workspace, 'ws-retry'))).length;

  beforeAll(async () => {
    const rows = await handle.db
      .insert(snapshots)
      .values(['retry-a', 'retry-b'].map((name) => snapshot({ workspace: 'ws-retry', name, kind: 'golden', status: 'active' })))
      .returning({ id: snapshots.id });
    ids = rows.map((r) => r.id);
  });

  test("gets its first attempt's answer, not CONFLICT against its own new version; another caller still gets CONFLICT", async () => {
    const key = 'set-default/ws-retry/small/v1/run-1/setDefault/1';
    const write = () => once(handle.db, key, (tx) => compareAndSetDefault(tx, { ...target, snapshotId: ids[0]!, expectedVersion: 0 }));
    const first = await write();
    expect(first).toMatchObject({ snapshotId: ids[0], version: 1 });
    expect(await write()).toEqual(first);
    expect(await history()).toBe(1);
    const other = once(handle.db, 'another-run/setDefault/1', (tx) =>
      compareAndSetDefault(tx, { ...target, snapshotId: ids[1]!, expectedVersion: 0 }),
    );
    await expect(other).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await history()).toBe(1);
  });

  test('a retry that starts while the first attempt is still committing waits for it and returns its answer', async () => {
    const key = 'set-default/ws-retry/small/v2/run-1/setDefault/1';
    const input = { ...target, snapshotId: ids[1]!, expectedVersion: 1 };
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = once(handle.db, key, async (tx) => {
      const state = await compareAndSetDefault(tx, input);
      await gate; // committed only once the retry is under way (its attempt timed out on a slow host)
      return state;
    });
    await new Promise((r) => setTimeout(r, 200));
    const retry = once(handle.db, key, (tx) => compareAndSetDefault(tx, input));
    await new Promise((r) => setTimeout(r, 200));
    release();
    const [a, b] = await Promise.all([slow, retry]);
    expect(a).toMatchObject({ snapshotId: ids[1], version: 2 });
    expect(b).toEqual(a);
    expect(await history()).toBe(2);
  });
});
