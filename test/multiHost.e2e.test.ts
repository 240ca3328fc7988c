// Several hosts: two real dockerd instances, each with its own host worker and task queue. Builds starting
// together spread over them; a drained host takes no new work, and its sandbox's session, kept in storage,
// is restored on the other host.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { startDockerd, stopProcess, type ManagedProcess } from '../scripts/stack';
import { ensureBaseImage } from '../activities/baseImage';
import { WORKFLOW_LABEL, workflowIds } from '../lib/ids';
import { makeBareRepo } from './support/repos';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let second: (ManagedProcess & { dockerHost: string }) | undefined;
let dockerB: Docker;
const hostA = uniqueHostId('multi-a');
const hostB = uniqueHostId('multi-b');
const sandboxIds: string[] = [];

beforeAll(async () => {
  second = await startDockerd({ root: join(process.env.SNAPFLOW_TEST_STATE!, '..', `dockerd-multi-${process.pid}`) });
  dockerB = new Docker({ socketPath: second.dockerHost.replace('unix://', '') });
  await ensureBaseImage(dockerB);
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId: hostA, memoryLimitMiB: 8192 });
  await t.startHostWorker({ hostId: hostB, dockerHost: second.dockerHost, memoryLimitMiB: 8192 });
  await t.client.refreshHost(hostA);
  await t.client.refreshHost(hostB);
}, 120_000);

afterAll(async () => {
  for (const id of sandboxIds) {
    await t.client.sandboxes.destroy(id).catch(() =>
      t.client.temporal.workflow
        .getHandle(workflowIds.sandbox(id))
        .terminate('test cleanup')
        .catch(() => undefined),
    );
    for (const docker of [t.docker, dockerB]) {
      for (const c of await docker.listContainers({ all: true, filters: { label: [`${WORKFLOW_LABEL}=${workflowIds.sandbox(id)}`] } }))
        await docker.getContainer(c.Id).remove({ force: true });
    }
  }
  await t?.teardown();
  if (second) await stopProcess(second);
});

test('builds are placed by free memory: while one build holds a host, the next goes to the other', async () => {
  const repo = makeBareRepo(mkdtempSync(join(process.env.SNAPFLOW_TEST_STATE!, '..', 'multi-')), 'slow', { 'tembo.nix': '{ }\n' });
  for (const workspace of ['multi-1', 'multi-2'])
    await t.client.golden.setConfig({
      workspace,
      repos: [repo],
      prebuildDeps: true,
      depsFallbackCommand: 'sleep 3',
      targets: ['small:codex'],
    });
  const first = await t.client.golden.buildNow({ workspace: 'multi-1' });
  // Wait until the first build's temporary sandbox (2 GiB) is running on its host.
  for (let i = 0; i < 300; i++) {
    const d = await t.client.temporal.workflow.getHandle(first.workflowId).describe();
    if ((d.raw.pendingActivities ?? []).some((a) => a.activityType?.name === 'buildDeps')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const second = await t.client.golden.buildNow({ workspace: 'multi-2' });
  const [a, b] = await Promise.all([t.client.golden.waitForBuild(first.workflowId), t.client.golden.waitForBuild(second.workflowId)]);
  expect([a.status, b.status]).toEqual(['succeeded', 'succeeded']);
  expect(new Set([a.hostId, b.hostId])).toEqual(new Set([hostA, hostB]));
  expect(b.cache?.cachedOn).toEqual([b.hostId, a.hostId]); // and each pre-warmed the other
});

test('a drained host takes no new sandbox; a sandbox from it resumes on another host from storage', async () => {
  await t.client.drainHost(hostB);
  await t.client.undrainHost(hostB);
  await t.client.drainHost(hostA); // everything new goes to B now
  const { sandboxId, status } = await t.client.sandboxes.create({ workspace: 'multi-ws', class: 'vm', size: 'small', runtime: 'codex' });
  sandboxIds.push(sandboxId);
  expect(status.hostId).toBe(hostB);
  const job = await t.client.sandboxes.runJob(
    sandboxId,
    { command: ['sh', '-c', 'echo "made on B" > /root/origin'] },
    { waitForSession: true },
  );
  expect(job.sessionSnapshotId).toBeDefined();

  // B goes away for new work (its worker announcing itself again does not undo that); A comes back.
  await t.client.undrainHost(hostA);
  await t.client.drainHost(hostB);
  await t.client.refreshHost(hostB);
  const resumed = await t.client.sandboxes.resume(sandboxId);
  expect(resumed).toMatchObject({ hostId: hostA, lastStart: { source: 'session', snapshotId: job.sessionSnapshotId } });
  const read = await t.client.sandboxes.runJob(sandboxId, { command: ['cat', '/root/origin'] });
  expect(read.stdout).toBe('made on B\n');
  await t.client.undrainHost(hostB);
});

test('draining an unknown host is a typed NOT_FOUND', async () => {
  await expect(t.client.drainHost('no-such-host')).rejects.toMatchObject({ code: 'NOT_FOUND', field: 'hostId' });
});
