// Worker processes under a small supervisor, as a deployment's process manager would run them: a worker that
// exits without being asked to is started again after a backoff (1 s, 2 s, 4 s … capped), and the restart is
// reported. Used by `npm start` (scripts/dev.ts) and the chaos harness (test/chaos/env.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from './stack';

export interface SuperviseOptions {
  name: string;
  /** A worker entry point relative to the project root, e.g. `workers/host.ts` (run through tsx) or a compiled `.js`. */
  script: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Both output streams are appended here. */
  logFile: string;
  /** Each output line, e.g. to print it prefixed in one terminal. */
  onLine?: (line: string) => void;
  /** Each start, with the new process's pid (e.g. to record it). */
  onStart?: (pid: number) => void;
  /** An unexpected exit and the restart it caused (`delayMs` from now). */
  onRestart?: (event: { name: string; code: number | null; signal: NodeJS.Signals | null; delayMs: number; restarts: number }) => void;
  backoff?: { initialMs?: number; maxMs?: number; /** a worker up this long starts the backoff over */ stableMs?: number };
}

export interface SupervisedWorker {
  name: string;
  logFile: string;
  /** The running process, if any. */
  child?: ChildProcess;
  /** Unexpected exits the supervisor restarted. */
  restarts: number;
  /** Starts the worker (again) now. */
  start(): void;
  /** Stops the worker and keeps it stopped until start(): SIGTERM (it drains in-flight tasks), SIGKILL after graceMs. */
  stop(opts?: { signal?: NodeJS.Signals; graceMs?: number }): Promise<void>;
}

/** The exponential backoff for the nth consecutive restart (0-based): 1 s, 2 s, 4 s … up to maxMs. */
export function restartDelay(attempt: number, initialMs = 1000, maxMs = 30_000): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20));
}

function commandFor(script: string): string[] {
  const path = join(projectRoot, script);
  return script.endsWith('.ts') ? ['--import', pathToFileURL(require.resolve('tsx')).href, path] : [path];
}

export function superviseWorker(opts: SuperviseOptions): SupervisedWorker {
  const { initialMs = 1000, maxMs = 30_000, stableMs = 60_000 } = opts.backoff ?? {};
  let wanted = false;
  let consecutive = 0;
  let timer: NodeJS.Timeout | undefined;
  const worker: SupervisedWorker = {
    name: opts.name,
    logFile: opts.logFile,
    restarts: 0,
    start() {
      wanted = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (worker.child) return;
      const startedAt = Date.now();
      const child = spawn(process.execPath, commandFor(opts.script), {
        cwd: opts.cwd,
        env: opts.env,
        detached: true, // its own process group: a terminal's Ctrl-C reaches the supervisor, which stops it in order
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let pending = '';
      const onData = (chunk: Buffer): void => {
        appendFileSync(opts.logFile, chunk);
        if (!opts.onLine) return;
        const lines = (pending + chunk.toString('utf8')).split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) opts.onLine(line);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.on('exit', (code, signal) => {
        if (pending && opts.onLine) opts.onLine(pending);
        if (worker.child !== child) return;
        worker.child = undefined;
        if (!wanted) return;
        if (Date.now() - startedAt >= stableMs) consecutive = 0;
        const delayMs = restartDelay(consecutive++, initialMs, maxMs);
        worker.restarts++;
        opts.onRestart?.({ name: opts.name, code, signal, delayMs, restarts: worker.restarts });
        timer = setTimeout(() => {
          timer = undefined;
          if (wanted && !worker.child) worker.start();
        }, delayMs);
        timer.unref();
      });
      worker.child = child;
      if (child.pid) opts.onStart?.(child.pid);
    },
    async stop({ signal = 'SIGTERM', graceMs = 30_000 } = {}) {
      wanted = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
      const child = worker.child;
      worker.child = undefined;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((done) => child.once('exit', done));
      child.kill(signal);
      const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(force);
    },
  };
  return worker;
}
