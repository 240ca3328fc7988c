// A build's boot check: the image's entrypoint started the way a sandbox starts it (confined, no network), watched for
// a bounded window with its output streamed into the build's log. Image snapshots and golden builds both use it; each
// decides what the outcome means.
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { CONTAINER_LABEL } from '../lib/ids';
import { limitKilled, tenantHostConfig } from './confinement';
import type { JobLog } from './jobLog';

/** What a boot check keeps of the entrypoint's output before its cut (the true last 64 KiB are kept past it). */
export const BOOT_LOG_CAP_BYTES = 1024 * 1024;
/** Characters of the entrypoint's last output a failure message carries. */
const LAST_OUTPUT_CHARS = 1500;

export interface BootWatch {
  image: string;
  entrypoint: string;
  /** The size the image boots as: its memory, CPUs and the sandbox limits confine the check. */
  size?: string;
  /** How long the entrypoint is watched: still running at its end means up. */
  windowMs: number;
  /** Where the entrypoint's stdout and stderr go as they come. */
  log: JobLog;
}

export interface BootOutcome {
  /** Absent: still running when the window closed. */
  exitCode?: number;
  /** Set when the host's limits ended it (its memory). */
  killed?: string;
  /** Milliseconds from its start to its exit, or the window. */
  ranMs: number;
  /** Its last lines, both streams in the order they came, control characters removed. */
  lastOutput: string;
}

/**
 * Starts the entrypoint and watches it for `windowMs` (never longer), then removes its container. A start the engine
 * refuses (no such file, no interpreter) throws Docker's 400/500 error for the caller to type.
 */
export async function watchEntrypoint(docker: Docker, input: BootWatch): Promise<BootOutcome> {
  const container = await docker.createContainer({
    Image: input.image,
    Entrypoint: [input.entrypoint],
    Cmd: [],
    Labels: { [CONTAINER_LABEL]: 'temp' }, // no workflow: a host worker's start-up sweep removes one a crash left
    HostConfig: tenantHostConfig(input.size),
  });
  let recent = '';
  let output: NodeJS.ReadableStream | undefined;
  try {
    await container.start();
    const started = Date.now();
    output = (await container.logs({ follow: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream;
    const stream = output;
    const take = (name: 'stdout' | 'stderr') => (data: Buffer) => {
      input.log.push(name, data);
      recent = (recent + data.toString('utf8')).slice(-4 * LAST_OUTPUT_CHARS);
      // The store behind the log holds the entrypoint back, not the host's memory.
      if (input.log.behind() && !stream.isPaused()) {
        stream.pause();
        void input.log.drained().finally(() => stream.resume());
      }
    };
    docker.modem.demuxStream(stream, new PassThrough().on('data', take('stdout')), new PassThrough().on('data', take('stderr')));
    const ended = new Promise<void>((done) =>
      stream
        .on('end', done)
        .on('close', done)
        .on('error', () => done()),
    );
    const exit = await Promise.race([container.wait() as Promise<{ StatusCode: number }>, delay(input.windowMs)]);
    const ranMs = Math.min(Date.now() - started, input.windowMs);
    if (!exit) return { ranMs, lastOutput: lastLines(recent) };
    await Promise.race([ended, delay(2_000)]); // an exited container's last bytes
    const killed = exit.StatusCode !== 0 ? limitKilled((await container.inspect()).State, input.size) : undefined;
    return { exitCode: exit.StatusCode, ...(killed ? { killed } : {}), ranMs, lastOutput: lastLines(recent) };
  } finally {
    (output as { destroy?: () => void } | undefined)?.destroy?.();
    await container.remove({ force: true, v: true }).catch(() => undefined);
  }
}

function delay(ms: number): Promise<undefined> {
  return new Promise((done) => setTimeout(() => done(undefined), ms).unref());
}

/** The last lines of what an image printed, safe to show in a terminal: no control characters but newlines and tabs. */
function lastLines(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/\r\n?/g, '\n').replace(/\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]/g, '');
  const lines = clean.trimEnd().split('\n').slice(-20).join('\n');
  return lines.length > LAST_OUTPUT_CHARS ? `…${lines.slice(-LAST_OUTPUT_CHARS)}` : lines;
}
