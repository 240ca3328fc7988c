// vm sandboxes: cold boot to first job, preload, snapshot (size, time), and restore from a local state file to
// first job, p50 over several runs, under whichever accel the probe picks. Target: restore under 1 s p50 and at
// least 5× faster than a cold boot plus the same preload.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { baseDisk } from '../activities/vm/baseDisk';
import { cacheDir } from '../activities/vm/machine';
import { createVmRuntime } from '../activities/vm/runtime';
import type { VmHandle } from '../activities/vm/types';
import { BASE_IMAGE_REF, SIZE_PRESETS } from '../lib/presets';
import { readTestStack } from '../test/support/stackState';
import { median, report, time } from './measure';

const RUNS = Number(process.env.SNAPFLOW_BENCH_VM_RUNS ?? 5);
const MEMORY_MIB = 512;
/** What a golden build does before saving: write a tree of files and leave a service running. */
const PRELOAD = [
  'sh',
  '-c',
  'mkdir -p /workspace/repo && for d in 1 2 3 4 5 6 7 8; do for f in 1 2 3 4 5 6 7 8 9 10; do seq 1 500 > /workspace/repo/$d-$f; done; done; sleep 100000 >/dev/null 2>&1 &',
];

export async function benchVm(): Promise<void> {
  const docker = new Docker({ socketPath: readTestStack().dockerHost.replace('unix://', '') });
  const scratch = mkdtempSync('/tmp/sfvm-bench-');
  const vm = createVmRuntime({ docker, runRoot: join(scratch, 'run') });
  const live = new Set<VmHandle>();
  try {
    const probe = await vm.probeAccel();
    console.log(
      `vm: accel ${probe.accel} (${probe.detail}); QEMU ${probe.qemuVersion}, kernel ${probe.kernel}, ${MEMORY_MIB} MiB, ${RUNS} runs`,
    );
    await baseDisk(docker, BASE_IMAGE_REF, { cacheDir: cacheDir(), diskMiB: SIZE_PRESETS[0]!.diskMiB }); // built once, not measured
    const samples = { cold: [] as number[], preload: [] as number[], save: [] as number[], bytes: [] as number[], restore: [] as number[] };
    for (let run = 0; run < RUNS; run++) {
      let handle: VmHandle | undefined;
      samples.cold.push(
        await time(async () => {
          handle = await vm.create({ id: `cold-${run}`, image: BASE_IMAGE_REF, memoryMiB: MEMORY_MIB, vcpus: 1 });
          live.add(handle);
          await firstJob(vm, handle);
        }),
      );
      samples.preload.push(await time(() => vm.exec(handle!, { argv: PRELOAD })));
      const file = join(scratch, 'state', `run-${run}.zst`);
      const saved = await vm.snapshot(handle!, { file, chunks: join(scratch, 'state', 'chunks'), keepAlive: false });
      live.delete(handle!);
      samples.save.push(saved.savedMs);
      samples.bytes.push(saved.newBytes ?? saved.bytes);
      samples.restore.push(
        await time(async () => {
          handle = await vm.restore({ id: `restored-${run}`, file, chunks: join(scratch, 'state', 'chunks') });
          live.add(handle);
          await firstJob(vm, handle);
        }),
      );
      await vm.remove(handle!);
      live.delete(handle!);
      rmSync(join(scratch, 'state'), { recursive: true, force: true });
    }
    const p50 = (values: number[]): number => median(values);
    console.log(
      `  p50: cold boot to first job ${p50(samples.cold).toFixed(0)} ms, preload ${p50(samples.preload).toFixed(0)} ms, ` +
        `snapshot ${p50(samples.save).toFixed(0)} ms / ${(p50(samples.bytes) / 1024 / 1024).toFixed(1)} MiB added to the chunk store, ` +
        `restore to first job ${p50(samples.restore).toFixed(0)} ms`,
    );
    const restore = p50(samples.restore);
    console.log(
      `${restore < 1000 ? '✓' : '✗'} vm restore to first job p50: ${restore.toFixed(0)} ms (target < 1000 ms, accel ${probe.accel})`,
    );
    const channel = await vm.create({ id: 'channel', image: BASE_IMAGE_REF, memoryMiB: MEMORY_MIB, vcpus: 1 });
    live.add(channel);
    await channelThroughput(vm, channel);
    const coldPlusPreload = p50(samples.cold.map((cold, i) => cold + samples.preload[i]!));
    report(`vm (cold boot + preload) / restore, accel ${probe.accel}`, coldPlusPreload, restore, {
      target: '≥ 5',
      ok: coldPlusPreload / restore >= 5,
    });
  } finally {
    for (const handle of live) await vm.remove(handle).catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function firstJob(vm: ReturnType<typeof createVmRuntime>, handle: VmHandle): Promise<void> {
  const result = await vm.exec(handle, { argv: ['true'] });
  if (result.exitCode !== 0) throw new Error(`first job failed: ${result.stderr}`);
}

/** The agent channel's rate: a job printing 30 MB and then `tail-mark`, every byte of it streamed to the host. */
export async function channelThroughput(vm: ReturnType<typeof createVmRuntime>, handle: VmHandle, bytes = 30_000_000): Promise<number> {
  const expected = createHash('sha256').update(Buffer.alloc(bytes, 'a')).update('tail-mark\n').digest('hex');
  const streamed = createHash('sha256');
  let received = 0;
  const started = Date.now();
  const result = await vm.exec(
    handle,
    { argv: ['sh', '-c', `head -c ${bytes} /dev/zero | tr '\\0' a; echo tail-mark`] },
    (stream, chunk) => {
      if (stream !== 'stdout') return;
      streamed.update(chunk);
      received += chunk.length;
    },
  );
  const seconds = (Date.now() - started) / 1000;
  const exact = result.exitCode === 0 && streamed.digest('hex') === expected;
  const rate = received / 1e6 / seconds;
  console.log(
    `${exact && seconds <= 15 ? '✓' : '✗'} vm agent channel: ${(received / 1e6).toFixed(1)} MB + tail-mark in ${seconds.toFixed(1)} s = ` +
      `${rate.toFixed(2)} MB/s, ${exact ? 'byte-exact' : 'NOT byte-exact'} (target ≤ 15 s)`,
  );
  return rate;
}
