// How every container made from a tenant image is confined: sandboxes, golden build scratch sandboxes, boot checks
// and entrypoint checks alike. The image and whatever runs in it are the tenant's; the host gives them this much.
import type Docker from 'dockerode';
import { SIZE_PRESETS, findPreset, type SizePreset } from '../lib/presets';

/**
 * What a root-in-container agent needs to install and run software in its own filesystem, and no more:
 * CHOWN, DAC_OVERRIDE and FOWNER to unpack and fix up files of any owner (package managers, tar, git checkouts),
 * SETUID and SETGID to drop to another user (su, a build running as `node`), KILL to end a job's processes whatever
 * user they run as. Dropped from Docker's default set: MKNOD (device nodes), NET_RAW and NET_BIND_SERVICE (no
 * network), SYS_CHROOT, SETFCAP and SETPCAP (granting capabilities to files and processes), FSETID, AUDIT_WRITE.
 */
export const SANDBOX_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETUID', 'SETGID', 'KILL'] as const;

/** Processes and threads per container: room for a build's workers, not for a fork bomb to reach its neighbours. */
export const SANDBOX_PIDS_LIMIT = 1024;

/** The size a container is confined to; a call that names no known size gets the smallest one, never none. */
export function confinementSize(size: string | undefined): SizePreset {
  return (size ? findPreset(size) : undefined) ?? SIZE_PRESETS.reduce((a, b) => (a.memoryMiB <= b.memoryMiB ? a : b));
}

/**
 * HostConfig for a container made from a tenant image: no network, not privileged, no capabilities beyond
 * SANDBOX_CAPABILITIES, no privilege gained through setuid files (no-new-privileges), a pids limit, and the size's
 * memory (swap included, so memory is the whole budget) and CPUs. An init process (Docker's tini) is PID 1 so that
 * what a job leaves behind is reaped: without it, a killed fork bomb's zombies would hold the pids limit for good.
 */
export function tenantHostConfig(size: string | undefined): Docker.HostConfig {
  const preset = confinementSize(size);
  const memory = preset.memoryMiB * 1024 * 1024;
  return {
    NetworkMode: 'none',
    Privileged: false,
    CapDrop: ['ALL'],
    CapAdd: [...SANDBOX_CAPABILITIES],
    SecurityOpt: ['no-new-privileges'],
    PidsLimit: SANDBOX_PIDS_LIMIT,
    Init: true,
    Memory: memory,
    MemorySwap: memory,
    NanoCpus: preset.vcpus * 1e9,
  };
}

/** Why a tenant container ended, when the host's limits ended it: said in the failure instead of a bare exit code. */
export function limitKilled(state: { OOMKilled?: boolean }, size: string | undefined): string | undefined {
  return state.OOMKilled ? `it was killed for using more than its ${confinementSize(size).memoryMiB} MiB of memory` : undefined;
}
