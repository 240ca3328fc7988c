// A host worker process killed with SIGKILL in the middle of a golden build: after it restarts the build
// completes, and no temporary sandbox is left behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { eq } from 'drizzle-orm';
import { hosts } from '../db/schema';
import { CONTAINER_LABEL } from '../lib/ids';
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
  await t.client.golden.setConfig({ workspace: ws, repos: [repo], prebuildDeps: true, depsFallbackCommand: 'sleep 6 && echo done > .deps-built', targets: ['medium:codex'] });
});

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    worker.kill('SIGTERM');
    await new Promise((r) => worker!.once('exit', r));
  }
  await t?.teardown();
});

test('kill -9 of the host worker mid-build: the build completes after restart and leaves no temp container', async () => {
  worker = startHostProcess();
  await until('the crashy host to register', async () => (await t.db.db.select().from(hosts).where(eq(hosts.id, crashy)))[0]);

  const started = await t.client.golden.buildNow({ workspace: ws });
  await until('the temporary sandbox', async () => (await temps()).length > 0 || undefined);
  await new Promise((r) => setTimeout(r, 2000)); // inside the slow dependency step
  worker.kill('SIGKILL');
  await new Promise((r) => worker!.once('exit', r));

  worker = startHostProcess(); // same host id, same task queue: Temporal retries the lost step there
  const result = await t.client.golden.waitForBuild(started.workflowId);
  expect(result).toMatchObject({ status: 'succeeded', hostId: crashy });
  expect(await temps()).toEqual([]);
  const managed = await t.docker.listContainers({ all: true, filters: { label: [CONTAINER_LABEL] } });
  expect(managed).toEqual([]);
}, 180_000);
