// A build's boot check: the image's entrypoint started the way a sandbox starts it (confined, no network), watched for
// a bounded window with its output streamed into the build's log. Image snapshots and golden builds both use it; each
// decides what the outcome means.
import { PassThrough } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type Docker from 'dockerode';
import { CONTAINER_LABEL } from '../lib/ids';
import { limitKilled, tenantHostConfig } from './confinement';
import type { JobLog } from './jobLog';

/** What a boot check keeps of the entrypoint's output before its cut (the true last 64 KiB are kept past it). */
export const BOOT_LOG_CAP_BYTES = 1024 * 1024;
/** Lines of the entrypoint's last output a failure message carries, and characters of each (a line's end). */
const LAST_LINES = 10;
const LINE_CHARS = 200;

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
  /**
   * Its last lines, control characters removed: stderr's when it wrote any (where an error usually goes; the engine
   * does not keep the order between the two streams), else stdout's.
   */
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
  const recent = { stdout: new LineTail(), stderr: new LineTail() };
  const lastOutput = (): string => (recent.stderr.any() ? recent.stderr : recent.stdout).text();
  let output: NodeJS.ReadableStream | undefined;
  try {
    await container.start();
    const started = Date.now();
    output = (await container.logs({ follow: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream;
    const stream = output;
    const take = (name: 'stdout' | 'stderr') => (data: Buffer) => {
      input.log.push(name, data);
      recent[name].push(data);
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
    const waiting = container.wait() as Promise<{ StatusCode: number }>;
    waiting.catch(() => undefined); // a wait the removal below cuts short is no one's error
    const exit = await Promise.race([waiting, delay(input.windowMs)]);
    const ranMs = Math.min(Date.now() - started, input.windowMs);
    if (!exit) return { ranMs, lastOutput: lastOutput() };
    await Promise.race([ended, delay(2_000)]); // an exited container's last bytes
    const killed = exit.StatusCode !== 0 ? limitKilled((await container.inspect()).State, input.size) : undefined;
    return { exitCode: exit.StatusCode, ...(killed ? { killed } : {}), ranMs, lastOutput: lastOutput() };
  } finally {
    (output as { destroy?: () => void } | undefined)?.destroy?.();
    await container.remove({ force: true, v: true }).catch(() => undefined);
  }
}

function delay(ms: number): Promise<undefined> {
  return new Promise((done) => setTimeout(() => done(undefined), ms).unref());
}

/** The last lines of a stream, each cut to its last characters: a flood of one long line stays small. */
class LineTail {
  private lines: string[] = [''];
  private readonly decoder = new StringDecoder('utf8');

  push(data: Buffer): void {
    const parts = this.decoder.write(data).split('\n');
    this.lines[this.lines.length - 1] = (this.lines[this.lines.length - 1]! + parts[0]!).slice(-LINE_CHARS - 1);
    for (const part of parts.slice(1)) this.lines.push(part.slice(-LINE_CHARS - 1));
    if (this.lines.length > LAST_LINES + 1) this.lines = this.lines.slice(-LAST_LINES - 1);
  }

  any(): boolean {
    return this.lines.some((l) => l.trim() !== '');
  }

  /** Safe to show in a terminal: no control characters but newlines and tabs. */
  text(): string {
    return (
      this.lines
        .map((l) => (l.length > LINE_CHARS ? `…${l.slice(-LINE_CHARS)}` : l))
        // eslint-disable-next-line no-control-regex
        .map((l) => l.replace(/\r/g, '').replace(/\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]/g, ''))
        .join('\n')
        .trim()
        .split('\n')
        .slice(-LAST_LINES)
        .join('\n')
    );
  }
}
