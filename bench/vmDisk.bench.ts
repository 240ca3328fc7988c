// vm sessions on the root disk, for a 16 MiB and a 1 GiB agent image (incompressible payloads), as a `small` sandbox:
// cold first boot from the new image; the full-state save (RAM through the migration stream, the path before chunks)
// as a baseline; then sessions after jobs that each write 1 MiB (what a save adds to the chunk store, how long it
// takes, how long the guest is paused); restore of the last session to its first job's output; and a fork of the
// running machine (saved on the spot, restored beside it) to its first output, checked to diverge. The two images
// should cost alike: a session holds what changed, never the image.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { baseDisk } from '../activities/vm/baseDisk';
import { machineFiles } from '../activities/vm/machine';
import { QmpClient } from '../activities/vm/qmp';
import { createVmRuntime, type VmRuntime } from '../activities/vm/runtime';
import type { VmHandle } from '../activities/vm/types';
import { BASE_IMAGE_REF, SIZE_PRESETS } from '../lib/presets';
import { readTestStack } from '../test/support/stackState';
import { spawnSync } from 'node:child_process';
import { treeBytes } from '../activities/storageGc';
import { pullState, pushState } from '../activities/vm/stateArtifacts';
import { freePort, startRegistry, stopProcess } from '../scripts/stack';
import { median, percentile, time } from './measure';

const RUNS = Number(process.env.SNAPFLOW_BENCH_VM_RUNS ?? 10);
const SMALL = SIZE_PRESETS[0]!;
const IMAGES = [
  { name: '16 MiB', tag: 'bench-16m', mib: 16 },
  { name: '1 GiB', tag: 'bench-1g', mib: 1024 },
];
const MIB = 2 ** 20;

/** The base image plus `mib` MiB of random bytes in /payload, committed on the stack's engine. */
async function payloadImage(docker: Docker, tag: string, mib: number): Promise<string> {
  const ref = `snapflow-bench/payload:${tag}`;
  if (
    await docker
      .getImage(ref)
      .inspect()
      .catch(() => undefined)
  )
    return ref;
  const container = await docker.createContainer({
    Image: BASE_IMAGE_REF,
    Cmd: ['sh', '-c', `head -c ${mib * 1048576} /dev/urandom > /payload`],
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await container.start();
    await container.wait();
    await container.commit({ repo: 'snapflow-bench/payload', tag, pause: false });
  } finally {
    await container.remove({ force: true });
  }
  return ref;
}

async function run(vm: VmRuntime, handle: VmHandle, script: string): Promise<string> {
  const job = await vm.exec(handle, { argv: ['sh', '-c', script] });
  if (job.exitCode !== 0) throw new Error(`job failed (${script}): ${job.stderr}`);
  return job.stdout;
}

/** The save before chunks: RAM and disk blocks through the migration stream into one zstd file; the guest resumes. */
async function fullStateSave(handle: VmHandle): Promise<{ ms: number; bytes: number }> {
  // In QEMU's directory (its working directory): the only place its user may write.
  const file = join(machineFiles(handle.dir).qemuDir, 'full.zst');
  const qmp = await QmpClient.connect(machineFiles(handle.dir).qmpSocket);
  try {
    const ms = await time(async () => {
      await qmp.execute('stop');
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [
          { capability: 'x-ignore-shared', state: false },
          { capability: 'block', state: true },
        ],
      });
      await qmp.execute('migrate-set-parameters', { 'max-bandwidth': Number.MAX_SAFE_INTEGER, 'block-incremental': true });
      await qmp.execute('migrate', { uri: `exec:zstd -q -1 -o full.zst` });
      for (;;) {
        const state = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
        if (state.status === 'completed') break;
        if (state.status === 'failed' || state.status === 'cancelled')
          throw new Error(`full-state save ${state.status}: ${state['error-desc']}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    });
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'block', state: false }] });
    await qmp.execute('cont');
    const bytes = statSync(file).size;
    rmSync(file);
    return { ms, bytes };
  } finally {
    qmp.close();
  }
}

interface Figure {
  name: string;
  cold: number;
  baseline: { ms: number; bytes: number };
  first: number;
  save: number[];
  paused: number[];
  bytes: number[];
  restore: number[];
  /** Snapshot storage: the starting machine stored, then its RUNS sessions, then after they are deleted and collected. */
  storage: { start: number; sessions: number; collected: number };
  /** Restores on a host without the state or its chunks: fetched from snapshot storage first. */
  fetched: { ms: number[]; bytes: number };
  fork: number;
}

export async function benchVmDisk(): Promise<void> {
  const docker = new Docker({ socketPath: readTestStack().dockerHost.replace('unix://', '') });
  const scratch = mkdtempSync('/tmp/sfvm-bench-disk-');
  // A cache of its own: every image's first boot is cold (its base disk built), and the host's cache is left alone.
  const cache = join(scratch, 'cache');
  const vm = createVmRuntime({ docker, runRoot: join(scratch, 'run'), cacheDir: cache });
  const chunks = join(scratch, 'chunks');
  const live = new Set<VmHandle>();
  const track = (handle: VmHandle): VmHandle => (live.add(handle), handle);
  const drop = async (handle: VmHandle): Promise<void> => (live.delete(handle), vm.remove(handle));
  const figures: Figure[] = [];
  try {
    for (const image of IMAGES) {
      const ref = await payloadImage(docker, image.tag, image.mib);
      const machine = { memoryMiB: SMALL.memoryMiB, vcpus: SMALL.vcpus, diskMiB: SMALL.diskMiB };
      // Cold first boot from a new image: its base disk is built, then the machine boots to its first job's output.
      let source!: VmHandle;
      const cold = await time(async () => {
        await baseDisk(docker, ref, { cacheDir: cache, diskMiB: machine.diskMiB });
        source = track(await vm.create({ id: `disk-${image.tag}`, image: ref, ...machine }));
        await run(vm, source, 'true');
      });
      await run(vm, source, 'sleep 100000 >/dev/null 2>&1 & echo $! > /root/bg');
      const baseline = await fullStateSave(source);
      const file = (n: string) => join(scratch, 'state', `${image.tag}-${n}.zst`);
      const first = await vm.snapshot(source, { file: file('first'), chunks, keepAlive: true });
      const figure: Figure = {
        name: image.name,
        cold,
        baseline,
        first: first.newBytes!,
        save: [],
        paused: [],
        bytes: [],
        restore: [],
        fetched: { ms: [], bytes: 0 },
        storage: { start: 0, sessions: 0, collected: 0 },
        fork: 0,
      };
      let last = first;
      for (let i = 0; i < RUNS; i++) {
        await run(vm, source, `head -c 1048576 /dev/urandom > /root/written-${i} && sync`);
        last = await vm.snapshot(source, { file: file(`s${i}`), chunks, keepAlive: true });
        figure.save.push(last.savedMs);
        figure.paused.push(last.pausedMs!);
        figure.bytes.push(last.newBytes!);
      }
      for (let i = 0; i < RUNS; i++) {
        let restored!: VmHandle;
        figure.restore.push(
          await time(async () => {
            restored = track(await vm.restore({ id: `disk-${image.tag}-r${i}`, file: last.file, chunks }));
            const out = await run(vm, restored, `wc -c < /root/written-${RUNS - 1}`);
            if (out.trim() !== '1048576') throw new Error(`restored machine lost the job's file: ${out}`);
          }),
        );
        await drop(restored);
      }
      // A host that has neither the state nor its chunks: device state and chunks come from snapshot storage.
      const { storage } = readTestStack();
      const target = {
        registry: storage.registryHost,
        repository: `snapflow/bench/${image.tag}`,
        credentials: { username: storage.username, password: storage.password },
      };
      const stored = await pushState(target, last.file, 'last', { chunks });
      for (let i = 0; i < Math.min(RUNS, 5); i++) {
        const empty = join(scratch, `empty-${i}`);
        let restored!: VmHandle;
        figure.fetched.ms.push(
          await time(async () => {
            const ref = `${storage.registryHost}/${target.repository}@${stored.digest}`;
            const pulled = await pullState(target, stored.digest, empty, ref, join(empty, 'chunks'));
            figure.fetched.bytes = pulled.bytes;
            restored = track(await vm.restore({ id: `disk-${image.tag}-c${i}`, file: pulled.file, chunks: join(empty, 'chunks') }));
            await run(vm, restored, `wc -c < /root/written-${RUNS - 1}`);
          }),
        );
        await drop(restored);
        rmSync(empty, { recursive: true, force: true });
      }
      figure.storage = await storageCycle(
        scratch,
        image.tag,
        [first.file],
        Array.from({ length: RUNS }, (_, i) => file(`s${i}`)),
        chunks,
      );
      // Fork: the running machine saved on the spot and restored beside it; both go on, apart.
      let fork!: VmHandle;
      figure.fork = await time(async () => {
        const saved = await vm.snapshot(source, { file: file('fork'), chunks, keepAlive: true });
        fork = track(await vm.restore({ id: `disk-${image.tag}-fork`, file: saved.file, chunks }));
        await run(vm, fork, 'true');
      });
      await run(vm, fork, 'kill -0 "$(cat /root/bg)" && echo fork > /root/only-fork');
      const diverged = await vm.exec(source, { argv: ['test', '-e', '/root/only-fork'] });
      if (diverged.exitCode === 0) throw new Error('a file written in the fork is in its source');
      await drop(fork);
      await drop(source);
      figures.push(figure);
      const p50 = median;
      console.log(
        `  ${image.name} image, small (${machine.memoryMiB} MiB RAM): cold first boot ${(cold / 1000).toFixed(1)} s (base disk built); ` +
          `full-state save ${(baseline.bytes / MIB).toFixed(1)} MiB in ${baseline.ms.toFixed(0)} ms; first chunked save ${(figure.first / MIB).toFixed(1)} MiB`,
      );
      console.log(
        `    session after a 1 MiB write: ${(p50(figure.bytes) / MIB).toFixed(2)} MiB added (max ${(Math.max(...figure.bytes) / MIB).toFixed(2)}), ` +
          `saved in p50 ${p50(figure.save).toFixed(0)} ms (paused ${p50(figure.paused).toFixed(0)} ms); ${RUNS} sessions added ` +
          `${(figure.bytes.reduce((a, b) => a + b, 0) / MIB).toFixed(1)} MiB; restore to first job output p50 ${p50(figure.restore).toFixed(0)} ms, ` +
          `p95 ${percentile(figure.restore, 95).toFixed(0)} ms; fork to first output ${figure.fork.toFixed(0)} ms`,
      );
      console.log(
        `    on a host without the state or its chunks: fetched ${(figure.fetched.bytes / MIB).toFixed(1)} MiB from snapshot storage, ` +
          `restore to first job output p50 ${median(figure.fetched.ms).toFixed(0)} ms (${figure.fetched.ms.length} runs)`,
      );
      const { start, sessions, collected } = figure.storage;
      console.log(
        `    snapshot storage: ${(start / MIB).toFixed(1)} MiB with the starting machine, +${((sessions - start) / MIB).toFixed(1)} MiB ` +
          `for its ${RUNS} sessions; after deleting them and garbage collection ${(collected / MIB).toFixed(1)} MiB`,
      );
    }
    const [small, large] = figures as [Figure, Figure];
    const check = (ok: boolean, line: string) => console.log(`${ok ? '✓' : '✗'} ${line}`);
    const bytes = median(large.bytes);
    check(bytes <= 16 * MIB, `vm session bytes after a 1 MiB write, 1 GiB image: ${(bytes / MIB).toFixed(2)} MiB (target ≤ 16 MiB)`);
    check(median(large.save) <= 1000, `vm session save, 1 GiB image: p50 ${median(large.save).toFixed(0)} ms (target ≤ 1000 ms)`);
    const ratio = Math.max(median(small.bytes), bytes) / Math.min(median(small.bytes), bytes);
    check(ratio <= 1.5, `vm session bytes, 16 MiB vs 1 GiB image: within ${ratio.toFixed(2)}× (target ≤ 1.5×)`);
    for (const f of figures) {
      check(median(f.restore) <= 300, `vm restore to first output, ${f.name}: p50 ${median(f.restore).toFixed(0)} ms (target ≤ 300 ms)`);
      check(
        percentile(f.restore, 95) <= 500,
        `vm restore to first output, ${f.name}: p95 ${percentile(f.restore, 95).toFixed(0)} ms (target ≤ 500 ms)`,
      );
      check(f.fork <= 1000, `vm fork to first output, ${f.name}: ${f.fork.toFixed(0)} ms (target ≤ 1000 ms)`);
      const total = f.bytes.reduce((a, b) => a + b, 0);
      check(total <= RUNS * 16 * MIB, `vm ${RUNS} sessions, ${f.name}: ${(total / MIB).toFixed(1)} MiB added (target ≤ ${RUNS * 16} MiB)`);
    }
    for (const f of figures) {
      const { start, collected } = f.storage;
      check(
        Math.abs(collected - start) <= start * 0.05,
        `vm storage after deleting ${RUNS} sessions + gc, ${f.name}: within ${((100 * Math.abs(collected - start)) / start).toFixed(1)}% of the start (target ≤ 5%)`,
      );
    }
    const restoreRatio = Math.max(median(small.restore), median(large.restore)) / Math.min(median(small.restore), median(large.restore));
    check(restoreRatio <= 1.3, `vm restore p50, 16 MiB vs 1 GiB image: within ${restoreRatio.toFixed(2)}× (target ≤ 1.3×)`);
  } finally {
    for (const handle of live) await vm.remove(handle).catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * A registry of its own (garbage collection must not race anything else): the starting machine is stored, then the
 * sessions; storage is measured, the sessions' manifests deleted (what destroy and prune do) and the registry's own
 * garbage collection run; storage is measured again.
 */
async function storageCycle(
  scratch: string,
  tag: string,
  kept: string[],
  sessions: string[],
  chunks: string,
): Promise<{ start: number; sessions: number; collected: number }> {
  const dir = join(scratch, `registry-${tag}`);
  const credentials = { username: 'bench', password: 'bench-storage' };
  const registry = await startRegistry({ dir, port: await freePort(), ...credentials });
  try {
    const target = { registry: new URL(registry.url).host, repository: `snapflow/sessions/bench/${tag}`, credentials };
    for (const [i, file] of kept.entries()) await pushState(target, file, `kept-${i}`, { chunks });
    const start = treeBytes(join(dir, 'data'));
    const digests: string[] = [];
    for (const [i, file] of sessions.entries()) digests.push((await pushState(target, file, `s${i}`, { chunks })).digest);
    const stored = treeBytes(join(dir, 'data'));
    const auth = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    for (const digest of digests) {
      const res = await fetch(`${registry.url}/v2/${target.repository}/manifests/${digest}`, {
        method: 'DELETE',
        headers: { authorization: auth },
      });
      if (res.status !== 202) throw new Error(`deleting ${digest} answered ${res.status}`);
    }
    const gc = spawnSync('docker-registry', ['garbage-collect', join(dir, 'config.yml')], { encoding: 'utf8' });
    if (gc.status !== 0) throw new Error(`garbage-collect failed: ${gc.stderr}`);
    return { start, sessions: stored, collected: treeBytes(join(dir, 'data')) };
  } finally {
    await stopProcess(registry);
  }
}
