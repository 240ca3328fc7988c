// vm sessions on the root disk, for a 16 MiB and a 1 GiB agent image (incompressible payloads): a job writes 1 MiB,
// the machine is saved (state bytes, save time), then restored to its first job's output, several runs each. The two
// images should cost alike: a session holds memory, devices and the blocks the job wrote, never the image.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { baseDisk } from '../activities/vm/baseDisk';
import { cacheDir } from '../activities/vm/machine';
import { createVmRuntime } from '../activities/vm/runtime';
import type { VmHandle } from '../activities/vm/types';
import { BASE_IMAGE_REF, SIZE_PRESETS } from '../lib/presets';
import { readTestStack } from '../test/support/stackState';
import { median, percentile, time } from './measure';

const RUNS = Number(process.env.SNAPFLOW_BENCH_VM_RUNS ?? 5);
const MEMORY_MIB = 512;
const DISK_MIB = SIZE_PRESETS[0]!.diskMiB;
const IMAGES = [
  { name: '16 MiB', tag: 'bench-16m', mib: 16 },
  { name: '1 GiB', tag: 'bench-1g', mib: 1024 },
];

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

export async function benchVmDisk(): Promise<void> {
  const docker = new Docker({ socketPath: readTestStack().dockerHost.replace('unix://', '') });
  const scratch = mkdtempSync('/tmp/sfvm-bench-disk-');
  const vm = createVmRuntime({ docker, runRoot: join(scratch, 'run') });
  const live = new Set<VmHandle>();
  const figures: Array<{ name: string; save: number; bytes: number; restore50: number; restore95: number }> = [];
  try {
    for (const image of IMAGES) {
      const ref = await payloadImage(docker, image.tag, image.mib);
      const built = await time(() => baseDisk(docker, ref, { cacheDir: cacheDir(), diskMiB: DISK_MIB }));
      const samples = { save: [] as number[], bytes: [] as number[], restore: [] as number[] };
      for (let run = 0; run < RUNS; run++) {
        const handle = await vm.create({ id: `disk-${image.tag}-${run}`, image: ref, memoryMiB: MEMORY_MIB, vcpus: 1, diskMiB: DISK_MIB });
        live.add(handle);
        const job = await vm.exec(handle, { argv: ['sh', '-c', 'head -c 1048576 /dev/urandom > /root/written && sync'] });
        if (job.exitCode !== 0) throw new Error(`the job failed: ${job.stderr}`);
        const file = join(scratch, 'state', `${image.tag}-${run}.zst`);
        const saved = await vm.snapshot(handle, { file, keepAlive: false });
        live.delete(handle);
        samples.save.push(saved.savedMs);
        samples.bytes.push(saved.bytes);
        let restored: VmHandle | undefined;
        samples.restore.push(
          await time(async () => {
            restored = await vm.restore({ id: `disk-${image.tag}-r${run}`, file });
            live.add(restored);
            const first = await vm.exec(restored, { argv: ['wc', '-c', '/root/written'] });
            if (!first.stdout.startsWith('1048576')) throw new Error(`restored machine lost the job's file: ${first.stdout}`);
          }),
        );
        await vm.remove(restored!);
        live.delete(restored!);
        rmSync(join(scratch, 'state'), { recursive: true, force: true });
      }
      const figure = {
        name: image.name,
        save: median(samples.save),
        bytes: median(samples.bytes),
        restore50: median(samples.restore),
        restore95: percentile(samples.restore, 95),
      };
      figures.push(figure);
      console.log(
        `  ${image.name} image (base disk built in ${(built / 1000).toFixed(1)} s, cached after): session after a 1 MiB write ` +
          `${(figure.bytes / 2 ** 20).toFixed(1)} MiB zstd, saved in ${figure.save.toFixed(0)} ms; restore to first job output ` +
          `p50 ${figure.restore50.toFixed(0)} ms, p95 ${figure.restore95.toFixed(0)} ms (${RUNS} runs, ${MEMORY_MIB} MiB RAM)`,
      );
    }
    const [small, large] = figures as [(typeof figures)[0], (typeof figures)[0]];
    const ratio = large.bytes / small.bytes;
    console.log(
      `${ratio <= 1.5 ? '✓' : '✗'} vm session bytes, 1 GiB image ÷ 16 MiB image: ${ratio.toFixed(2)} (target ≤ 1.5: the image is not in the session)`,
    );
  } finally {
    for (const handle of live) await vm.remove(handle).catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  }
}
