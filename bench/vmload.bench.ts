// vm boots on a saturated host: `stress-ng` keeps every core and the disk busy (a CPU hog per core and an I/O hog)
// while guests boot one after another; each boot ends ready (the guest agent answered), in a kernel panic, or
// silent past its deadline. Run once with the product's kernel command line, once without the settings that make
// a guest indifferent to a slow host (`SNAPFLOW_BENCH_VMLOAD_VARIANTS=product,bare`), or with any candidate added:
// `SNAPFLOW_BENCH_VMLOAD_EXTRA='tsc=unstable'`; `SNAPFLOW_BENCH_VMLOAD_CPU_HOGS=6` loads harder than a hog per core.
// Target: every boot ready, no panic. No stack needed.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { bareGuestImage, guestFiles } from '../activities/vm/guestImage';
import { KERNEL_ARGS, cacheDir, machineFiles, qemuFacts, startQemu, stopQemu, vmTools, waitForAgent } from '../activities/vm/machine';
import { startHogs } from '../test/chaos/load';
import { median } from './measure';

const BOOTS = Number(process.env.SNAPFLOW_BENCH_VMLOAD_BOOTS ?? 20);
const VCPUS = Number(process.env.SNAPFLOW_BENCH_VMLOAD_VCPUS ?? 1);
const DEADLINE_MS = 120_000;
/** The settings this runtime adds for loaded hosts; `bare` boots without them. */
const LOAD_SETTINGS = ['no_timer_check'];

type Outcome = 'ready' | 'panic' | 'silent' | 'exited';

async function bootOnce(dir: string, append: string, initrd: string): Promise<{ outcome: Outcome; ms: number; tail: string }> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tools = vmTools();
  const started = Date.now();
  const pid = await startQemu({
    dir,
    accel: 'tcg',
    machine: qemuFacts().machine,
    memoryMiB: 512,
    vcpus: VCPUS,
    kernel: tools.kernel,
    initrd,
    kernelArgs: append,
  });
  let outcome: Outcome = 'ready';
  try {
    (await waitForAgent(pid, dir, DEADLINE_MS)).close();
  } catch (err) {
    outcome = /QEMU exited/.test((err as Error).message) ? 'exited' : 'silent';
  }
  const ms = Date.now() - started;
  await stopQemu(pid, dir, 0);
  let log = '';
  try {
    log = readFileSync(machineFiles(dir).console, 'utf8');
  } catch {
    // no console
  }
  if (/Kernel panic/.test(log)) outcome = 'panic';
  return { outcome, ms, tail: log.trimEnd().split('\n').slice(-3).join(' | ') };
}

export async function benchVmLoad(): Promise<void> {
  const tools = vmTools();
  const { initrd } = await bareGuestImage({ cacheDir: cacheDir(), files: guestFiles(tools) });
  const extra = process.env.SNAPFLOW_BENCH_VMLOAD_EXTRA ?? '';
  const bare = KERNEL_ARGS.split(' ')
    .filter((a) => !LOAD_SETTINGS.includes(a))
    .join(' ');
  const lines: Record<string, string> = { product: KERNEL_ARGS, bare, extra: `${KERNEL_ARGS} ${extra}`.trim() };
  const variants = (process.env.SNAPFLOW_BENCH_VMLOAD_VARIANTS ?? (extra ? 'extra' : 'product')).split(',');
  const scratch = mkdtempSync(join(tmpdir(), 'sfvl-'));
  const cpuHogs = Number(process.env.SNAPFLOW_BENCH_VMLOAD_CPU_HOGS ?? cpus().length);
  const hogs = startHogs({ cpu: cpuHogs });
  let allReady = true;
  try {
    await new Promise((r) => setTimeout(r, 2_000)); // the hogs up to speed
    console.log(`vmload: ${BOOTS} TCG boots per variant, ${VCPUS} vCPU, 512 MiB, with stress-ng --cpu ${cpuHogs} --io 1 running`);
    for (const variant of variants) {
      const append = lines[variant];
      if (!append) throw new Error(`unknown variant ${variant} (product, bare, extra)`);
      const counts: Record<Outcome, number> = { ready: 0, panic: 0, silent: 0, exited: 0 };
      const readyMs: number[] = [];
      for (let i = 0; i < BOOTS; i++) {
        const r = await bootOnce(join(scratch, `${variant}-${i}`), append, initrd);
        counts[r.outcome]++;
        if (r.outcome === 'ready') readyMs.push(r.ms);
        else console.log(`  ${variant} boot ${i}: ${r.outcome} after ${r.ms} ms: ${r.tail}`);
        rmSync(join(scratch, `${variant}-${i}`), { recursive: true, force: true });
      }
      const ok = counts.ready === BOOTS;
      allReady &&= variant !== 'product' || ok;
      console.log(
        `${ok ? '✓' : '✗'} vmload ${variant} [${append}]: ${counts.ready}/${BOOTS} ready, ${counts.panic} kernel panics, ` +
          `${counts.silent} silent, ${counts.exited} exited otherwise; ready p50 ${readyMs.length ? median(readyMs).toFixed(0) : '-'} ms`,
      );
    }
  } finally {
    hogs.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
  if (!allReady) process.exitCode = 1;
}
