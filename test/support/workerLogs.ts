// Where the suite's workers write their logs, for tests that read them (e.g. a scan for secrets): worker processes
// a test starts log here by name, and every test file's in-process workers (test/support/stack.ts) send the
// Temporal Runtime's log lines (the same JSON lines a worker process writes, redacted alike) to a file here.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readTestStack } from './stackState';

export function workerLogDir(): string {
  const dir = join(readTestStack().dir, 'worker-logs');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A log file for one worker of one test file, e.g. workerLogFile('operations-host'). */
export function workerLogFile(name: string): string {
  return join(workerLogDir(), `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`);
}

/** Every worker log the suite has written so far. */
export function workerLogFiles(): string[] {
  const dir = join(readTestStack().dir, 'worker-logs');
  return existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f)) : [];
}
