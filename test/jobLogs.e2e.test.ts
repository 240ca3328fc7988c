// Every byte kept: a job's output whole in the log store, streamed live and exact, read back by another process,
// and told apart by stream (jobLogCap.e2e.test.ts: the cap).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('logs');
const ws = 'ws-logs';

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
});
afterAll(async () => {
  await destroyEverySandbox(t);
  await t?.teardown();
});

const sh = (script: string) => ({ command: ['sh', '-c', script] });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** 30 MB of bytes that are not UTF-8 text (every byte value), then the mark. */
const THIRTY_MB = `i=0; while [ $i -lt 120 ]; do head -c 262144 /dev/urandom; i=$((i+1)); done | tee /tmp/out.bin; printf 'tail-mark\\n' | tee -a /tmp/out.bin`;

async function collect(iterable: AsyncIterable<{ stream: string; data: Buffer }>): Promise<Record<string, Buffer>> {
  const parts: Record<string, Buffer[]> = { stdout: [], stderr: [], note: [] };
  for await (const c of iterable) parts[c.stream]!.push(c.data);
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Buffer.concat(v)]));
}

function cli(args: string[]): Promise<{ status: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, '..', 'client', 'bin', 'snapflow.js'), ...args], {
      env: { ...process.env, ...t.env },
      cwd: t.stack.dir,
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill(), 120_000);
    child.on('error', reject).on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(out), stderr });
    });
  });
}

test('a container job printing 30 MB and a mark: `sandbox run` streams it byte-exact, and the log holds all of it', async () => {
  const { sandboxId } = await t.client.sandboxes.create({
    workspace: ws,
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  const run = await cli(['sandbox', 'run', sandboxId, '--', 'sh', '-c', THIRTY_MB]);
  expect(run.status).toBe(0);
  const own = await t.client.sandboxes.runJob(sandboxId, sh('sha256sum /tmp/out.bin | cut -d" " -f1; wc -c < /tmp/out.bin'));
  const [digest, size] = own.stdout.trim().split('\n');
  expect(run.stdout.length).toBe(Number(size));
  expect(sha(run.stdout)).toBe(digest);
  expect(run.stdout.subarray(-10).toString()).toBe('tail-mark\n');

  // Another process, later: the same bytes from the log store, the job named by its number.
  const read = await cli(['sandbox', 'logs', sandboxId, '1']);
  expect(read.status).toBe(0);
  expect(sha(read.stdout)).toBe(digest);
  const last = await collect(t.client.sandboxes.logs(sandboxId));
  expect(last.stdout!.toString()).toBe(own.stdout);
}, 240_000);

test('the result carries the exit code, the exact tail and where the log is; stderr is kept apart and in order', async () => {
  const { sandboxId } = await t.client.sandboxes.create({
    workspace: ws,
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  const result = await t.client.sandboxes.runJob(sandboxId, sh('seq 1 30000; echo oops >&2; echo end; exit 3'));
  expect(result.exitCode).toBe(3);
  expect(result.stdout.endsWith('29999\n30000\nend\n')).toBe(true);
  expect(result.stderr).toBe('oops\n');
  expect(result.log).toMatchObject({ id: `job:${sandboxId}:1`, dropped: 0 });
  const whole = await collect(t.client.sandboxes.logs(sandboxId, { job: 1 }));
  const expected = Array.from({ length: 30000 }, (_, i) => `${i + 1}\n`).join('') + 'end\n';
  expect(whole.stdout!.toString()).toBe(expected);
  expect(whole.stderr!.toString()).toBe('oops\n');
  await expect(collect(t.client.sandboxes.logs(sandboxId, { job: 9 }))).rejects.toMatchObject({ code: 'NOT_FOUND', field: 'job' });
  await expect(collect(t.client.sandboxes.logs(sandboxId, { since: 'yesterday' }))).rejects.toMatchObject({ field: 'since' });
}, 120_000);

test('`--follow` streams a running job live and ends with it', async () => {
  const { sandboxId } = await t.client.sandboxes.create({
    workspace: ws,
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  const job = t.client.sandboxes.runJob(sandboxId, sh('echo one; sleep 3; echo two'));
  // Once the job's log exists (the job has started), follow it.
  for (let i = 0; i < 100; i++) {
    const reader = t.client.sandboxes.logs(sandboxId);
    const first = await reader.next().catch(() => undefined);
    await reader.return(undefined);
    if (first && !first.done) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const seen: Array<{ text: string; done: boolean }> = [];
  let done = false;
  void job.finally(() => (done = true));
  for await (const c of t.client.sandboxes.logs(sandboxId, { follow: true })) seen.push({ text: c.data.toString(), done });
  expect(seen.map((s) => s.text).join('')).toBe('one\ntwo\n');
  expect(seen[0]).toMatchObject({ text: 'one\n', done: false });
  expect((await job).exitCode).toBe(0);
}, 120_000);

async function whenRunning(sandboxId: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (
      (await t.client.sandboxes.status(sandboxId)).currentJob &&
      (await t.client.sandboxes
        .logs(sandboxId)
        .next()
        .then(
          () => true,
          () => false,
        ))
    )
      return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('Ctrl-C on `sandbox run -- sleep 600` cancels the job: its processes are gone, its log kept, the next job runs', async () => {
  const { sandboxId } = await t.client.sandboxes.create({
    workspace: ws,
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  const child = spawn(
    process.execPath,
    [join(__dirname, '..', 'client', 'bin', 'snapflow.js'), 'sandbox', 'run', sandboxId, '--', 'sh', '-c', 'echo started; exec sleep 600'],
    { env: { ...process.env, ...t.env }, cwd: t.stack.dir },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  while (!stdout.includes('started')) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGINT');
  expect(await exited).toBe(130);
  expect(stdout).toBe('started\n');
  expect(stderr).toMatch(/job 1 cancelled/);
  const after = await t.client.sandboxes.runJob(sandboxId, sh('ps -o args | grep -c "^sleep 600" || true'));
  expect(after).toMatchObject({ exitCode: 0, stdout: '0\n' });
  const kept = await collect(t.client.sandboxes.logs(sandboxId, { job: 1 }));
  expect(kept.stdout!.toString()).toBe('started\n');
}, 120_000);

test('runJob with a signal: aborting cancels the job, which ends `cancelled` even when it ignores SIGTERM', async () => {
  const { sandboxId } = await t.client.sandboxes.create({
    workspace: ws,
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  const stop = new AbortController();
  const job = t.client.sandboxes.runJob(sandboxId, sh("trap '' TERM; echo stubborn; while :; do sleep 1; done"), { signal: stop.signal });
  await whenRunning(sandboxId);
  stop.abort();
  const result = await job;
  expect(result).toMatchObject({ cancelled: true, stdout: 'stubborn\n' });
  expect(result.exitCode).not.toBe(0);
  expect((await t.client.sandboxes.runJob(sandboxId, sh('echo next'))).stdout).toBe('next\n');
}, 120_000);
