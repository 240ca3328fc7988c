// Golden snapshots cached on hosts: two real dockerd instances as two hosts. The builder keeps the image it
// built, the other host that serves the size pre-warms it from storage, and eviction drops what is no longer a
// default while never touching a default.
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import Docker from 'dockerode';
import { hostCache } from '../db/schema';
import { startDockerd, stopProcess, type ManagedProcess } from '../scripts/stack';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let second: (ManagedProcess & { dockerHost: string }) | undefined;
let dockerB: Docker;
const big = uniqueHostId('cache-big');
const small = uniqueHostId('cache-small');
const ws = 'ws-cache';

beforeAll(async () => {
  second = await startDockerd({ root: join(process.env.SNAPFLOW_TEST_STATE!, '..', `dockerd-cache-${process.pid}`) });
  dockerB = new Docker({ socketPath: second.dockerHost.replace('unix://', '') });
  // Keep nothing beyond defaults, pins and live sessions, so eviction is visible after one more build.
  t = await createTestEnv({ env: { SNAPFLOW_HOST_CACHE_KEEP: '0' } });
  await t.startControlWorker();
  await t.startHostWorker({ hostId: big, memoryLimitMiB: 6144 }); // builds: most free memory
  await t.startHostWorker({ hostId: small, dockerHost: second.dockerHost, memoryLimitMiB: 3072 }); // serves small only
  await t.client.refreshHost(big);
  await t.client.refreshHost(small);
  await t.client.golden.setConfig({ workspace: ws, targets: ['small:codex', 'medium:codex'] });
}, 120_000);

afterAll(async () => {
  await t?.teardown();
  if (second) await stopProcess(second);
});

const cachedOn = async (hostId: string) =>
  (await t.db.db.select().from(hostCache).where(eq(hostCache.hostId, hostId))).map((r) => r.snapshotId).sort();
const hasImage = async (docker: Docker, ref: string) =>
  Boolean(
    await docker
      .getImage(ref)
      .inspect()
      .catch(() => undefined),
  );

async function build() {
  const started = await t.client.golden.buildNow({ workspace: ws });
  return t.client.golden.waitForBuild(started.workflowId);
}

test('a new default is cached on the builder and pre-warmed on the other host that serves its size', async () => {
  const result = await build();
  expect(result).toMatchObject({ status: 'succeeded', hostId: big, cache: { cachedOn: [big, small], warmFailed: [] } });
  const [smallSnap, mediumSnap] = result.snapshots;
  expect(await cachedOn(big)).toEqual([smallSnap!.snapshotId, mediumSnap!.snapshotId].sort());
  expect(await cachedOn(small)).toEqual([smallSnap!.snapshotId]); // 3 GiB does not serve medium
  expect(await hasImage(dockerB, result.storedRef!)).toBe(true); // pulled from storage into the second engine
});

test('eviction after the next build drops the old image on every host and keeps the new defaults', async () => {
  const [old] = await t.db.db.select().from(hostCache).where(eq(hostCache.hostId, small));
  const first = await t.db.db.query.snapshots.findFirst({ where: (s, { eq: is }) => is(s.id, old!.snapshotId) });

  const next = await build();
  expect(next.status).toBe('succeeded');
  expect(next.cache!.evicted).toEqual(
    expect.arrayContaining([
      { hostId: big, storedRef: first!.storedRef },
      { hostId: small, storedRef: first!.storedRef },
    ]),
  );
  expect(await hasImage(dockerB, first!.storedRef!)).toBe(false);
  expect(await hasImage(t.docker, first!.storedRef!)).toBe(false);
  expect(
    await t.db.db
      .select()
      .from(hostCache)
      .where(and(eq(hostCache.hostId, small), eq(hostCache.snapshotId, first!.id))),
  ).toEqual([]);

  // The defaults that are now current stay cached, in the catalog and in the engines.
  expect(await cachedOn(small)).toEqual([next.snapshots[0]!.snapshotId]);
  expect(await hasImage(dockerB, next.storedRef!)).toBe(true);
  expect(await hasImage(t.docker, next.storedRef!)).toBe(true);
});
