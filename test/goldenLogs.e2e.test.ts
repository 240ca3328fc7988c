// A golden build's log: each preload step's own output (the clone, the dependency build's stdout and stderr) and
// how the build ended, read with `golden logs BUILD`.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { desc, eq } from 'drizzle-orm';
import { goldenBuilds } from '../db/schema';
import { makeBareRepo } from './support/repos';
import { createTestEnv, uniqueHostId, type TestEnv, runCli } from './support/stack';

let t: TestEnv;
let repo = '';
const ws = 'ws-goldenlogs';

beforeAll(async () => {
  const dir = mkdtempSync(join(process.env.SNAPFLOW_TEST_STATE!, '..', 'goldenlogs-'));
  repo = makeBareRepo(dir, 'agent-tools', { 'README.md': 'agent tools\n', 'tembo.nix': '{ }\n' });
  t = await createTestEnv();
  await t.startControlWorker();
  const hostId = uniqueHostId('glog');
  await t.startHostWorker({ hostId, memoryLimitMiB: 6144 });
  await t.client.refreshHost(hostId);
});
afterAll(async () => t?.teardown());

const cli = (args: string[]) => runCli(t, args);

test("a failed golden build's log holds each step, the dependency build's own output and the failure", async () => {
  await t.client.golden.setConfig({
    workspace: ws,
    repos: [repo],
    prebuildDeps: true,
    depsFallbackCommand: 'echo "building deps for $(basename $PWD)"; echo "error: libfoo not found" >&2; exit 3',
    targets: ['small:codex'],
  });
  const started = await t.client.golden.buildNow({ workspace: ws });
  await expect(t.client.golden.waitForBuild(started.workflowId)).rejects.toMatchObject({ code: 'PRELOAD_FAILED' });
  const [build] = await t.db.db.select().from(goldenBuilds).where(eq(goldenBuilds.workspace, ws)).orderBy(desc(goldenBuilds.startedAt));
  expect(build!.id).toBe(started.buildId);

  const parts: string[] = [];
  for await (const c of t.client.golden.logs({ build: started.buildId })) parts.push(`${c.stream}:${c.data.toString()}`);
  const log = parts.join('');
  const at = (line: string) => log.indexOf(line);
  const order = ['note:== preload: 1 repo(s)', 'stdout:cloned', 'note:== deps: agent-tools', 'note:failed: PRELOAD_FAILED'].map(at);
  expect(order.every((i) => i >= 0)).toBe(true);
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  // The dependency build's own output sits inside its step. Its stdout and stderr are two pipes that the engine
  // reads apart, so which of the two lines comes first is not the job's to promise, and not asserted.
  for (const line of ['stdout:building deps for agent-tools', 'stderr:error: libfoo not found']) {
    expect(at(line)).toBeGreaterThan(order[2]!);
    expect(at(line)).toBeLessThan(order[3]!);
  }

  const viaCli = await cli(['golden', 'logs', started.buildId.slice(0, 8)]);
  expect(viaCli.status).toBe(0);
  expect(viaCli.stdout).toContain('building deps for agent-tools');
  expect(viaCli.stderr).toContain('error: libfoo not found');
  await expect(cli(['golden', 'logs', 'not-a-build'])).resolves.toMatchObject({ status: 2 });
}, 180_000);
