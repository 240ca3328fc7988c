import type { ChunkMap } from './chunks';

// The VM runtime's own shapes (activities/vm/runtime.ts): a guest job and its outcome, a machine's handle, saved
// machines. The seam both sandbox backends implement is activities/sandbox/backend.ts; these are what its vm side
// (activities/sandbox/vm/) passes to the machines it runs.
export interface ExecJob {
  argv: string[];
  env?: Record<string, string>;
  workdir?: string;
  /** The guest kills the job's process group after this long; the result says `timedOut`. */
  timeoutMs?: number;
}

export interface ExecOutcome {
  exitCode: number;
  timedOut: boolean;
  /** Kept up to a cap per stream; the listener sees every byte as it arrives. */
  stdout: string;
  stderr: string;
}

export type OutputListener = (stream: 'stdout' | 'stderr', chunk: Buffer) => void;

/** A consumer of a job's output that can fall behind (the log store): the guest is held back until it catches up. */
export interface OutputBackpressure {
  behind(): boolean;
  drained(): Promise<void>;
}

export type Accel = 'kvm' | 'tcg';

/** Everything needed to act on a running VM from any process; also written to `<dir>/vm.json`. */
export interface VmHandle {
  id: string;
  /** The one directory holding the VM's sockets, pidfile, console log and handle. */
  dir: string;
  pid: number;
  accel: Accel;
  machine: string;
  /** QEMU's `-cpu` model (a saved machine restores only with the same one). */
  cpu: string;
  memoryMiB: number;
  vcpus: number;
  kernel: { path: string; version: string };
  /** The machine profile a snapshot of this VM restores onto. */
  profile: string;
  image: { ref: string; digest: string; env: Record<string, string>; workdir: string };
  /** The root disk (absent for machines booted before the root moved from RAM onto a disk). */
  disk?: VmDisk;
}

/** A VM's root disk: the base it was built from (the build a saved overlay belongs to), and its size. */
export interface VmDisk {
  base: string;
  buildId: string;
  diskMiB: number;
}

/** The manifest written beside each state file (`<file>.json`). */
export interface VmSnapshot {
  file: string;
  profile: string;
  /** Absent in states saved before the model was recorded (they ran `-cpu max`). */
  cpu?: string;
  image: VmHandle['image'];
  memoryMiB: number;
  vcpus: number;
  /**
   * The root disk the state's overlay blocks were written over (the state holds only the blocks the guest wrote):
   * it restores only over a base of that very build. Absent in states of machines whose root was in RAM.
   */
  disk?: { buildId: string; diskMiB: number };
  /**
   * How the machine is stored. 2: device state in the state file, RAM and the disk overlay as content-addressed
   * chunks (`ram`, `overlay`) in the chunk store. Absent: everything in the state file (machines of earlier device
   * layouts, which no host restores any more).
   */
  format?: 2;
  /** Guest RAM (format 2): the chunks of the RAM file, zero chunks elided. */
  ram?: ChunkMap;
  /** The disk overlay (format 2): the chunks of the qcow2 file the guest writes to. */
  overlay?: ChunkMap;
  /** Compressed size of the state file (device state). */
  bytes: number;
  /** What this save added to the chunk store: the device state and the chunks no earlier state had. */
  newBytes?: number;
  /** How long the guest was paused. */
  pausedMs?: number;
  /** The state file's digest, taken as the worker copied it out of QEMU's directory. */
  sha256?: string;
  savedMs: number;
  createdAt: string;
}

export interface CreateVm {
  /** Names the run directory; a sandbox id. */
  id: string;
  /** A Docker image on the host's engine (its filesystem becomes the guest's root disk). */
  image: string;
  memoryMiB: number;
  vcpus: number;
  /** Size of the root disk: the image's files must fit in it (IMAGE_TOO_LARGE otherwise); default the small size's. */
  diskMiB?: number;
}

export interface SnapshotVm {
  /** Where the compressed device state goes (zstd); the manifest is written to `<file>.json`. */
  file: string;
  /** The host's chunk store (chunks.ts), where RAM and overlay chunks go. */
  chunks: string;
  /** Resume the VM after saving (true) or quit it (false, its directory is removed). */
  keepAlive: boolean;
}

export interface RestoreVm {
  id: string;
  file: string;
  /** The host's chunk store: the state's RAM and overlay are assembled from it (MissingChunks names what is not). */
  chunks: string;
}
