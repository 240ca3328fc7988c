// KVM where it works, TCG otherwise. /dev/kvm can open and still hang a stock kernel (a nested device), so the
// answer comes from a probe boot with a deadline, once per worker process.
import { closeSync, constants, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { bareGuestImage, guestFiles } from './guestImage';
import { cacheDir, defaultRunRoot, privateDir, qemuFacts, startQemu, stopQemu, vmTools, waitForAgent } from './machine';
import type { Accel } from './types';

export interface AccelProbe {
  accel: Accel;
  /** Why: what the probe saw, for doctor, the host's announcement and the bench. */
  detail: string;
  qemuVersion: string;
  kernel: string;
}

export interface ProbeOptions {
  runRoot?: string;
  cacheDir?: string;
  /** How long a KVM probe boot may take to reach the guest agent. */
  kvmDeadlineMs?: number;
}

let probed: Promise<AccelProbe> | undefined;

/** Cached for the life of the process; SNAPFLOW_VM_ACCEL=kvm|tcg skips the probe. */
export function probeAccel(opts: ProbeOptions = {}): Promise<AccelProbe> {
  return (probed ??= runProbe(opts).catch((err: unknown) => {
    probed = undefined;
    throw err;
  }));
}

async function runProbe(opts: ProbeOptions): Promise<AccelProbe> {
  const tools = vmTools();
  const base = { qemuVersion: qemuFacts().version, kernel: tools.kernelVersion };
  const forced = process.env.SNAPFLOW_VM_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { ...base, accel: forced, detail: 'set by SNAPFLOW_VM_ACCEL' };
  try {
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
  } catch (err) {
    return { ...base, accel: 'tcg', detail: `/dev/kvm unusable (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
  const deadlineMs = opts.kvmDeadlineMs ?? 8_000;
  const { initrd } = await bareGuestImage({ cacheDir: opts.cacheDir ?? cacheDir(), files: guestFiles(tools) });
  const dir = join(privateDir(opts.runRoot ?? defaultRunRoot()), `probe-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  let pid: number | undefined;
  const started = Date.now();
  try {
    pid = await startQemu({ dir, accel: 'kvm', machine: qemuFacts().machine, memoryMiB: 256, vcpus: 1, kernel: tools.kernel, initrd });
    const agent = await waitForAgent(pid, dir, deadlineMs);
    agent.close();
    return { ...base, accel: 'kvm', detail: `KVM probe boot answered in ${Date.now() - started} ms` };
  } catch (err) {
    // The reason (QEMU's own last word when it exited: a vm user without access to /dev/kvm) and the console's last line.
    const lines = (err as Error).message.split('\n').filter(Boolean);
    const reason = (lines[0] ?? '').replace(/; console:$/, '').trim();
    const last = lines.length > 1 ? ` / ${lines[lines.length - 1]!.trim()}` : '';
    return {
      ...base,
      accel: 'tcg',
      detail: `KVM probe boot failed after ${Date.now() - started} ms (deadline ${deadlineMs} ms), using TCG: ${reason}${last}`,
    };
  } finally {
    if (pid) await stopQemu(pid, dir, 500);
    rmSync(dir, { recursive: true, force: true });
  }
}
