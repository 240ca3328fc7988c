// What both workers share: how they connect and where the prebuilt workflow bundle is.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { NativeConnection, type WorkerOptions } from '@temporalio/worker';
import type { Config } from '../lib/config';
import { describeFailure } from '../lib/errors';

/** Written by `npm run build:workflows` (and by the dev stack and test harness before workers start). */
export const defaultBundlePath = resolve(__dirname, '..', 'dist', 'workflow-bundle.js');

/** A prebuilt bundle when there is one (fast start, same code everywhere), else bundle at start. */
export function workflowSource(bundlePath = process.env.SNAPFLOW_WORKFLOW_BUNDLE ?? defaultBundlePath): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  return existsSync(bundlePath) ? { workflowBundle: { codePath: bundlePath } } : { workflowsPath: require.resolve('../workflows') };
}

export function connectWorker(config: Config): Promise<NativeConnection> {
  return NativeConnection.connect({ address: config.temporal.address });
}

/** Entry points print one readable line and exit 1 instead of a stack trace. */
export function exitWithError(context: string, err: unknown): never {
  const failure = describeFailure(err);
  console.error(`✗ ${context}: ${failure.code}: ${failure.message}${failure.hint ? ` (${failure.hint})` : ''}`);
  if (process.env.SNAPFLOW_DEBUG) console.error(err);
  process.exit(1);
}
