// A saved machine restores only onto the same QEMU version, machine type, accel, RAM, vCPUs and kernel: together
// they are its machine profile. Pure, so restore resolution (and workflows) can name the part that differs.

const PARTS = ['QEMU version', 'machine type', 'accel', 'RAM', 'vCPUs', 'kernel'] as const;

export interface MachineFacts {
  qemuVersion: string;
  machine: string;
  accel: string;
  memoryMiB: number;
  vcpus: number;
  kernelVersion: string;
}

/** `qemu-7.2.9/pc-i440fx-7.2/tcg/512m/1cpu/6.1.0-41-cloud-amd64` */
export function machineProfile(f: MachineFacts): string {
  return [`qemu-${f.qemuVersion}`, f.machine, f.accel, `${f.memoryMiB}m`, `${f.vcpus}cpu`, f.kernelVersion].join('/');
}

/** What differs between a saved machine's profile and a host's, in words ("accel tcg, host kvm"). */
export function machineDifference(saved: string, host: string | undefined): string {
  if (!host) return 'no online host runs vm sandboxes of this size';
  const [a, b] = [saved.split('/'), host.split('/')];
  const diffs = PARTS.flatMap((part, i) => (a[i] === b[i] ? [] : [`${part} ${a[i] ?? '?'} (host: ${b[i] ?? '?'})`]));
  return diffs.length ? `it differs in ${diffs.join(', ')}` : 'it matches no eligible host';
}
