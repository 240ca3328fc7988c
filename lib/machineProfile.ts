// A saved machine restores only onto the same QEMU version, machine type, accel, RAM, vCPUs, kernel and device
// layout: together they are its machine profile. Pure, so restore resolution (and workflows) can name the part that differs.

const PARTS = ['QEMU version', 'machine type', 'accel', 'RAM', 'vCPUs', 'kernel', 'device layout'] as const;
/** Profiles saved before the layout was part of them: their agent channel was a UART. */
const FIRST_LAYOUT = 'devices-1';

export interface MachineFacts {
  qemuVersion: string;
  machine: string;
  accel: string;
  memoryMiB: number;
  vcpus: number;
  kernelVersion: string;
  /** Bumped whenever the command line's devices change (see activities/vm/machine.ts). */
  deviceLayout: number;
}

/** `qemu-7.2.9/pc-i440fx-7.2/tcg/512m/1cpu/6.1.0-41-cloud-amd64/devices-2` */
export function machineProfile(f: MachineFacts): string {
  return [
    `qemu-${f.qemuVersion}`,
    f.machine,
    f.accel,
    `${f.memoryMiB}m`,
    `${f.vcpus}cpu`,
    f.kernelVersion,
    `devices-${f.deviceLayout}`,
  ].join('/');
}

/** What differs between a saved machine's profile and a host's, in words ("accel tcg, host kvm"). */
export function machineDifference(saved: string, host: string | undefined): string {
  if (!host) return 'no online host runs vm sandboxes of this size';
  const [a, b] = [withLayout(saved.split('/')), withLayout(host.split('/'))];
  const diffs = PARTS.flatMap((part, i) => (a[i] === b[i] ? [] : [`${part} ${a[i] ?? '?'} (host: ${b[i] ?? '?'})`]));
  return diffs.length ? `it differs in ${diffs.join(', ')}` : 'it matches no eligible host';
}

function withLayout(parts: string[]): string[] {
  return parts.length === PARTS.length - 1 ? [...parts, FIRST_LAYOUT] : parts;
}
