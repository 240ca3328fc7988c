// The shape every `snapflow …` command module receives from cli.ts: run one client call, print its result.
import type { SnapflowClient } from './index';

/** Runs `work` with a connected client; prints `print(result)`, or the result bare with --json; exits by kind. */
export type Run = <T>(
  json: boolean | undefined,
  work: (client: SnapflowClient) => Promise<T>,
  print: (result: T) => void,
  exitCode?: (result: T) => number,
) => Promise<void>;
