// What both workers share: how they connect and where the prebuilt workflow bundle is.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NativeConnection, type WorkerOptions } from '@temporalio/worker';
import type { Config } from '../lib/config';
import { SnapflowError, describeFailure } from '../lib/errors';
import { workerLogger } from './log';

/** The directory holding package.json, whether this file runs from source (workers/) or compiled (dist/workers/). */
export function packageRoot(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return from;
  }
}

/** Written by `npm run build:workflows` (and by the dev stack and test harness before workers start). */
export const defaultBundlePath = join(packageRoot(), 'dist', 'workflow-bundle.js');

/** A prebuilt bundle when there is one (fast start, same code everywhere), else bundle at start. */
export function workflowSource(
  bundlePath = process.env.SNAPFLOW_WORKFLOW_BUNDLE ?? defaultBundlePath,
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  return existsSync(bundlePath) ? { workflowBundle: { codePath: bundlePath } } : { workflowsPath: require.resolve('../workflows') };
}

export async function connectWorker(config: Config): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect(config.temporal.connection.options);
  } catch {
    throw new SnapflowError({
      code: 'TEMPORAL_UNAVAILABLE',
      field: 'TEMPORAL_ADDRESS',
      message: `Temporal is not reachable at ${config.temporal.address}`,
      hint: 'start the stack with `npm start`, or point TEMPORAL_ADDRESS at your cluster',
    });
  }
}

/** Entry points print one readable line (a JSON line once logging is set up) and exit 1 instead of a stack trace. */
export function exitWithError(context: string, err: unknown): never {
  const failure = describeFailure(err);
  const log = workerLogger();
  if (log) {
    log.error(`${context}: ${failure.message}`, {
      code: failure.code,
      hint: failure.hint,
      ...(err instanceof Error ? { error: err } : {}),
    });
    process.exit(1);
  }
  console.error(`✗ ${context}: ${failure.code}: ${failure.message}${failure.hint ? ` (${failure.hint})` : ''}`);
  if (process.env.SNAPFLOW_DEBUG) console.error(err);
  process.exit(1);
}
