// The `vm` sandbox backend on a host worker: a sandbox is a QEMU machine (activities/vm/runtime.ts) booted from
// an image on this host's engine, or restored from a saved machine in the host cache or snapshot storage. Its
// verbs are the SandboxBackend's (activities/sandbox/backend.ts), registered as vmBoot, vmExec, …; runs recorded
// before that call the machine steps by their earlier names (startVmSandbox, …), which answer as they did.
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import { Context } from '@temporalio/activity';
import type { StorageConfig } from '../../../lib/config';
import { SnapflowError, describeFailure, storageNotConfigured, toNonRetryableFailure } from '../../../lib/errors';
import type { HostFacts } from '../../../lib/hosts';
import { SIZE_PRESETS, findPreset } from '../../../lib/presets';
import { boundary, fail } from '../../boundary';
import { outputHeartbeats, withHeartbeat } from '../../heartbeats';
import {
  CANCEL_GRACE_MS,
  LOCAL_REGISTRY,
  jobLogs,
  withLog,
  type ExecInSandbox,
  type ExecResult,
  type JobLogs,
  type RemoveSandbox,
} from '../../docker';
import { handleText, parseHandleText } from '../../../lib/sandboxHandle';
import { backendActivities, requireBackend, type BackendFacts, type SandboxBackend, type SandboxHandle } from '../backend';
import { checkHandle, type HandleClaim } from '../../handles';
import type { AccelProbe } from '../../vm/accel';
import { sweepDeadProbes } from '../../leftovers';
import { defaultRunRoot, machineFiles, machineProfile, stopQemu, vmTools } from '../../vm/machine';
import { cancelGuestJobs } from '../../vm/guestAgent';
import { createVmRuntime, type VmRuntime } from '../../vm/runtime';
import { requireOwnSnapshot } from '../../hostCache';
import {
  adoptState,
  cachedStateFile,
  isUnfinishedState,
  pullPartialPid,
  savingStateFile,
  stateCachePath,
  evictState,
  hasCachedState,
  pullState,
  pushState,
  pullChunks,
  readStateManifest,
  stateChunks,
  verifiedState,
} from '../../vm/stateArtifacts';
import { MissingChunks, chunkStore, evictChunks, touchChunks } from '../../vm/chunks';
import type { VmHandle, VmSnapshot } from '../../vm/types';

/** The manifest the host cache keeps beside a state file. */
const cachedManifest = (file: string): VmSnapshot => JSON.parse(readFileSync(`${file}.json`, 'utf8')) as VmSnapshot;

export interface VmSandboxDeps {
  docker: Docker;
  hostId: string;
  storage?: StorageConfig;
  /** Parent of this host's VM directories (default: SNAPFLOW_VM_RUN_DIR or /tmp/sfvm, then the host id). */
  runRoot: string;
  /** Host cache of images' guest roots. */
  cacheDir: string;
  /** Parent of the host cache of saved machines (`<stateDir>/vm-states`: sessions, goldens); default `cacheDir`. */
  stateDir?: string;
  /** RAM of every VM in MiB instead of its size's (SNAPFLOW_VM_MEMORY_MIB: small machines for tests). */
  memoryMiB?: number;
  /** Where jobs' output is kept whole (the containers' store). */
  logs?: JobLogs;
}

export interface StartVmSandbox {
  /** Stable per sandbox start (sandbox id + generation): a retried start finds the machine it booted. */
  key: string;
  image: string;
  size: string;
  workflowId: string;
  /** An image snapshot's long-lived process, started in the guest after boot and checked after `settleSeconds`. */
  entrypoint?: string;
  settleSeconds?: number;
}

export interface RestoreVmSandbox {
  key: string;
  /** The saved machine: `registry/repo@sha256:…` in snapshot storage, or a host-cache-only `snapflow.local/…:tag`. */
  stateRef: string;
  /** The sandbox's workspace: only its own saved machines or the system's restore here. */
  workspace: string;
  workflowId: string;
}

export interface SnapshotVmSandbox extends HandleClaim {
  containerId: string;
  /** Repository path inside snapshot storage, e.g. `snapflow/sessions/ws/<sandbox>`. */
  repository: string;
  tag: string;
  /** Resume the machine after saving (true) or quit it. */
  keepAlive: boolean;
  /** Refuse before saving anything when snapshot storage is not configured (a golden snapshot lives there). */
  requireStorage?: boolean;
}

export interface SavedVm {
  /** What a cached copy on this host is found by. */
  localRef: string;
  storedRef: string | null;
  digest: string | null;
  machineProfile: string;
  bytes: number;
  savedMs: number;
}

/** Where an entrypoint's output and pid go inside the guest. */
const ENTRYPOINT_LOG = '/run/snapflow-entrypoint.log';
const ENTRYPOINT_PID = '/run/snapflow-entrypoint.pid';

/**
 * The host's chunk cache is bounded (SNAPFLOW_VM_CHUNK_CACHE_MIB, default 32 GiB): past it, the chunks used least
 * recently go, except those of saved machines snapshot storage does not hold (they exist nowhere else).
 */
const chunkCacheBytes = (): number => Number(process.env.SNAPFLOW_VM_CHUNK_CACHE_MIB ?? 32 * 1024) * 2 ** 20;
/**
 * Beside a VM: the repository its latest stored state is in (the one it was restored from, or its last upload) and
 * that state's chunks. An upload to the same repository skips checking them; to another it mounts them from there.
 */
const STORED_CHUNKS_FILE = 'stored-chunks.json';
interface StoredChunks {
  repository: string;
  blobs: string[];
}
function recordStoredChunks(dir: string, repository: string, state: Pick<VmSnapshot, 'ram' | 'overlay'>): void {
  const record: StoredChunks = { repository, blobs: stateChunks(state).map((c) => c.blob) };
  writeFileSync(join(dir, STORED_CHUNKS_FILE), JSON.stringify(record), { mode: 0o600 });
}
function storedChunks(dir: string): StoredChunks | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, STORED_CHUNKS_FILE), 'utf8')) as StoredChunks;
  } catch {
    return undefined; // booted fresh, or restored from a host-only state
  }
}

/** Saved-state files a crashed save or pull left; older than this they belong to no running attempt. */
const STALE_MS = 10 * 60_000;

/** What a save heartbeats once its upload is done: the answer a retry of the same call returns. */
interface SavedProgress {
  step: 'save vm';
  saved?: SavedVm;
}

/** The previous attempt's last heartbeat, or none (a first attempt, or outside an activity). */
function savedAnswer(): unknown {
  try {
    return Context.current().info.heartbeatDetails;
  } catch {
    return undefined;
  }
}

/** A vm handle's machine id (the handle's text, as runs recorded before typed handles pass it, is parsed first). */
const machineId = (handle: SandboxHandle | string): string =>
  requireBackend(typeof handle === 'string' ? parseHandleText(handle) : handle, 'vm');

export function createVmSandbox(deps: VmSandboxDeps) {
  const { cacheDir } = deps;
  const stateDir = deps.stateDir ?? cacheDir;
  const vm: VmRuntime = createVmRuntime({ docker: deps.docker, runRoot: deps.runRoot, cacheDir });
  // The accel probe boots a VM (seconds): started now, so the host's first announcement does not wait for it.
  void vm.probeAccel().catch(() => undefined);

  const machineOf = (size: string): { memoryMiB: number; vcpus: number } => {
    const preset = findPreset(size);
    if (!preset) return fail('VALIDATION_FAILED', `unknown size ${size}`);
    return { memoryMiB: deps.memoryMiB ?? preset.memoryMiB, vcpus: preset.vcpus };
  };
  /** The size's root disk (the image's files must fit in it); not part of the machine profile, the overlay is. */
  const diskOf = (size: string): { diskMiB: number } => ({ diskMiB: findPreset(size)?.diskMiB ?? SIZE_PRESETS[0]!.diskMiB });

  /** Refused HANDLE_MISMATCH unless VM `id` was made (booted or restored) by the workflow that asks, for `claim`. */
  const requireOwned = (id: string, claim: HandleClaim): void =>
    checkHandle({ what: `vm ${id.slice(0, 64)}`, workflowId: vm.owner(id) }, claim);

  const handleOf = (id: string): VmHandle => {
    const handle = vm.find(id);
    if (!handle)
      fail(
        'VM_UNRESPONSIVE',
        `vm ${id} is not running on host ${deps.hostId}`,
        'run the job again: the sandbox starts again by the restore order',
      );
    return handle;
  };

  const storageTarget = (ref: string) => {
    const storage = deps.storage;
    if (!storage || !ref.startsWith(`${storage.registryHost}/`)) return undefined;
    const at = ref.indexOf('@');
    const path = ref.slice(storage.registryHost.length + 1, at < 0 ? undefined : at);
    const repository = at < 0 ? path.replace(/:[\w.-]+$/, '') : path; // a tagged ref names its repository before the tag
    return {
      target: { registry: storage.registryHost, repository, credentials: { username: storage.username, password: storage.password } },
      digest: at < 0 ? undefined : ref.slice(at + 1),
    };
  };

  /** The profile a saved machine of each size restores onto here, with the accel the probe chose. */
  async function machineFacts(): Promise<NonNullable<HostFacts['vm']>> {
    let probe: AccelProbe;
    let kernelVersion: string;
    try {
      kernelVersion = vmTools().kernelVersion;
      probe = await vm.probeAccel();
    } catch (err) {
      return { unavailable: describeFailure(err).message };
    }
    const profiles = Object.fromEntries(
      SIZE_PRESETS.map((p) => [p.key, machineProfile({ accel: probe.accel, ...machineOf(p.key), kernelVersion })]),
    );
    return { accel: probe.accel, detail: probe.detail, profiles };
  }

  /** RAM of the VMs running on this host now. */
  function vmMemoryMiB(): number {
    const ids = existsSync(deps.runRoot) ? readdirSync(deps.runRoot) : [];
    return ids.reduce((sum, id) => sum + (safeFind(vm, id)?.memoryMiB ?? 0), 0);
  }

  /**
   * Keeps the chunk cache within its bound. Without snapshot storage every saved machine exists only here, so the
   * chunks of every cached state are kept; with it, any chunk may go (a restore fetches it again) but those of a state
   * saved in the last minutes, which a save still uploading may need.
   */
  function limitChunkCache(): void {
    const keep = new Set<string>();
    for (const state of cachedStates())
      if (!deps.storage || Date.now() - Date.parse(state.createdAt) < STALE_MS) for (const c of stateChunks(state)) keep.add(c.blob);
    evictChunks(chunkStore(stateDir), { maxBytes: chunkCacheBytes(), keep });
  }

  /** The manifests of the saved machines in the host cache. */
  function cachedStates(): VmSnapshot[] {
    const dir = stateCachePath(stateDir);
    const names = existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.zst.json') && !isUnfinishedState(n)) : [];
    return names.flatMap((n) => {
      try {
        return [JSON.parse(readFileSync(join(dir, n), 'utf8')) as VmSnapshot];
      } catch {
        return [];
      }
    });
  }

  const steps = {
    /** Boots a VM whose root filesystem is `image`'s (on this host's engine); IMAGE_NOT_FOUND when it is not here. */
    async startVmSandbox(input: StartVmSandbox): Promise<{ containerId: string; name: string; bootMs: number }> {
      return boundary(() =>
        withHeartbeat('boot vm', async () => {
          const earlier = answered<{ containerId: string; name: string; bootMs: number }>(input.key, `boot ${input.image}`);
          if (earlier) return earlier; // a retry: the VM it booted runs, its entrypoint too (never started twice)
          const started = Date.now();
          const handle = await vm.create({ id: input.key, image: input.image, ...machineOf(input.size), ...diskOf(input.size) });
          vm.setOwner(handle, input.workflowId);
          const containerId = handleText({ backend: 'vm', id: handle.id });
          if (input.entrypoint) await startEntrypoint(handle, input.entrypoint, input.settleSeconds ?? 2);
          return answer(handle, `boot ${input.image}`, { containerId, name: handle.id, bootMs: Date.now() - started });
        }),
      );
    },

    /** Continues a saved machine: files and processes as they were. Fetched from snapshot storage when not cached here. */
    async restoreVmSandbox(input: RestoreVmSandbox): Promise<{ containerId: string; name: string; pulled: boolean }> {
      const chunks = chunkStore(stateDir);
      return boundary(() =>
        withHeartbeat('restore vm', async () => {
          // The workflow chose the state, but the host decides what it runs: never another workspace's machine.
          requireOwnSnapshot(input.stateRef, input.workspace);
          const earlier = answered<{ containerId: string; name: string; pulled: boolean }>(input.key, `restore ${input.stateRef}`);
          if (earlier) return earlier; // a retry: the machine it restored runs on
          let pulled = false;
          const stored = storageTarget(input.stateRef);
          if (!hasCachedState(stateDir, input.stateRef)) {
            if (!stored?.digest)
              fail(
                'NOT_FOUND',
                `the saved machine ${input.stateRef.slice(0, 200)} is not cached on host ${deps.hostId} and not in snapshot storage`,
              );
            await pullState(stored.target, stored.digest, stateDir, input.stateRef, chunks);
            pulled = true;
          }
          const file = await verifiedState(stateDir, input.stateRef);
          const state = cachedManifest(file);
          touchChunks(
            chunks,
            stateChunks(state).map((c) => c.blob),
          );
          let handle: VmHandle;
          try {
            handle = await vm.restore({ id: input.key, file, chunks });
          } catch (err) {
            if (!(err instanceof MissingChunks)) throw err;
            // The host cache let some of its chunks go (its byte bound): fetch just those and try once more.
            if (!stored?.digest)
              fail(
                'STATE_CORRUPT',
                `the saved machine ${input.stateRef.slice(0, 200)} lacks ${err.blobs.length} chunk(s) on host ${deps.hostId}, and snapshot storage does not hold it`,
                'a session kept only on one host is lost with its chunks: destroy the sandbox and create it again (it starts from its golden or base image)',
              );
            await pullChunks(stored.target, state, chunks);
            pulled = true;
            handle = await vm.restore({ id: input.key, file, chunks });
          }
          vm.setOwner(handle, input.workflowId);
          if (stored) recordStoredChunks(handle.dir, stored.target.repository, state);
          limitChunkCache();
          return answer(handle, `restore ${input.stateRef}`, {
            containerId: handleText({ backend: 'vm', id: handle.id }),
            name: handle.id,
            pulled,
          });
        }),
      );
    },

    /**
     * Saves the whole machine (memory and devices, zstd) into the host cache, and into snapshot storage as an OCI
     * artifact when storage is configured. A retry after a crash re-sends a state already saved instead of saving again.
     */
    async snapshotVmSandbox(input: SnapshotVmSandbox): Promise<SavedVm> {
      return boundary(() =>
        withHeartbeat('save vm', async () => {
          if (input.requireStorage && !deps.storage)
            throw toNonRetryableFailure(storageNotConfigured({ hostId: deps.hostId, what: 'storing a golden snapshot' }));
          const id = machineId(input.containerId);
          const localRef = `${deps.storage?.registryHost ?? LOCAL_REGISTRY}/${input.repository}:${input.tag}`;
          // An earlier attempt of this call that finished (it outlived its deadline, or its worker died before
          // answering) left its answer in its last heartbeat: the upload moved the cached copy to the stored name, so
          // without it a retry would save the machine again, a second artifact with another digest.
          const earlier = (savedAnswer() as SavedProgress | undefined)?.saved;
          if (earlier?.localRef === localRef) return earlier;
          const started = Date.now();
          let profile: string;
          // One path per snapshot: a retry after a crash overwrites what the crashed attempt may have left.
          const saving = savingStateFile(stateDir, localRef);
          // A crashed attempt that wrote its manifest (last) saved the machine whole, and may have quit it since
          // (keepAlive off): adopt that save rather than fail on a machine that is gone.
          if (!hasCachedState(stateDir, localRef) && existsSync(saving) && existsSync(`${saving}.json`))
            await adoptState(saving, stateDir, localRef);
          if (hasCachedState(stateDir, localRef)) {
            if (!input.keepAlive && existsSync(join(deps.runRoot, id))) requireOwned(id, input);
            profile = (JSON.parse(readFileSync(`${cachedStateFile(stateDir, localRef)}.json`, 'utf8')) as { profile: string }).profile;
            if (!input.keepAlive) await removeVm(id);
          } else {
            requireOwned(id, input);
            const handle = handleOf(id);
            const file = saving;
            try {
              const saved = await vm.snapshot(handle, { file, chunks: chunkStore(stateDir), keepAlive: input.keepAlive });
              profile = saved.profile;
              await adoptState(file, stateDir, localRef);
            } finally {
              rmSync(file, { force: true });
              rmSync(`${file}.json`, { force: true });
            }
          }
          const savedMs = Date.now() - started;
          const file = cachedStateFile(stateDir, localRef);
          // What this save added: the device state and the chunks no earlier state had (all a first save of a machine).
          const cached = cachedManifest(file);
          const bytes = cached.newBytes ?? statSync(file).size;
          if (!deps.storage) {
            const saved: SavedVm = { localRef, storedRef: null, digest: null, machineProfile: profile, bytes, savedMs };
            Context.current().heartbeat({ step: 'save vm', saved } satisfies SavedProgress);
            return saved;
          }
          const target = storageTarget(localRef)!.target;
          const vmDir = join(deps.runRoot, id);
          const prior = storedChunks(vmDir);
          const sameRepository = prior?.repository === target.repository;
          const pushed = await pushState(target, file, input.tag, {
            chunks: chunkStore(stateDir),
            mountFrom: sameRepository ? undefined : prior?.repository,
            present: sameRepository ? new Set(prior.blobs) : undefined,
          }).catch((err: unknown) => {
            if (err instanceof SnapflowError) throw err;
            // Retried by the transfer profile: the registry may be restarting.
            throw ApplicationFailure.create({
              type: 'STORAGE_UNAVAILABLE',
              message: `upload of the vm state ${localRef} failed: ${(err as Error).message}`,
            });
          });
          const storedRef = `${deps.storage.registryHost}/${input.repository}@${pushed.digest}`;
          await adoptState(file, stateDir, storedRef); // what restores ask for from now on
          if (input.keepAlive && existsSync(vmDir)) recordStoredChunks(vmDir, target.repository, cached);
          limitChunkCache();
          // Stored: what the upload sent (a chunk the repository or the machine's origin held is not sent again).
          const uploaded = pushed.uploadedBytes;
          const saved: SavedVm = { localRef, storedRef, digest: pushed.digest, machineProfile: profile, bytes: uploaded, savedMs };
          Context.current().heartbeat({ step: 'save vm', saved } satisfies SavedProgress); // no await after: it is the last
          return saved;
        }),
      );
    },

    /** A job through the guest agent, with its output heartbeated as it comes. */
    async execInVm(input: ExecInSandbox): Promise<ExecResult> {
      return boundary(async () => {
        const id = machineId(input.containerId);
        requireOwned(id, input);
        const handle = handleOf(id);
        const output = outputHeartbeats(`exec ${input.command[0] ?? ''}`);
        const log = (deps.logs ?? jobLogs(undefined)).open(input.log);
        // A cancel goes to the guest over the job's own connection (the port takes one at a time).
        let cancelled = false;
        const signal = Context.current().cancellationSignal;
        const onCancel = () => {
          cancelled = true;
          cancelGuestJobs(machineFiles(handle.dir).agentSocket, CANCEL_GRACE_MS);
        };
        signal.addEventListener('abort', onCancel, { once: true });
        try {
          const result = await vm.exec(
            handle,
            { argv: input.command, env: input.env, workdir: input.workdir, timeoutMs: input.timeoutMs },
            (stream, chunk) => (log.push(stream, chunk), output.pushBytes(stream, chunk)),
            log, // a log store behind the job holds the guest back, not the host's memory
          );
          const exec = {
            exitCode: result.exitCode,
            stdout: result.stdout,
            stderr: result.stderr,
            ...(result.timedOut ? { timedOut: true } : {}),
            ...(cancelled && !result.timedOut ? { cancelled: true as const } : {}),
          };
          return await withLog(exec, log);
        } finally {
          signal.removeEventListener('abort', onCancel);
          output.stop();
        }
      });
    },

    /** Idempotent, like a container's removal: a VM already gone counts as removed. */
    async removeVmSandbox(input: RemoveSandbox): Promise<void> {
      const id = machineId(input.containerId);
      // One already gone counts as removed; one that is there goes only for whoever it was made for.
      if (existsSync(join(deps.runRoot, id))) requireOwned(id, input);
      await removeVm(id);
    },

    /** A cached saved machine goes like a cached image: the running VMs restored from it hold their own memory. */
    async evictVmState(input: { storedRef: string }): Promise<{ evicted: boolean }> {
      evictState(stateDir, input.storedRef);
      return { evicted: true };
    },

    /** True when `storedRef` names a saved machine in storage (a pre-warm fetches it into the host cache). */
    async cacheVmState(input: { storedRef: string }): Promise<{ vmState: boolean; pulled: boolean }> {
      if (hasCachedState(stateDir, input.storedRef)) return { vmState: true, pulled: false };
      const stored = storageTarget(input.storedRef);
      if (!stored?.digest) return { vmState: false, pulled: false };
      if (!(await readStateManifest(stored.target, stored.digest))) return { vmState: false, pulled: false };
      await withHeartbeat('cache vm state', () =>
        pullState(stored.target, stored.digest!, stateDir, input.storedRef, chunkStore(stateDir)),
      );
      limitChunkCache();
      return { vmState: true, pulled: true };
    },
  };

  const backend: SandboxBackend = {
    async boot(input) {
      return parseHandleText((await steps.startVmSandbox(input)).containerId);
    },
    async restore(input) {
      return parseHandleText((await steps.restoreVmSandbox(input)).containerId);
    },
    exec({ handle, ...job }) {
      return steps.execInVm({ ...job, containerId: handleText(handle) });
    },
    async saveSession({ handle, keepRunning, ...target }) {
      const saved = await steps.snapshotVmSandbox({ ...target, containerId: handleText(handle), keepAlive: keepRunning });
      const { localRef, storedRef, digest, machineProfile, bytes, savedMs } = saved;
      return { localRef, storedRef, digest, machineProfile, bytes, savedMs };
    },
    stop({ handle, sandboxId, workspace }) {
      return steps.removeVmSandbox({ sandboxId, workspace, containerId: handleText(handle) });
    },
    async facts(): Promise<BackendFacts> {
      return { memoryReservedMiB: vmMemoryMiB(), vm: await machineFacts() };
    },
  };
  const { execInVm, removeVmSandbox, ...machineSteps } = steps;
  return {
    backend,
    /** The backend's verbs, the machine steps runs recorded before them call, and the pre-warm's state cache. */
    activities: { ...backendActivities('vm', backend), ...machineSteps },
    /** What handle text naming a vm is routed to (activities/sandbox/host.ts). */
    byText: { exec: execInVm, remove: removeVmSandbox },
  };

  /**
   * What a boot or restore answered, kept in the VM's own directory (it goes with the VM): a retry of the same
   * step on a VM that still runs gets that answer instead of booting, restoring or starting its entrypoint again.
   */
  function answer<T>(handle: VmHandle, step: string, value: T): T {
    writeFileSync(join(handle.dir, 'answer.json'), JSON.stringify({ step, value }));
    return value;
  }

  function answered<T>(key: string, step: string): T | undefined {
    const running = vm.find(key);
    if (!running) return undefined;
    try {
      const saved = JSON.parse(readFileSync(join(running.dir, 'answer.json'), 'utf8')) as { step: string; value: T };
      return saved.step === step ? saved.value : undefined;
    } catch {
      return undefined; // booted, but the first attempt died before it answered: the step runs again
    }
  }

  async function removeVm(id: string): Promise<void> {
    await removeVmDir(vm, deps.runRoot, id);
  }

  /** Starts the entrypoint detached in the guest; ready when it still runs after the settle window. */
  async function startEntrypoint(handle: VmHandle, entrypoint: string, settleSeconds: number): Promise<void> {
    const started = await vm.exec(handle, {
      argv: ['sh', '-c', `"$0" > ${ENTRYPOINT_LOG} 2>&1 < /dev/null & echo $! > ${ENTRYPOINT_PID}`, entrypoint],
      timeoutMs: 10_000,
    });
    let alive = started.exitCode === 0;
    if (alive) {
      await new Promise((r) => setTimeout(r, settleSeconds * 1000));
      alive = (await vm.exec(handle, { argv: ['sh', '-c', `kill -0 "$(cat ${ENTRYPOINT_PID})"`], timeoutMs: 10_000 })).exitCode === 0;
    }
    if (alive) return;
    const log = await vm.exec(handle, { argv: ['sh', '-c', `tail -n 20 ${ENTRYPOINT_LOG}`], timeoutMs: 10_000 }).catch(() => undefined);
    await vm.remove(handle);
    const output = `${started.stderr}${log?.stdout ?? ''}`.trim().slice(-2000);
    fail(
      'ENTRYPOINT_EXITED',
      `entrypoint ${entrypoint} exited within ${settleSeconds}s${output ? `; its last output:\n${output}` : ' without output'}`,
      'an entrypoint must keep running (it is the sandbox agent process); fix it in the image and create a new snapshot',
    );
  }
}

/**
 * Stops VM `id` and removes its directory. Without a handle (a worker killed between QEMU's start and writing it, or
 * mid accel probe) the pidfile still names a QEMU that would otherwise run on with its sockets deleted.
 */
async function removeVmDir(vm: VmRuntime, runRoot: string, id: string): Promise<void> {
  const handle = safeFind(vm, id);
  const dir = join(runRoot, id);
  if (handle) return vm.remove(handle);
  const pid = Number(readFileSafe(machineFiles(dir).pidFile).trim());
  if (pid > 0) await stopQemu(pid, dir, 0);
  rmSync(dir, { recursive: true, force: true });
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** A pull's partial file whose worker (the pid it names) is gone. */
function deadPullPartial(name: string): boolean {
  const pid = pullPartialPid(name);
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function safeFind(vm: VmRuntime, id: string): VmHandle | undefined {
  try {
    return vm.find(id);
  } catch {
    return undefined;
  }
}

/**
 * Leftovers of this host's VM runtime once their sandbox's workflow has ended (or never recorded itself): the QEMU
 * process and its directory; KVM probes of worker processes that died; and half-written saves and pulls in the
 * state cache older than a save could take.
 */
export async function sweepVmLeftovers(
  deps: { runRoot: string; cacheDir: string; stateDir?: string; docker: Docker },
  isRunning: (workflowId: string) => Promise<boolean>,
): Promise<{ removed: string[] }> {
  const removed: string[] = [];
  const vm = createVmRuntime({ docker: deps.docker, runRoot: deps.runRoot, cacheDir: deps.cacheDir });
  for (const id of existsSync(deps.runRoot) ? readdirSync(deps.runRoot) : []) {
    if (id.startsWith('probe-')) continue; // a worker's KVM probe: swept below once its process is gone
    const owner = vm.owner(id);
    if (owner && (await isRunning(owner))) continue;
    await removeVmDir(vm, deps.runRoot, id);
    removed.push(id);
  }
  // The host's run directory, and the default one (where a probe without a host, a test's or doctor's, runs).
  for (const dir of await sweepDeadProbes([deps.runRoot, defaultRunRoot()])) removed.push(basename(dir));
  const states = stateCachePath(deps.stateDir ?? deps.cacheDir);
  for (const name of existsSync(states) ? readdirSync(states) : []) {
    if (!isUnfinishedState(name)) continue;
    const file = join(states, name);
    // A pull killed with its worker is dead now, whatever its age: its retry writes a partial of its own.
    if (!deadPullPartial(name) && Date.now() - statSync(file).mtimeMs < STALE_MS) continue;
    rmSync(file, { force: true });
    removed.push(name);
  }
  return { removed };
}

export type VmSandboxActivities = ReturnType<typeof createVmSandbox>['activities'];
