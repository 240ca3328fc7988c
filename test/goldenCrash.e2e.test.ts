// A host worker process killed with SIGKILL in the middle of a golden build: after it restarts the build
// completes, and no temporary sandbox is left behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { eq } from 'drizzle-orm';
import { hosts } from '../db/schema';
import { CONTAINER_LABEL, WORKFLOW_LABEL } from '../lib/ids';
import { BASE_IMAGE_REF } from '../lib/presets';
import { projectRoot } from '../scripts/stack';
import { makeBareRepo } from './support/repos';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

let t: TestEnv;
let worker: ChildProcess | undefined;
const crashy = uniqueHostId('crashy');
const ws = 'ws-crash';

function startHostProcess(): ChildProcess {
  const child = spawn(process.execPath, ['--import', pathToFileURL(require.resolve('tsx')).href, join(projectRoot, 'workers', 'host.ts')], {
    cwd: t.stack.dir, // no .env there: only this environment counts
    env: { ...process.env, ...t.env, SNAPFLOW_HOST_ID: crashy },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const temps = () => t.docker.listContainers({ all: true, filters: { label: [`${CONTAINER_LABEL}=temp`] } });

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  // The in-process host offers little memory, so the build is placed on the (unlimited) crashy process.
  const small = uniqueHostId('small');
  await t.startHostWorker({ hostId: small, memoryLimitMiB: 2100 });
  await t.client.refreshHost(small);
  const dir = mkdtempSync(join(t.stack.dir, 'crash-'));
  const repo = makeBareRepo(dir, 'slow-deps', { 'tembo.nix': '{ }\n' });
  await t.client.golden.setConfig({
    workspace: ws,
    repos: [repo],
    prebuildDeps: true,
    depsFallbackCommand: 'sleep 6 && echo done > .deps-built',
    targets: ['medium:codex'],
  });
});

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    worker.kill('SIGTERM');
    await new Promise((r) => worker!.once('exit', r));
  }
  await t?.teardown();
});

test('kill -9 of the host worker mid-build: the build completes after restart, leftovers of finished runs are swept', async () => {
  worker = startHostProcess();
  await until('the crashy host to register', async () => (await t.db.db.select().from(hosts).where(eq(hosts.id, crashy)))[0]);

  const started = await t.client.golden.buildNow({ workspace: ws });
  await until('the temporary sandbox', async () => (await temps()).length > 0 || undefined);
  await new Promise((r) => setTimeout(r, 2000)); // inside the slow dependency step
  worker.kill('SIGKILL');
  await new Promise((r) => worker!.once('exit', r));

  // Leftovers of runs that are over (and of a one-activity check): the restarted worker sweeps them,
  // while the running build's sandbox must survive the sweep.
  const leftovers = await Promise.all(
    ['golden-build/ws-gone/finished-long-ago', ''].map((workflowId) =>
      t.docker.createContainer({
        Image: BASE_IMAGE_REF,
        Cmd: ['sleep', '600'],
        Labels: { [CONTAINER_LABEL]: 'temp', [WORKFLOW_LABEL]: workflowId },
        HostConfig: { NetworkMode: 'none' },
      }),
    ),
  );

  worker = startHostProcess(); // same host id, same task queue: Temporal retries the lost step there
  await until('the sweep', async () => ((await temps()).every((c) => !leftovers.some((l) => l.id === c.Id)) ? true : undefined));
  const result = await t.client.golden.waitForBuild(started.workflowId);
  expect(result).toMatchObject({ status: 'succeeded', hostId: crashy });
  expect(await temps()).toEqual([]);
  const managed = await t.docker.listContainers({ all: true, filters: { label: [CONTAINER_LABEL] } });
  expect(managed).toEqual([]);
}, 180_000);
