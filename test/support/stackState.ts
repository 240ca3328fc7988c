import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { StorageConfig } from '../../lib/config';
import { projectRoot, stopProcess } from '../../scripts/stack';

/** What globalSetup started, for the tests and for teardown. */
export interface TestStackState {
  dir: string;
  processes: Array<{ name: string; pid: number }>;
  temporalAddress: string;
  dockerHost: string;
  storage: StorageConfig;
  bundlePath: string;
}

/**
 * Where this test run writes its state file path, so scripts/test.sh can stop its stack if jest dies.
 * Per run (SNAPFLOW_TEST_POINTER from test.sh), so concurrent runs never stop each other's processes.
 */
export const stateFilePointer = process.env.SNAPFLOW_TEST_POINTER ?? join(projectRoot, '.data', `test-stack-${process.pid}`);

export function readTestStack(): TestStackState {
  const file = process.env.SNAPFLOW_TEST_STATE ?? (existsSync(stateFilePointer) ? readFileSync(stateFilePointer, 'utf8').trim() : '');
  if (!file || !existsSync(file)) throw new Error('test stack not started: run tests through jest (globalSetup)');
  return JSON.parse(readFileSync(file, 'utf8')) as TestStackState;
}

/** Stops every process by pid, newest first, then removes the temp dir. Safe to call twice. */
export async function stopTestStack(state: Pick<TestStackState, 'dir' | 'processes'>): Promise<void> {
  for (const proc of [...state.processes].reverse()) await stopProcess(proc).catch(() => undefined);
  rmSync(state.dir, { recursive: true, force: true });
  rmSync(stateFilePointer, { force: true });
}
