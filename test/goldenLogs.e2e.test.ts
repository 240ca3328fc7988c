// A golden build's log: each preload step's own output (the clone, the dependency build's stdout and stderr), the
// boot check's (the entrypoint's own output and outcome), each vm target's boot and save, and how the build ended,
// read with `golden logs BUILD`.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { desc, eq } from 'drizzle-orm';
import { goldenBuilds, snapshots } from '../db/schema';
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

async function buildLog(buildId: string): Promise<string> {
  const parts: string[] = [];
  for await (const c of t.client.golden.logs({ build: buildId })) parts.push(`${c.stream}:${c.data.toString()}`);
  return parts.join('');
}

/** Each line is in the log, in this order. */
function expectInOrder(log: string, lines: string[]): number[] {
  const order = lines.map((line) => log.indexOf(line));
  expect(Object.fromEntries(lines.map((line, i) => [line, order[i]! >= 0]))).toEqual(Object.fromEntries(lines.map((l) => [l, true])));
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  return order;
}

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

test("a built golden's log holds its boot check (the entrypoint's own output and outcome) and each vm target's boot and save", async () => {
  const vmWs = 'ws-goldenlogs-vm';
  await t.client.golden.setConfig({ workspace: vmWs, repos: [repo], targets: ['small:codex:vm'] });
  const started = await t.client.golden.buildNow({ workspace: vmWs });
  const result = await t.client.golden.waitForBuild(started.workflowId);
  expect(result.status).toBe('succeeded');
  const machine = await t.db.db.select().from(snapshots).where(eq(snapshots.id, result.snapshots[0]!.snapshotId));

  const log = await buildLog(started.buildId);
  expectInOrder(log, [
    'note:== preload: 1 repo(s)',
    'note:== boot: /app/start.sh in ',
    // The built-in base's entrypoint announces itself and exits 0: its own line, then the check's verdict.
    'stdout:snapflow sandbox ready',
    'note:booted: /app/start.sh exited 0 after ',
    'note:== vm small: boot the built image as a machine, save it',
    'note:booted in ',
    `note:saved as ${machine[0]!.storedRef} (machine profile ${machine[0]!.machineProfile})`,
    'note:succeeded',
  ]);
  const viaCli = await cli(['golden', 'logs', started.buildId]);
  expect(viaCli.status).toBe(0);
  expect(viaCli.stdout).toContain('snapflow sandbox ready');
  expect(viaCli.stdout).toContain(`saved as ${machine[0]!.storedRef}`);
}, 420_000);
