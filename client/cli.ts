// The snapflow CLI: thin, it calls the client. Every command takes --json.
import { randomUUID } from 'node:crypto';
import { Command } from 'commander';
import { loadConfig, loadDotEnv } from '../lib/config';
import { describeFailure } from '../lib/errors';
import { runDoctor, type Check } from './doctor';
import { SnapflowClient } from './index';
import { registerAgentCommands } from './cliAgents';
import { registerGoldenCommands } from './cliGolden';
import { registerSandboxCommands } from './cliSandboxes';
import { registerWorkspaceCommands } from './cliWorkspaces';
import { registerSnapshotCommands } from './cliSnapshots';

const marks: Record<Check['status'], string> = { ok: '✓', warn: '!', fail: '✗' };

function printChecks(checks: Check[], json: boolean): void {
  if (json) return console.log(JSON.stringify({ ok: checks.every((c) => c.status !== 'fail'), checks }, null, 2));
  const width = Math.max(...checks.map((c) => c.name.length));
  for (const c of checks) {
    console.log(`${marks[c.status]} ${c.name.padEnd(width)}  ${c.detail}${c.fix ? `\n  ${' '.repeat(width)}  fix: ${c.fix}` : ''}`);
  }
}

/** Failures print `code: message` and the hint; with --json the same object. Exit code 1. */
function printError(err: unknown, json: boolean): void {
  const failure = describeFailure(err);
  if (json) console.log(JSON.stringify({ ok: false, error: failure }, null, 2));
  else console.error(`${failure.code}: ${failure.message}${failure.hint ? `\n  hint: ${failure.hint}` : ''}`);
  if (process.env.SNAPFLOW_DEBUG) console.error(err);
  process.exitCode = 1;
}

async function withClient<T>(work: (client: SnapflowClient) => Promise<T>): Promise<T> {
  // `--as <user>` (anywhere on the line) overrides SNAPFLOW_ACTOR for this command.
  const at = process.argv.indexOf('--as');
  const env = at > 0 && process.argv[at + 1] ? { ...process.env, SNAPFLOW_ACTOR: process.argv[at + 1] } : process.env;
  const client = await SnapflowClient.connect(loadConfig(env));
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

export function buildCli(): Command {
  const program = new Command('snapflow')
    .description('Sandbox snapshots on Temporal')
    .showHelpAfterError()
    .option('--as <user>', 'act as this user (default SNAPFLOW_ACTOR)');

  program
    .command('doctor')
    .description('check Temporal, Postgres, each Docker host, snapshot storage and the GitHub App')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const checks = await runDoctor();
      printChecks(checks, Boolean(opts.json));
      if (checks.some((c) => c.status === 'fail')) process.exitCode = 1;
    });

  const host = program.command('host').description('Docker hosts');
  host
    .command('self-test <hostId>')
    .description('create, exec in, commit and remove a sandbox on a host, then upload it to storage')
    .option('--no-push', 'skip the upload to snapshot storage')
    .option('--json', 'machine-readable output')
    .action(async (hostId: string, opts: { push: boolean; json?: boolean }) => {
      try {
        const result = await withClient((client) => client.hostSelfTest({ hostId, push: opts.push, nonce: randomUUID() }));
        if (opts.json) console.log(JSON.stringify({ ok: true, result }, null, 2));
        else
          console.log(`✓ host ${hostId}: ${result.output}${result.stored ? `; stored ${result.stored.ref}@${result.stored.digest}` : ''}`);
      } catch (err) {
        printError(err, Boolean(opts.json));
      }
    });

  const run = async <T>(
    json: boolean | undefined,
    work: (client: SnapflowClient) => Promise<T>,
    print: (result: T) => void,
  ): Promise<void> => {
    try {
      const result = await withClient(work);
      if (json) console.log(JSON.stringify({ ok: true, result }, null, 2));
      else print(result);
    } catch (err) {
      printError(err, Boolean(json));
    }
  };
  host
    .command('drain <hostId>')
    .description('place no new work on a host; its sandboxes restart elsewhere from storage')
    .option('--json', 'machine-readable output')
    .action(async (hostId: string, o: { json?: boolean }) =>
      run(
        o.json,
        (client) => client.drainHost(hostId),
        () => console.log(`✓ host ${hostId} is draining`),
      ),
    );
  host
    .command('undrain <hostId>')
    .description('let a drained host take new work again')
    .option('--json', 'machine-readable output')
    .action(async (hostId: string, o: { json?: boolean }) =>
      run(
        o.json,
        (client) => client.undrainHost(hostId),
        () => console.log(`✓ host ${hostId} is online`),
      ),
    );

  registerSnapshotCommands(program, run);
  registerGoldenCommands(program, run);
  registerSandboxCommands(program, run);
  registerWorkspaceCommands(program, run);
  registerAgentCommands(program, run);

  return program;
}

export function main(): void {
  loadDotEnv();
  buildCli()
    .parseAsync(process.argv)
    .catch((err) => printError(err, process.argv.includes('--json')));
}

if (require.main === module) main();
