// vm sandboxes on the real thing: QEMU boots the Debian cloud kernel with the base image's files as its in-RAM
// root, jobs run through the guest agent, and a snapshot saves the whole machine, so a restored VM in a new QEMU
// process still runs the processes it had. Runs under whichever accel the probe finds (TCG here).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { bareGuestImage, guestFiles } from '../activities/vm/guestImage';
import { DEVICE_LAYOUT, cacheDir, isQemuAlive, machineFiles, qemuFacts, startQemu, stopQemu, vmTools } from '../activities/vm/machine';
import { QmpClient } from '../activities/vm/qmp';
import { createVmRuntime, type VmRuntime } from '../activities/vm/runtime';
import type { VmHandle, VmSnapshot } from '../activities/vm/types';
import { sweepVmLeftovers } from '../activities/sandbox/vm/machines';
import { BASE_IMAGE_REF } from '../lib/presets';
import { readTestStack } from './support/stackState';

const MEMORY_MIB = 512;
let vm: VmRuntime;
let scratch: string;
let runRoot: string;
let stateDir: string;
const started: VmHandle[] = [];
/** The chunk store of this file's saved machines (RAM and overlay chunks). */
const chunkDir = (): string => join(stateDir, 'chunks');

/** Every QEMU process whose command line points into this file's run directory. */
function qemuProcesses(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(runRoot);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function boot(id: string): Promise<VmHandle> {
  const handle = await vm.create({ id, image: BASE_IMAGE_REF, memoryMiB: MEMORY_MIB, vcpus: 1 });
  started.push(handle);
  return handle;
}

beforeAll(async () => {
  const stack = readTestStack();
  scratch = mkdtempSync('/tmp/sfvm-test-'); // short: the VMs' unix sockets live under it
  runRoot = join(scratch, 'run');
  stateDir = join(scratch, 'state');
  vm = createVmRuntime({ docker: new Docker({ socketPath: stack.dockerHost.replace('unix://', '') }), runRoot });
  const probe = await vm.probeAccel();
  process.stdout.write(`vm accel: ${probe.accel} (${probe.detail}); QEMU ${probe.qemuVersion}, kernel ${probe.kernel}\n`);
});

afterEach(async () => {
  for (const handle of started.splice(0)) await vm.remove(handle);
  rmSync(stateDir, { recursive: true, force: true });
  // Nothing left behind: no QEMU process, no VM directory (sockets, pidfile, console log), no state file.
  expect(qemuProcesses()).toEqual([]);
  expect(existsSync(runRoot) ? readdirSync(runRoot) : []).toEqual([]);
  expect(existsSync(stateDir)).toBe(false);
});

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test('a VM boots from the base image and runs jobs by argv: guest kernel, exit codes, stderr, env, workdir', async () => {
  const handle = await boot('jobs');
  expect(handle.profile).toBe(
    `qemu-${handle.profile.split('/')[0]!.slice('qemu-'.length)}/${handle.machine}/${handle.accel}/${MEMORY_MIB}m/1cpu/${vmTools().kernelVersion}/devices-${DEVICE_LAYOUT}`,
  );

  const uname = await vm.exec(handle, { argv: ['uname', '-r'] });
  expect(uname).toMatchObject({ exitCode: 0, timedOut: false });
  expect(uname.stdout.trim()).toBe(vmTools().kernelVersion);
  expect(uname.stdout.trim()).not.toBe(release());

  // argv reaches the program verbatim: no shell splits or expands it.
  const args = await vm.exec(handle, { argv: ['printf', '[%s]', 'a b', ' c ', '$HOME', '*'] });
  expect(args.stdout).toBe('[a b][ c ][$HOME][*]');

  const failing = await vm.exec(handle, { argv: ['sh', '-c', 'echo out; echo oops >&2; exit 7'] });
  expect(failing).toMatchObject({ exitCode: 7, stdout: 'out\n', stderr: 'oops\n', timedOut: false });

  const env = await vm.exec(handle, { argv: ['sh', '-c', 'echo "$GREETING"; pwd'], env: { GREETING: 'hello vm' }, workdir: '/tmp' });
  expect(env.stdout).toBe('hello vm\n/tmp\n');
  expect((await vm.exec(handle, { argv: ['pwd'] })).stdout).toBe('/workspace\n'); // the image's WORKDIR

  const missing = await vm.exec(handle, { argv: ['no-such-program'] });
  expect(missing.exitCode).toBe(127);
  expect(missing.stderr).toContain('no-such-program');
});

test('a job past its timeout is killed with its process group; output streams before the job ends', async () => {
  const handle = await boot('timeout');
  const begin = Date.now();
  const slow = await vm.exec(handle, { argv: ['sh', '-c', 'sleep 60 & sleep 60'], timeoutMs: 1_000 });
  expect(slow.timedOut).toBe(true);
  expect(Date.now() - begin).toBeLessThan(15_000);
  expect((await vm.exec(handle, { argv: ['sh', '-c', 'pgrep sleep | wc -l'] })).stdout.trim()).toBe('0');

  const chunks: Array<{ at: number; text: string }> = [];
  const streamed = await vm.exec(handle, { argv: ['sh', '-c', 'echo first; sleep 2; echo second'] }, (stream, chunk) =>
    chunks.push({ at: Date.now(), text: `${stream}:${chunk.toString()}` }),
  );
  const ended = Date.now();
  expect(streamed.stdout).toBe('first\nsecond\n');
  expect(chunks[0]!.text).toBe('stdout:first\n');
  expect(ended - chunks[0]!.at).toBeGreaterThan(1_500);
});

test('what a job left in its pipes when it exits all arrives, however slowly the host reads; a writer left behind does not hold it', async () => {
  const handle = await boot('drain');
  const made = await vm.exec(handle, {
    argv: ['sh', '-c', 'head -c 12000000 /dev/urandom > /tmp/r; sha256sum /tmp/r'],
    timeoutMs: 120_000,
  });
  const streamed: Buffer[] = [];
  let sinceStall = 0;
  const result = await vm.exec(handle, { argv: ['sh', '-c', 'cat /tmp/r; echo end-mark'] }, (stream, chunk) => {
    if (stream !== 'stdout') return;
    streamed.push(Buffer.from(chunk));
    sinceStall += chunk.length;
    if (sinceStall < 1024 * 1024) return;
    sinceStall = 0;
    // A host too busy to read for a while (longer than the guest's grace for a writer left behind).
    const until = Date.now() + 400;
    while (Date.now() < until);
  });
  const out = Buffer.concat(streamed);
  expect(result.exitCode).toBe(0);
  expect(out.length).toBe(12_000_000 + 'end-mark\n'.length);
  expect(createHash('sha256').update(out.subarray(0, 12_000_000)).digest('hex')).toBe(made.stdout.split(' ')[0]);
  expect(out.subarray(-9).toString()).toBe('end-mark\n');

  const begin = Date.now();
  const left = await vm.exec(handle, { argv: ['sh', '-c', '(while :; do echo spam; done) & echo mine'], timeoutMs: 60_000 });
  expect(left).toMatchObject({ exitCode: 0, timedOut: false });
  expect(left.stdout).toContain('mine\n');
  expect(Date.now() - begin).toBeLessThan(15_000);
});

test('a snapshot holds the whole machine: a background process survives restore into a new QEMU, uptime continues', async () => {
  const handle = await boot('session');
  const job = await vm.exec(handle, { argv: ['sh', '-c', 'sleep 1000 & echo $! > /root/pid; echo note > /root/file'] });
  expect(job.exitCode).toBe(0);
  const uptimeBefore = parseFloat((await vm.exec(handle, { argv: ['cat', '/proc/uptime'] })).stdout);

  // Keep-alive: saved, and the same VM goes on answering.
  const kept = await vm.snapshot(handle, { file: join(stateDir, 'kept.zst'), chunks: chunkDir(), keepAlive: true });
  expect(kept).toMatchObject({ format: 2 });
  expect(kept.ram!.chunks.length).toBeGreaterThan(0);
  expect((await vm.exec(handle, { argv: ['cat', '/root/file'] })).stdout).toBe('note\n');

  // Stop: saved, and the QEMU process and its directory are gone.
  const saved: VmSnapshot = await vm.snapshot(handle, { file: join(stateDir, 'session.zst'), chunks: chunkDir(), keepAlive: false });
  started.splice(started.indexOf(handle), 1);
  expect(saved).toMatchObject({ profile: handle.profile, memoryMiB: MEMORY_MIB, vcpus: 1, format: 2 });
  // The second save wrote only what changed since the first: a fraction of it.
  expect(saved.newBytes!).toBeLessThan(kept.newBytes! / 3);
  expect(JSON.parse(readFileSync(`${saved.file}.json`, 'utf8'))).toMatchObject({ profile: handle.profile });
  expect(qemuProcesses()).toEqual([]);
  expect(existsSync(handle.dir)).toBe(false);

  const restored = await vm.restore({ id: 'session-2', file: saved.file, chunks: chunkDir() });
  started.push(restored);
  expect(restored.pid).not.toBe(handle.pid);
  const alive = await vm.exec(restored, { argv: ['sh', '-c', 'kill -0 "$(cat /root/pid)" && cat /root/file'] });
  expect(alive).toMatchObject({ exitCode: 0, stdout: 'note\n' });
  const uptimeAfter = parseFloat((await vm.exec(restored, { argv: ['cat', '/proc/uptime'] })).stdout);
  expect(uptimeAfter).toBeGreaterThanOrEqual(uptimeBefore);
  expect(uptimeAfter - uptimeBefore).toBeLessThan(60); // continued, not rebooted (a boot starts near 0)

  // The state is never changed by a restore: it restores again, as it was saved.
  const again = await vm.restore({ id: 'session-3', file: saved.file, chunks: chunkDir() });
  started.push(again);
  expect(await vm.exec(again, { argv: ['cat', '/root/file'] })).toMatchObject({ exitCode: 0, stdout: 'note\n' });

  // A state file from another machine profile is refused before any QEMU starts.
  symlinkSync(saved.file, join(stateDir, 'other.zst'));
  writeFileSync(join(stateDir, 'other.zst.json'), JSON.stringify({ ...saved, profile: saved.profile.replace(`${MEMORY_MIB}m`, '4096m') }));
  await expect(vm.restore({ id: 'other', file: join(stateDir, 'other.zst'), chunks: chunkDir() })).rejects.toMatchObject({
    code: 'VM_PROFILE_MISMATCH',
  });
});

test('a guest that does not come up is booted once more, then the failure says so with its console tail; nothing is left', async () => {
  // A deadline no guest meets stands in for a boot that fails on a starved host.
  const impatient = createVmRuntime({
    docker: new Docker({ socketPath: readTestStack().dockerHost.replace('unix://', '') }),
    runRoot,
    bootTimeoutMs: 300,
  });
  const failure = await impatient
    .create({ id: 'never-up', image: BASE_IMAGE_REF, memoryMiB: MEMORY_MIB, vcpus: 1 })
    .catch((err: unknown) => err);
  expect(failure).toMatchObject({ code: 'VM_BOOT_FAILED' });
  expect((failure as Error).message).toMatch(/failed to boot twice \(first: the guest agent did not answer within 300 ms/);
  expect((failure as Error).message).toMatch(/console:\n/);
});

test('a guest whose QEMU was killed is reported VM_UNRESPONSIVE on the next job, never waited on', async () => {
  const handle = await boot('killed');
  expect((await vm.exec(handle, { argv: ['true'] })).exitCode).toBe(0);
  process.kill(handle.pid, 'SIGKILL');
  const begin = Date.now();
  await expect(vm.exec(handle, { argv: ['true'] })).rejects.toMatchObject({ code: 'VM_UNRESPONSIVE' });
  expect(Date.now() - begin).toBeLessThan(10_000);
  await expect(vm.snapshot(handle, { file: join(stateDir, 'never.zst'), chunks: chunkDir(), keepAlive: true })).rejects.toMatchObject({
    code: 'VM_UNRESPONSIVE',
  });
});

test('a save whose worker died mid-way is made again: the machine the finished migration left paused resumes and is saved', async () => {
  const handle = await boot('resaved');
  expect((await vm.exec(handle, { argv: ['sh', '-c', 'echo before > /root/file'] })).exitCode).toBe(0);
  // What a killed worker's save leaves: QEMU finished the migration on its own and holds the machine paused.
  const qmp = await QmpClient.connect(machineFiles(handle.dir).qmpSocket);
  await qmp.execute('stop');
  await qmp.execute('migrate', { uri: 'exec:cat > /dev/null' });
  for (let i = 0; (await qmp.execute<{ status?: string }>('query-migrate')).status !== 'completed'; i++) {
    expect(i).toBeLessThan(600);
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(await qmp.execute('query-status')).toMatchObject({ status: 'postmigrate' });
  qmp.close();

  const saved = await vm.snapshot(handle, { file: join(stateDir, 'resaved.zst'), chunks: chunkDir(), keepAlive: true });
  expect(saved.bytes).toBeGreaterThan(0);
  expect(await vm.exec(handle, { argv: ['cat', '/root/file'] })).toMatchObject({ exitCode: 0, stdout: 'before\n' });
});

test("the leftover sweep stops a KVM probe whose worker process is gone, and leaves a live process's probe alone", async () => {
  const tools = vmTools();
  const { initrd } = await bareGuestImage({ cacheDir: cacheDir(), files: guestFiles(tools) });
  const gone = spawnSync('true').pid; // a worker process that has exited (killed mid-probe)
  const probes = [`probe-${gone}`, `probe-${process.pid}`].map((name) => join(runRoot, name));
  const pids: number[] = [];
  try {
    for (const dir of probes) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      pids.push(
        await startQemu({ dir, accel: 'tcg', machine: qemuFacts().machine, memoryMiB: 128, vcpus: 1, kernel: tools.kernel, initrd }),
      );
    }
    const docker = new Docker({ socketPath: readTestStack().dockerHost.replace('unix://', '') });
    const swept = await sweepVmLeftovers({ runRoot, cacheDir: cacheDir(), docker }, () => Promise.resolve(false));
    expect(swept.removed).toContain(`probe-${gone}`);
    expect(swept.removed).not.toContain(`probe-${process.pid}`);
    expect([isQemuAlive(pids[0]!, probes[0]!), existsSync(probes[0]!)]).toEqual([false, false]);
    expect([isQemuAlive(pids[1]!, probes[1]!), existsSync(probes[1]!)]).toEqual([true, true]);
  } finally {
    for (const [i, pid] of pids.entries()) await stopQemu(pid, probes[i]!, 0);
    for (const dir of probes) rmSync(dir, { recursive: true, force: true });
  }
});
