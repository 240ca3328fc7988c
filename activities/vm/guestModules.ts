// The kernel modules the guest agent loads before it opens its channel and mounts its root: the Debian cloud kernel
// builds virtio as modules, the agent's port is a virtio-serial port and the root is a virtio-blk disk. One list, in load order (each needs the ones before it);
// the agent loads every file under /.snapflow/modules in name order, so the index prefix is the order.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SnapflowError } from '../../lib/errors';

export const GUEST_MODULES_DIR = '/.snapflow/modules';

/** Module name → its path under the kernel's `lib/modules/<version>/kernel/`. */
const CHANNEL_MODULES: ReadonlyArray<readonly [name: string, path: string]> = [
  ['virtio_ring', 'drivers/virtio/virtio_ring.ko'],
  ['virtio', 'drivers/virtio/virtio.ko'],
  ['virtio_pci_modern_dev', 'drivers/virtio/virtio_pci_modern_dev.ko'],
  ['virtio_pci_legacy_dev', 'drivers/virtio/virtio_pci_legacy_dev.ko'],
  ['virtio_pci', 'drivers/virtio/virtio_pci.ko'],
  ['virtio_console', 'drivers/char/virtio_console.ko'],
  ['virtio_blk', 'drivers/block/virtio_blk.ko'],
];

/** A host file placed in every guest at `guestPath` (under /.snapflow) with `mode`, owned by root. */
export interface GuestFile {
  guestPath: string;
  hostPath: string;
  mode: number;
}

/**
 * The module files for the guest kernel at `kernel` (provisioning unpacks the kernel package whole, so its modules
 * sit at `<package>/lib/modules/<version>/` beside `<package>/boot/vmlinuz-<version>`). The package ships them
 * uncompressed (CONFIG_MODULE_COMPRESS_NONE): finit_module takes them as they are.
 */
export function guestModuleFiles(tools: { kernel: string; kernelVersion: string }): GuestFile[] {
  const modules = join(dirname(dirname(tools.kernel)), 'lib', 'modules', tools.kernelVersion, 'kernel');
  return CHANNEL_MODULES.map(([name, path], i) => {
    const hostPath = join(modules, path);
    if (!existsSync(hostPath)) {
      throw new SnapflowError({
        code: 'VM_UNAVAILABLE',
        message: `the guest kernel's module ${name} is missing (looked for ${hostPath})`,
        hint: 'run bash scripts/provision.sh',
      });
    }
    return { guestPath: `${GUEST_MODULES_DIR}/${String(i).padStart(2, '0')}-${name}.ko`, hostPath, mode: 0o644 };
  });
}
