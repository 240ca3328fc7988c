// The vm sandbox runtime: a QEMU virtual machine per sandbox, booted from a small initramfs (guestImage.ts) onto its
// root disk (a qcow2 overlay over the image's base disk, baseDisk.ts), jobs through the guest agent, and snapshots
// that save the whole machine: device state in one small zstd file, guest RAM (a shared file) and the overlay as
// content-addressed chunks (chunks.ts), of which a save writes only those that changed.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import { SnapflowError } from '../../lib/errors';
import { SIZE_PRESETS } from '../../lib/presets';
import { probeAccel, type AccelProbe } from './accel';
import type { GuestAgentClient } from './guestAgent';
import { baseDisk, cachedBaseDisk, type BaseDisk } from './baseDisk';
import { bareGuestImage, guestFiles } from './guestImage';
import {
  CPU_MODEL,
  cacheDir as defaultCacheDir,
  defaultRunRoot,
  dropBootInputs,
  isQemuAlive,
  killQemu,
  emptyRam,
  machineFiles,
  type MachineSpec,
  machineProfile,
  privateDir,
  qemuFacts,
  qemuOwner,
  startQemu,
  stopQemu,
  vmTools,
  waitForAgent,
} from './machine';
import { saveMachine, loadMachine } from './migration';
import { assembleFile, splitFile, type ChunkMap } from './chunks';
import { importSavedState } from './stateArtifacts';
import type { SandboxClass } from '../../lib/vocabulary';
import type {
  CreateVm,
  ExecJob,
  ExecOutcome,
  OutputBackpressure,
  OutputListener,
  RestoreVm,
  SnapshotVm,
  VmDisk,
  VmHandle,
  VmSnapshot,
} from './types';

export interface VmRuntimeDeps {
  /** The host's engine: guest roots are exported from its images. */
  docker: Docker;
  /** Parent of every VM's directory (short: unix socket paths are capped at 108 bytes). */
  runRoot?: string;
  /** Initramfs cache (default ~/.cache/snapflow or SNAPFLOW_CACHE_DIR). */
  cacheDir?: string;
  toolsDir?: string;
  /** From QEMU start to the guest agent's first answer. */
  bootTimeoutMs?: number;
}

/** QEMU machines on this host: what the vm backend (activities/sandbox/vm/) runs its verbs on. */
export interface VmRuntime {
  readonly kind: SandboxClass;
  create(input: CreateVm): Promise<VmHandle>;
  exec(handle: VmHandle, job: ExecJob, onOutput?: OutputListener, backpressure?: OutputBackpressure): Promise<ExecOutcome>;
  snapshot(handle: VmHandle, input: SnapshotVm): Promise<VmSnapshot>;
  restore(input: RestoreVm): Promise<VmHandle>;
  /** Idempotent: removing what is already gone succeeds. */
  remove(handle: VmHandle): Promise<void>;
  probeAccel(): Promise<AccelProbe>;
  /** The handle of a VM this host runs, from its directory (after a worker restart), or undefined. */
  find(id: string): VmHandle | undefined;
  /** Records the workflow a VM belongs to, so a sweep of leftovers keeps it while that workflow runs. */
  setOwner(handle: VmHandle, workflowId: string): void;
  owner(id: string): string | undefined;
}

/** Output kept per stream in the result; the listener still sees all of it. */
const MAX_OUTPUT_BYTES = 64 * 1024;
const DEFAULT_JOB_TIMEOUT_MS = 10 * 60_000;
/** Beyond the job's own timeout (enforced in the guest), how long the host waits before calling the guest lost. */
const HOST_GRACE_MS = 30_000;
/** The most a machine's device state may take (RAM is not in it: a few hundred KB in practice). */
const MAX_DEVICE_STATE_BYTES = 64 * 2 ** 20;
/** The most a disk overlay of `diskMiB` may grow to: every block of the disk, plus qcow2's metadata. */
const maxOverlayBytes = (diskMiB: number): number => Math.ceil(diskMiB * 1.1 + 64) * 2 ** 20;

/** What a VM's RAM file and overlay were last saved as (or restored from): a save writes only chunks that differ. */
interface ChunksFrom {
  ram: ChunkMap;
  overlay?: ChunkMap;
}
const chunksFromFile = (dir: string): string => join(dir, 'chunks-from.json');
function readChunksFrom(dir: string): ChunksFrom | undefined {
  try {
    return JSON.parse(readFileSync(chunksFromFile(dir), 'utf8')) as ChunksFrom;
  } catch {
    return undefined; // booted fresh: every chunk is new
  }
}
const mapOnly = ({ format, size, chunkBytes, chunks }: ChunkMap): ChunkMap => ({ format, size, chunkBytes, chunks });

/** How a VM starts: booted from the initramfs, or loaded from a state file. */
interface StartHow {
  initrd?: string;
  incoming?: string;
  prepare?: MachineSpec['prepare'];
  /** What must be done before the device state loads (the RAM file filled); a start that fails waits for it too. */
  beforeLoad?: () => Promise<unknown>;
}

const diskOf = (base: BaseDisk): VmDisk => ({ base: base.file, buildId: base.buildId, diskMiB: Math.floor(base.diskBytes / 2 ** 20) });

export function createVmRuntime(deps: VmRuntimeDeps): VmRuntime {
  const runRoot = deps.runRoot ?? defaultRunRoot();
  const cacheDir = deps.cacheDir ?? defaultCacheDir();
  const bootTimeoutMs = deps.bootTimeoutMs ?? 60_000;
  const agents = new Map<string, GuestAgentClient>(); // by VM directory

  const dirOf = (id: string): string => {
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(id))
      throw new SnapflowError({ code: 'VALIDATION_FAILED', field: 'id', message: `not a sandbox id: ${id}` });
    return join(runRoot, id);
  };

  function find(id: string): VmHandle | undefined {
    const file = machineFiles(dirOf(id)).handle;
    if (!existsSync(file)) return undefined;
    const handle = JSON.parse(readFileSync(file, 'utf8')) as VmHandle;
    return isQemuAlive(handle.pid, handle.dir) ? handle : undefined;
  }

  /** The run directory, checked before every use: see privateDir. The default's parent (/tmp/sfvm) too. */
  const checkedRunRoot = (): void => {
    const base = defaultRunRoot();
    if (runRoot.startsWith(`${base}/`)) privateDir(base);
    privateDir(runRoot);
  };

  /**
   * Starts QEMU for `handle` and waits for its agent; on any failure nothing of it is left. A cold boot that fails
   * (a guest kernel starved of CPU on a loaded host can still panic early) is tried once more on this host; if that
   * fails too, the failure carries both reasons and the second console's tail.
   */
  async function start(handle: Omit<VmHandle, 'pid'>, how: StartHow): Promise<VmHandle> {
    if (how.incoming) return startOnce(handle, how);
    try {
      return await startOnce(handle, how);
    } catch (first) {
      if (!(first instanceof SnapflowError) || first.code !== 'VM_BOOT_FAILED') throw first;
      try {
        return await startOnce(handle, how);
      } catch (second) {
        if (!(second instanceof SnapflowError) || second.code !== 'VM_BOOT_FAILED') throw second;
        throw new SnapflowError({
          code: 'VM_BOOT_FAILED',
          message: `vm ${handle.id} failed to boot twice (first: ${first.message.split('\n')[0]}); second: ${second.message}`,
          hint: second.hint,
        });
      }
    }
  }

  async function startOnce(handle: Omit<VmHandle, 'pid'>, how: StartHow): Promise<VmHandle> {
    checkedRunRoot();
    rmSync(handle.dir, { recursive: true, force: true });
    mkdirSync(handle.dir, { mode: 0o700 });
    let pid = 0;
    try {
      const disk = handle.disk ? { base: handle.disk.base, sizeBytes: handle.disk.diskMiB * 2 ** 20 } : undefined;
      pid = await startQemu({ ...handle, kernel: handle.kernel.path, ...how, disk });
      const running: VmHandle = { ...handle, pid };
      writeFileSync(machineFiles(handle.dir).handle, JSON.stringify(running), { mode: 0o600 });
      if (how.incoming) {
        await how.beforeLoad?.();
        await loadMachine(handle.dir, bootTimeoutMs);
      }
      agents.set(handle.dir, await waitForAgent(pid, handle.dir, how.incoming ? 10_000 : bootTimeoutMs));
      dropBootInputs(handle.dir);
      return running;
    } catch (err) {
      if (pid) await stopQemu(pid, handle.dir, 0);
      await how.beforeLoad?.().catch(() => undefined);
      rmSync(handle.dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** A guest that does not answer is stopped, and the caller told so. */
  function unresponsive(handle: VmHandle, reason: string): never {
    agents.get(handle.dir)?.close();
    agents.delete(handle.dir);
    killQemu(handle.pid, handle.dir);
    throw new SnapflowError({
      code: 'VM_UNRESPONSIVE',
      message: `vm ${handle.id} stopped answering (${reason}); it has been stopped`,
      hint: 'remove the sandbox and restore it from its last snapshot',
    });
  }

  /** A guest that broke the channel's protocol runs no further job: it is stopped, the failure kept typed. */
  function broken(handle: VmHandle, err: SnapflowError): never {
    killQemu(handle.pid, handle.dir);
    throw new SnapflowError({
      code: 'VM_AGENT_PROTOCOL',
      message: `vm ${handle.id}: ${err.message}; it has been stopped`,
      hint: 'the guest wrote more than a frame may hold; remove the sandbox and restore it from its last snapshot',
    });
  }

  async function agentFor(handle: VmHandle): Promise<GuestAgentClient> {
    const open = agents.get(handle.dir);
    if (open && !open.isClosed) return open;
    if (!isQemuAlive(handle.pid, handle.dir)) unresponsive(handle, `QEMU process ${handle.pid} is gone`);
    try {
      const agent = await waitForAgent(handle.pid, handle.dir, 5_000);
      agents.set(handle.dir, agent);
      return agent;
    } catch (err) {
      return unresponsive(handle, (err as Error).message.split('\n')[0]!);
    }
  }

  /**
   * The base disk a saved machine's overlay blocks were written over: this host's copy (built again from the image
   * when the image is on its engine), and only of the very build the machine ran on, since the state holds only the
   * blocks its guest changed.
   */
  async function savedBase(saved: VmSnapshot, file: string): Promise<BaseDisk> {
    const { diskMiB, buildId } = saved.disk!;
    const base =
      cachedBaseDisk(cacheDir, saved.image.digest, diskMiB * 2 ** 20) ??
      (await baseDisk(deps.docker, saved.image.ref, { cacheDir, diskMiB }).catch((err: unknown) => {
        if (err instanceof SnapflowError && err.code === 'IMAGE_NOT_FOUND')
          throw new SnapflowError({
            code: 'VM_PROFILE_MISMATCH',
            message: `vm state ${file} runs on the root disk of image ${saved.image.ref.slice(0, 200)}, which this host has neither cached nor on its engine`,
            hint: 'start the sandbox where it was saved, or from its golden or base image (the restore order falls back to them)',
          });
        throw err;
      }));
    if (base.buildId !== buildId)
      throw new SnapflowError({
        code: 'VM_PROFILE_MISMATCH',
        message: `vm state ${file} wrote over root disk build ${buildId}; this host's disk of image ${saved.image.ref.slice(0, 200)} is build ${base.buildId}`,
        hint: "a saved machine holds only the disk blocks its guest changed, so it restores only over its own build of the image's disk; start the sandbox from its golden or base image",
      });
    return base;
  }

  async function currentAccel(): Promise<AccelProbe> {
    return probeAccel({ runRoot, cacheDir });
  }

  return {
    kind: 'vm',
    find,
    setOwner: (handle, workflowId) => writeFileSync(join(handle.dir, 'owner'), workflowId, { mode: 0o600 }),
    owner(id) {
      try {
        return readFileSync(join(dirOf(id), 'owner'), 'utf8') || undefined;
      } catch {
        return undefined;
      }
    },
    probeAccel: currentAccel,

    async create(input: CreateVm): Promise<VmHandle> {
      const dir = dirOf(input.id);
      const existing = find(input.id);
      if (existing) return existing; // a retried create finds the VM it started
      const tools = vmTools(deps.toolsDir);
      const { accel } = await currentAccel();
      const { memoryMiB, vcpus } = input;
      const diskMiB = input.diskMiB ?? SIZE_PRESETS[0]!.diskMiB;
      const base = await baseDisk(deps.docker, input.image, { cacheDir, diskMiB });
      const { initrd } = await bareGuestImage({ cacheDir, files: guestFiles(tools) });
      const profile = machineProfile({ accel, memoryMiB, vcpus, kernelVersion: tools.kernelVersion });
      const kernel = { path: tools.kernel, version: tools.kernelVersion };
      const { image } = base;
      return start(
        {
          id: input.id,
          dir,
          accel,
          machine: qemuFacts().machine,
          cpu: CPU_MODEL,
          memoryMiB,
          vcpus,
          kernel,
          profile,
          image,
          disk: diskOf(base),
        },
        { initrd },
      );
    },

    async exec(handle: VmHandle, job: ExecJob, onOutput?: OutputListener, backpressure?: OutputBackpressure): Promise<ExecOutcome> {
      const agent = await agentFor(handle);
      const kept = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
      const size = { stdout: 0, stderr: 0 };
      const listener: OutputListener = (stream, chunk) => {
        if (size[stream] < MAX_OUTPUT_BYTES) kept[stream].push(chunk.subarray(0, MAX_OUTPUT_BYTES - size[stream]));
        size[stream] += chunk.length;
        onOutput?.(stream, chunk);
      };
      const timeoutMs = job.timeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
      const env = { ...handle.image.env, ...job.env };
      let timer: NodeJS.Timeout | undefined;
      const lost = new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error('job outlived its timeout')), timeoutMs + HOST_GRACE_MS)),
      );
      try {
        const result = await Promise.race([
          agent.exec({ argv: job.argv, env, workdir: job.workdir ?? handle.image.workdir, timeoutMs }, listener, backpressure),
          lost,
        ]);
        return { ...result, stdout: Buffer.concat(kept.stdout).toString(), stderr: Buffer.concat(kept.stderr).toString() };
      } catch (err) {
        if (err instanceof SnapflowError && err.code === 'VM_AGENT_PROTOCOL') return broken(handle, err);
        return unresponsive(handle, (err as Error).message);
      } finally {
        clearTimeout(timer);
        // The agent's port takes one connection at a time: none is held between jobs, so another process (a
        // restarted worker) can always reach the guest.
        agent.close();
        agents.delete(handle.dir);
      }
    },

    async snapshot(handle: VmHandle, input: SnapshotVm): Promise<VmSnapshot> {
      if (agents.get(handle.dir)?.busy) throw new SnapflowError({ code: 'SANDBOX_BUSY', message: `vm ${handle.id} is running a job` });
      if (!isQemuAlive(handle.pid, handle.dir)) unresponsive(handle, `QEMU process ${handle.pid} is gone`);
      mkdirSync(dirname(input.file), { recursive: true, mode: 0o700 });
      mkdirSync(input.chunks, { recursive: true, mode: 0o700 });
      const started = Date.now();
      const files = machineFiles(handle.dir);
      const from = readChunksFrom(handle.dir);
      const owner = qemuOwner(handle.dir);
      // While the guest is paused: its RAM file and overlay are read in place, and only what changed is compressed.
      const {
        file: saved,
        paused,
        pausedMs,
      } = await saveMachine(handle.dir, {
        resume: input.keepAlive,
        whilePaused: () =>
          Promise.all([
            splitFile({ file: files.ram, store: input.chunks, prev: from?.ram, maxSize: handle.memoryMiB * 2 ** 20, owner }),
            handle.disk
              ? splitFile({
                  file: files.overlay,
                  store: input.chunks,
                  prev: from?.overlay,
                  maxSize: maxOverlayBytes(handle.disk.diskMiB),
                  owner,
                })
              : undefined,
          ]),
      });
      const [ram, overlay] = paused;
      let copied: { sha256: string; bytes: number };
      try {
        copied = await importSavedState(saved, input.file, { owner, maxBytes: MAX_DEVICE_STATE_BYTES });
      } finally {
        rmSync(saved, { force: true });
      }
      const written = new Set([...ram.written, ...(overlay?.written ?? [])]);
      const newBytes = [...ram.chunks, ...(overlay?.chunks ?? [])]
        .filter((c) => written.delete(c.blob))
        .reduce((sum, c) => sum + c.bytes, copied.bytes);
      const manifest: VmSnapshot = {
        file: input.file,
        profile: handle.profile,
        cpu: handle.cpu,
        image: handle.image,
        memoryMiB: handle.memoryMiB,
        vcpus: handle.vcpus,
        ...(handle.disk ? { disk: { buildId: handle.disk.buildId, diskMiB: handle.disk.diskMiB } } : {}),
        format: 2,
        ram: mapOnly(ram),
        ...(overlay ? { overlay: mapOnly(overlay) } : {}),
        bytes: copied.bytes,
        newBytes,
        pausedMs,
        sha256: copied.sha256,
        savedMs: Date.now() - started,
        createdAt: new Date().toISOString(),
      };
      if (input.keepAlive)
        writeFileSync(chunksFromFile(handle.dir), JSON.stringify({ ram: manifest.ram, overlay: manifest.overlay }), { mode: 0o600 });
      writeFileSync(`${input.file}.json.tmp`, JSON.stringify(manifest, null, 2), { mode: 0o600 });
      renameSync(`${input.file}.json.tmp`, `${input.file}.json`);
      if (!input.keepAlive) await this.remove(handle);
      return manifest;
    },

    async restore(input: RestoreVm): Promise<VmHandle> {
      const dir = dirOf(input.id);
      const manifestFile = `${input.file}.json`;
      if (!existsSync(input.file) || !existsSync(manifestFile)) {
        throw new SnapflowError({ code: 'NOT_FOUND', message: `no vm state at ${input.file} (with its manifest ${manifestFile})` });
      }
      const saved = JSON.parse(readFileSync(manifestFile, 'utf8')) as VmSnapshot;
      const tools = vmTools(deps.toolsDir);
      const { accel } = await currentAccel();
      const { memoryMiB, vcpus } = saved;
      const profile = machineProfile({ accel, memoryMiB, vcpus, kernelVersion: tools.kernelVersion });
      // Saved before the CPU model was recorded: `-cpu max`.
      const cpu = saved.cpu ?? 'max';
      if (saved.profile !== profile || cpu !== CPU_MODEL) {
        throw new SnapflowError({
          code: 'VM_PROFILE_MISMATCH',
          message: `vm state ${input.file} was saved on ${saved.profile} (cpu ${cpu}); this host runs ${profile} (cpu ${CPU_MODEL})`,
          hint: 'a saved machine restores only onto the same QEMU version, machine type, accel, RAM, vCPUs and kernel',
        });
      }
      if (saved.format !== 2 || !saved.ram || (saved.disk && !saved.overlay))
        throw new SnapflowError({
          code: 'VM_PROFILE_MISMATCH',
          message: `vm state ${input.file} keeps its RAM in the state file, as machines saved before RAM moved into chunks did`,
          hint: 'start the sandbox from its golden or base image (the restore order falls back to them)',
        });
      const disk = saved.disk ? diskOf(await savedBase(saved, input.file)) : undefined;
      const existing = find(input.id);
      if (existing) await this.remove(existing);
      const kernel = { path: tools.kernel, version: tools.kernelVersion };
      const { ram, overlay } = saved;
      // The overlay is written whole from its chunks before QEMU starts (QEMU reads it as it opens it); the RAM file
      // is filled while QEMU starts beside it (a shared mapping sees the writes), and before the device state loads.
      // A missing chunk fails here (MissingChunks), before anything runs, for the caller to fetch it and try again.
      let ramFilled: Promise<unknown> = Promise.resolve();
      const prepare: StartHow['prepare'] = async (files, user) => {
        const fileOwner = user ? { uid: user.uid, gid: user.gid } : undefined;
        if (overlay) await assembleFile({ map: overlay, store: input.chunks, out: files.overlay, owner: fileOwner });
        emptyRam(files.ram, memoryMiB, user);
        ramFilled = assembleFile({ map: ram, store: input.chunks, out: files.ram, into: true });
        ramFilled.catch(() => undefined); // awaited before the load, or by the cleanup of a start that failed
        writeFileSync(chunksFromFile(dir), JSON.stringify({ ram, overlay } satisfies ChunksFrom), { mode: 0o600 });
      };
      return start(
        { id: input.id, dir, accel, machine: qemuFacts().machine, cpu, memoryMiB, vcpus, kernel, profile, image: saved.image, disk },
        { incoming: input.file, prepare, beforeLoad: () => ramFilled },
      );
    },

    async remove(handle: VmHandle): Promise<void> {
      agents.get(handle.dir)?.close();
      agents.delete(handle.dir);
      await stopQemu(handle.pid, handle.dir);
      rmSync(handle.dir, { recursive: true, force: true });
    },
  };
}
