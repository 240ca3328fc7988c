// Docker work on one host, through that host's dockerd. Runs on the host worker's own task queue.
import { StringDecoder } from 'node:string_decoder';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import type { StorageConfig } from '../lib/config';
import { storageNotConfigured, toNonRetryableFailure, type ErrorCode } from '../lib/errors';
import type { HostFacts } from '../lib/hosts';
import { CONTAINER_LABEL, SANDBOX_LABEL, WORKFLOW_LABEL, WORKSPACE_LABEL } from '../lib/ids';
import type { OutputStream } from '../lib/jobOutput';
import { BASE_IMAGE_REF } from '../lib/presets';
import { fail } from './boundary';
import { limitKilled, tenantHostConfig } from './confinement';
import { ExecDemuxer } from './execStream';
import { checkHandle, type HandleClaim, type HandleRecord } from './handles';
import { outputHeartbeats, withHeartbeat } from './heartbeats';
import { followProgress } from './progress';
import { JobLog, type LogResult } from './jobLog';
import type { LogRef, LogSink } from '../catalog/logs';

export interface DockerDeps {
  docker: Docker;
  hostId: string;
  dockerHost: string;
  /** Snapshot storage; pushes fail with GOLDEN_STORAGE_NOT_CONFIGURED when absent. */
  storage?: StorageConfig;
  /** Caps the memory this host offers (SNAPFLOW_HOST_MEMORY_MIB). */
  memoryLimitMiB?: number;
  /** Where jobs' and builds' output is kept whole; omitted → only the tails in results. */
  logs?: LogSink;
  /** Per-log cap in bytes (SNAPFLOW_LOG_CAP_BYTES). */
  logCapBytes?: number;
}

export type { HostFacts } from '../lib/hosts';

export interface CreateTempSandbox extends HandleClaim {
  /** Stable per caller (e.g. the workflow id): a retried create finds the same container. */
  key: string;
  image: string;
  size?: string;
  workflowId?: string;
  /** `temp` for build scratch space, `sandbox` for a user's sandbox; both are swept once their workflow ends. */
  role?: 'temp' | 'sandbox';
  /**
   * Run this as the container's main process (an image snapshot's long-lived agent process); jobs run beside it as
   * execs, and the container stops when it exits. Without it the container idles (`sleep`).
   */
  entrypoint?: string;
}

export interface AwaitEntrypoint extends HandleClaim {
  containerId: string;
  entrypoint: string;
  /** Ready = still running this long after the start. */
  settleSeconds: number;
  /** The size it was created with, for a failure that says its memory ran out. */
  size?: string;
}

export interface SandboxHandle {
  containerId: string;
  name: string;
}

export interface ExecInSandbox extends HandleClaim {
  containerId: string;
  command: string[];
  env?: Record<string, string>;
  workdir?: string;
  /** A user's job: its process group is killed past this long, and its output is heartbeated as it comes. */
  timeoutMs?: number;
  /** The log a job's output is streamed into (whole, up to the cap). */
  log?: LogRef;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The job ran past its timeout and was killed; the output is what it wrote until then. */
  timedOut?: boolean;
  /** Where the whole output is; stdout and stderr are then each stream's last 64 KiB. */
  log?: LogResult;
  /** Cancelled by its caller: its process group got SIGTERM, then SIGKILL past the grace. */
  cancelled?: true;
}

/** After a cancel's SIGTERM, how long a job's processes have to end before SIGKILL. */
export const CANCEL_GRACE_MS = 5_000;

/** How a caller watches a running exec: its output as it comes, and a deadline with a way to kill it. */
export interface ExecWatch {
  onOutput?: (stream: OutputStream, text: string) => void;
  /** The raw bytes, as they come. */
  onBytes?: (stream: OutputStream, data: Buffer) => void;
  timeoutMs?: number;
  kill?: () => Promise<void>;
  /** A consumer of `onBytes` that can fall behind: the output stream pauses until it has caught up. */
  backpressure?: { behind(): boolean; drained(): Promise<void> };
  /** Aborted: the caller cancelled the job; `cancel` ends it (its output stream then ends as usual). */
  signal?: AbortSignal;
  cancel?: () => Promise<void>;
}

export interface RemoveSandbox extends HandleClaim {
  containerId: string;
}

export interface CommitSandbox extends HandleClaim {
  containerId: string;
  /** Repository path inside snapshot storage, e.g. `snapflow/golden/ws-1`. */
  repository: string;
  tag: string;
  changes?: string[];
}

export interface LocalImage {
  imageId: string;
  /** registry-host/repository:tag, ready to push. */
  ref: string;
}

export interface StoredImage {
  ref: string;
  digest: string;
}

/** Repository prefix of images committed on a host without snapshot storage: never pushed anywhere. */
export const LOCAL_REGISTRY = 'snapflow.local';

/** Output kept per stream, so a chatty command cannot blow up workflow history. */
const MAX_OUTPUT_BYTES = 64 * 1024;

/** After the kill, how long the job's output stream may take to close before it is cut. */
const KILL_GRACE_MS = 5_000;

/** Tries at the kill of a job past its deadline. */
const KILL_ATTEMPTS = 3;

/** Where a job records its pid: on the container's tmpfs, so a session snapshot never carries it. */
const JOB_PID_FILE = '/dev/shm/.snapflow-job.pid';

/** A job runs as `sh -c` that records its pid and then becomes the command (same pid, same process group). */
const jobCommand = (command: string[]): string[] => ['sh', '-c', 'echo $$ > "$0"; exec "$@"', JOB_PID_FILE, ...command];

/**
 * Kills the job's process group, and its process tree when it is not a group leader. The group kill uses shell
 * builtins only: a job that exhausted its pids limit (a fork bomb) leaves no room for a forked `cat`.
 */
const KILL_JOB = [
  'read -r p < "$0" 2>/dev/null || exit 0',
  'kill -KILL -"$p" 2>/dev/null',
  'tree() { for c in $(awk -v p="$1" \'$4 == p { print $1 }\' /proc/[0-9]*/stat 2>/dev/null); do tree "$c"; done; kill -KILL "$1" 2>/dev/null; }',
  'tree "$p"',
  'rm -f "$0"',
].join('\n');

/** Connection-level problems are worth retrying; everything typed above is not. */
function retryable(code: ErrorCode, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: code, message, nonRetryable: false });
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

function isConnectionError(err: unknown): boolean {
  return ['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes((err as { code?: string }).code ?? '');
}

function truncate(text: string): string {
  return text.length > MAX_OUTPUT_BYTES ? `${text.slice(0, MAX_OUTPUT_BYTES)}\n…[truncated]` : text;
}

/** Runs a command in a running container and collects its demultiplexed output and exit code. */
export async function runExec(docker: Docker, input: ExecInSandbox, watch: ExecWatch = {}): Promise<ExecResult> {
  const exec = await docker.getContainer(input.containerId).exec({
    Cmd: input.command,
    Env: Object.entries(input.env ?? {}).map(([k, v]) => `${k}=${v}`),
    WorkingDir: input.workdir,
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const errOut: Buffer[] = [];
  // Only the head the result can hold is kept here (a log keeps the rest): enough bytes for MAX_OUTPUT_BYTES
  // characters of any width, and one more so a longer output is still marked truncated.
  const HEAD_BYTES = 4 * MAX_OUTPUT_BYTES + 4;
  const collect = (into: Buffer[], name: OutputStream) => {
    const decoder = new StringDecoder('utf8');
    let held = 0;
    return (c: Buffer) => {
      if (held < HEAD_BYTES) into.push(c.subarray(0, HEAD_BYTES - held));
      held += c.length;
      watch.onBytes?.(name, c);
      if (watch.onOutput) watch.onOutput(name, decoder.write(c));
      // A log store behind the job holds the job back, not the host's memory.
      if (watch.backpressure?.behind() && !stream.isPaused()) {
        stream.pause();
        void watch.backpressure.drained().finally(() => stream.resume());
      }
    };
  };
  const sinks = { stdout: collect(out, 'stdout'), stderr: collect(errOut, 'stderr') };
  const demux = new ExecDemuxer((name, piece) => sinks[name](piece));
  stream.on('data', (chunk: Buffer) => demux.push(chunk));
  let timedOut = false;
  let cancelled = false;
  let deadline: NodeJS.Timeout | undefined;
  await new Promise<void>((done, failed) => {
    stream.on('end', done).on('close', done).on('error', failed);
    const onCancel = () => {
      cancelled = true;
      void (watch.cancel ?? (async () => undefined))()
        .catch(() => undefined)
        .then(() => setTimeout(() => (stream.destroy(), done()), KILL_GRACE_MS).unref());
    };
    if (watch.signal?.aborted) onCancel();
    else watch.signal?.addEventListener('abort', onCancel, { once: true });
    if (watch.timeoutMs === undefined) return;
    deadline = setTimeout(() => {
      timedOut = true;
      void (watch.kill ?? (async () => undefined))()
        .catch(() => undefined)
        .then(() => setTimeout(() => (stream.destroy(), done()), KILL_GRACE_MS).unref());
    }, watch.timeoutMs);
  }).finally(() => clearTimeout(deadline));
  const { ExitCode } = await exec.inspect();
  return {
    exitCode: ExitCode ?? -1,
    stdout: truncate(Buffer.concat(out).toString('utf8')),
    stderr: truncate(Buffer.concat(errOut).toString('utf8')),
    ...(timedOut ? { timedOut } : {}),
    ...(cancelled && !timedOut ? { cancelled: true as const } : {}),
  };
}

// Docker's multiplexed log frames start with control bytes; strip them so output reads as text.
// eslint-disable-next-line no-control-regex
const LOG_FRAME_BYTES = /[\x00-\x08]/g;

/** The last lines a container printed (stdout and stderr), as text. */
async function outputTail(container: Docker.Container, lines = 20): Promise<string> {
  const logs = await container.logs({ stdout: true, stderr: true, tail: lines }).catch(() => Buffer.from(''));
  return logs.toString('utf8').replace(LOG_FRAME_BYTES, '').trim().slice(-2000);
}

/** A user's job: wrapped so it can be killed at its deadline, its output heartbeated and logged as it comes. */
async function runJobExec(docker: Docker, input: ExecInSandbox, logs: JobLogs): Promise<ExecResult> {
  const output = outputHeartbeats(`exec ${input.command[0] ?? ''}`);
  const log = logs.open(input.log);
  try {
    const result = await runExec(
      docker,
      { ...input, command: jobCommand(input.command) },
      {
        onBytes: (stream, data) => (log.push(stream, data), output.pushBytes(stream, data)),
        backpressure: log,
        signal: Context.current().cancellationSignal,
        // SIGTERM to the job's group, SIGKILL (the timeout's kill, tree and all) once the grace is up.
        cancel: async () => {
          const term = [
            'read -r p < "$0" 2>/dev/null || exit 0',
            'kill -TERM -"$p" 2>/dev/null',
            'kill -TERM "$p" 2>/dev/null',
            'exit 0',
          ].join('\n');
          await runExec(docker, { containerId: input.containerId, command: ['sh', '-c', term, JOB_PID_FILE] });
          setTimeout(() => {
            void runExec(docker, { containerId: input.containerId, command: ['sh', '-c', KILL_JOB, JOB_PID_FILE] }).catch(() => undefined);
          }, CANCEL_GRACE_MS).unref();
        },
        timeoutMs: input.timeoutMs,
        kill: async () => {
          // A container at its pids limit may refuse the kill's own process for a moment: a few tries, then give up.
          for (let attempt = 1; ; attempt++) {
            try {
              return void (await runExec(docker, { containerId: input.containerId, command: ['sh', '-c', KILL_JOB, JOB_PID_FILE] }));
            } catch (err) {
              if (attempt >= KILL_ATTEMPTS) throw err;
              await new Promise((r) => setTimeout(r, 1_000));
            }
          }
        },
      },
    );
    return withLog(result, log);
  } finally {
    output.stop();
  }
}

/** Opens job logs on this host's sink with its cap. */
export interface JobLogs {
  open(ref: LogRef | undefined): JobLog;
}

export function jobLogs(sink: LogSink | undefined, capBytes?: number): JobLogs {
  return { open: (ref) => new JobLog(ref && sink, ref, { capBytes }) };
}

/** A result whose log is kept: it says where, and carries each stream's exact last 64 KiB instead of its head. */
export async function withLog(result: ExecResult, log: JobLog): Promise<ExecResult> {
  const where = await log.finish({
    outcome: result.timedOut ? 'timed-out' : result.cancelled ? 'cancelled' : 'exited',
    exitCode: result.exitCode,
  });
  if (!where) return result;
  return { ...result, stdout: log.tail('stdout'), stderr: log.tail('stderr'), log: where };
}

/** Who a container was made for, from its labels. */
function containerRecord(info: Docker.ContainerInspectInfo): HandleRecord {
  const labels = info.Config.Labels ?? {};
  const what = `container ${info.Id.slice(0, 12)}`;
  if (labels[CONTAINER_LABEL] === undefined)
    fail('HANDLE_MISMATCH', `${what} was not made by snapflow`, 'a host call acts only on containers snapflow made for it');
  return {
    what,
    workflowId: labels[WORKFLOW_LABEL],
    // Containers made before sandboxes were labelled are known by their workflow alone.
    sandbox: SANDBOX_LABEL in labels ? { sandboxId: labels[SANDBOX_LABEL]!, workspace: labels[WORKSPACE_LABEL] ?? '' } : undefined,
  };
}

export function createDockerActivities(deps: DockerDeps) {
  const { docker } = deps;
  const logs = jobLogs(deps.logs, deps.logCapBytes);

  async function guard<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (isConnectionError(err))
        throw retryable(
          'DOCKER_UNAVAILABLE',
          `Docker on host ${deps.hostId} (${deps.dockerHost}) is not reachable during ${what}: ${(err as Error).message}`,
        );
      const status = statusOf(err);
      // A request the engine rejects (4xx) fails the same way on every retry.
      if (status && status >= 400 && status < 500)
        fail('DOCKER_REJECTED', `Docker on host ${deps.hostId} rejected ${what}: ${(err as Error).message}`);
      throw err;
    }
  }

  /**
   * The container behind `containerId` (undefined when it is gone), refused HANDLE_MISMATCH unless snapflow made it
   * for the workflow that asks and for the sandbox the call names.
   */
  async function ownedContainer(containerId: string, claim: HandleClaim): Promise<Docker.ContainerInspectInfo | undefined> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await docker.getContainer(containerId).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
    checkHandle(containerRecord(info), claim);
    return info;
  }

  function storageFor(what: string): StorageConfig {
    if (!deps.storage) {
      throw toNonRetryableFailure(storageNotConfigured({ hostId: deps.hostId, what }));
    }
    return deps.storage;
  }

  return {
    async describeHost(): Promise<HostFacts> {
      return guard('describe', async () => {
        const info = (await docker.info()) as { ServerVersion: string; MemTotal: number; NCPU: number };
        const base = await docker
          .getImage(BASE_IMAGE_REF)
          .inspect()
          .catch(() => undefined);
        const running = await docker.listContainers({ filters: { label: [CONTAINER_LABEL], status: ['running'] } });
        const limits = await Promise.all(running.map(async (c) => (await docker.getContainer(c.Id).inspect()).HostConfig.Memory ?? 0));
        const engineMiB = Math.floor(info.MemTotal / 1024 / 1024);
        return {
          hostId: deps.hostId,
          dockerHost: deps.dockerHost,
          dockerVersion: info.ServerVersion,
          memoryTotalMiB: Math.min(engineMiB, deps.memoryLimitMiB ?? engineMiB),
          memoryReservedMiB: Math.round(limits.reduce((a, b) => a + b, 0) / 1024 / 1024),
          cpus: info.NCPU,
          baseImagePresent: Boolean(base),
        };
      });
    },

    async createTempSandbox(input: CreateTempSandbox): Promise<SandboxHandle> {
      const name = `snapflow-temp-${input.key.replace(/[^a-zA-Z0-9_.-]/g, '_')}`.slice(0, 200);
      return guard('create sandbox', async () => {
        let container = docker.getContainer(name);
        let created = false;
        try {
          container = await docker.createContainer({
            name,
            Image: input.image,
            ...(input.entrypoint ? { Entrypoint: [input.entrypoint], Cmd: [] } : { Cmd: ['sleep', '2147483647'] }),
            Labels: {
              [CONTAINER_LABEL]: input.role ?? 'temp',
              [WORKFLOW_LABEL]: input.workflowId ?? '',
              [SANDBOX_LABEL]: input.sandboxId ?? '',
              [WORKSPACE_LABEL]: input.workspace ?? '',
            },
            HostConfig: tenantHostConfig(input.size),
          });
          created = true;
        } catch (err) {
          if (statusOf(err) === 404)
            fail('IMAGE_NOT_FOUND', `image ${input.image} is not present on host ${deps.hostId}`, 'pull or build it on that host first');
          if (statusOf(err) !== 409) throw err; // 409: a retried attempt already created it
          checkHandle(containerRecord(await container.inspect()), input); // …and not someone else's of the same name
        }
        // Only a container a retried attempt left behind may be running already.
        if (created || !(await container.inspect()).State.Running) {
          try {
            await container.start();
          } catch (err) {
            if (!input.entrypoint || statusOf(err) === undefined) throw err;
            // The engine could not run the entrypoint at all (not executable, no interpreter): nothing is left behind.
            await container.remove({ force: true, v: true }).catch(() => undefined);
            fail('ENTRYPOINT_EXITED', `entrypoint ${input.entrypoint} could not start in ${input.image}: ${(err as Error).message}`);
          }
        }
        return { containerId: created ? container.id : (await container.inspect()).Id, name };
      });
    },

    /**
     * Ready when the entrypoint is still running after the settle window. When it exited (or never started), the
     * container is removed and the start fails ENTRYPOINT_EXITED with the last lines of its output.
     */
    async awaitEntrypoint(input: AwaitEntrypoint): Promise<{ output: string }> {
      return guard('entrypoint check', () =>
        withHeartbeat('entrypoint', async () => {
          await ownedContainer(input.containerId, input);
          const container = docker.getContainer(input.containerId);
          await new Promise((r) => setTimeout(r, input.settleSeconds * 1000));
          const state = (await container.inspect()).State;
          const output = await outputTail(container);
          if (state.Running) return { output };
          await container.remove({ force: true, v: true }).catch(() => undefined);
          const killed = limitKilled(state, input.size);
          return fail(
            'ENTRYPOINT_EXITED',
            `entrypoint ${input.entrypoint} exited ${state.ExitCode} within ${input.settleSeconds}s${killed ? ` (${killed})` : ''}${output ? `; its last output:\n${output}` : ' without output'}`,
            'an entrypoint must keep running (it is the sandbox agent process); fix it in the image and create a new snapshot',
          );
        }),
      );
    },

    async execInSandbox(input: ExecInSandbox): Promise<ExecResult> {
      return guard('exec', async () => {
        await ownedContainer(input.containerId, input);
        if (input.timeoutMs !== undefined) return runJobExec(docker, input, logs);
        return withHeartbeat(`exec ${input.command[0] ?? ''}`, () => runExec(docker, input));
      });
    },

    /** Named for snapshot storage when it is configured; otherwise a local-only image (host cache). */
    async commitSandbox(input: CommitSandbox): Promise<LocalImage> {
      const repo = `${deps.storage?.registryHost ?? LOCAL_REGISTRY}/${input.repository}`;
      return guard('commit', () =>
        withHeartbeat('commit', async () => {
          await ownedContainer(input.containerId, input);
          // pause:false — the sandbox keeps running; the caller has already quiesced it.
          // An absent `changes` must not be sent at all: an empty one is parsed as a Dockerfile with no instructions.
          const options = { repo, tag: input.tag, pause: false, ...(input.changes?.length ? { changes: input.changes } : {}) };
          // A retry after a commit that finished finds that image under its tag, made from this container.
          const earlier = await docker
            .getImage(`${repo}:${input.tag}`)
            .inspect()
            .catch(() => undefined);
          if (earlier && earlier.Container === input.containerId) return { imageId: earlier.Id, ref: `${repo}:${input.tag}` };
          const result = (await docker.getContainer(input.containerId).commit(options)) as { Id: string };
          return { imageId: result.Id, ref: `${repo}:${input.tag}` };
        }),
      );
    },

    async pushImage(input: { ref: string }): Promise<StoredImage> {
      const storage = storageFor('uploading a snapshot');
      const tagAt = input.ref.lastIndexOf(':');
      const [name, tag] = [input.ref.slice(0, tagAt), input.ref.slice(tagAt + 1)];
      return guard('push', () =>
        withHeartbeat('push', async () => {
          const auth = { username: storage.username, password: storage.password, serveraddress: storage.registryHost };
          let events: unknown[];
          try {
            const stream = await docker.getImage(name).push({ tag, authconfig: auth });
            events = await followProgress(docker, stream);
          } catch (err) {
            const message = (err as Error).message;
            if (/unauthorized|authentication required|no basic auth/i.test(message)) {
              fail(
                'REGISTRY_AUTH_FAILED',
                `snapshot storage at ${storage.url} rejected the credentials`,
                'check SNAPFLOW_STORAGE_USERNAME and SNAPFLOW_STORAGE_PASSWORD',
              );
            }
            throw retryable('STORAGE_UNAVAILABLE', `upload of ${input.ref} to ${storage.url} failed: ${message}`);
          }
          const digest = events.map((e) => (e as { aux?: { Digest?: string } }).aux?.Digest).find(Boolean);
          if (!digest) throw retryable('STORAGE_UNAVAILABLE', `upload of ${input.ref} ended without a digest`);
          return { ref: input.ref, digest };
        }),
      );
    },

    /** Idempotent: a container that is already gone counts as removed. */
    async removeSandbox(input: RemoveSandbox): Promise<void> {
      await guard('remove sandbox', async () => {
        if (!(await ownedContainer(input.containerId, input))) return;
        try {
          await docker.getContainer(input.containerId).remove({ force: true, v: true });
        } catch (err) {
          if (statusOf(err) !== 404 && statusOf(err) !== 409) throw err; // 409: removal already in progress
        }
      });
    },

    /** Idempotent local image removal (the stored copy in the registry stays). */
    async removeLocalImage(input: { ref: string }): Promise<void> {
      await guard('remove image', async () => {
        try {
          await docker.getImage(input.ref).remove({ noprune: false });
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
        }
      });
    },
  };
}

export type DockerActivities = ReturnType<typeof createDockerActivities>;
