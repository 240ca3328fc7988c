// The snapflow CLI: thin, it calls the client. Every command with a result takes --json (the result bare on stdout).
// Start-up stays light (`snapflow --help` answers at once): the SDK, the database driver, the client and the
// doctor load only when a command runs.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, CommanderError } from 'commander';
import type { Check } from './doctor';
import type { SnapflowClient } from './index';
import { registerAgentCommands } from './cliAgents';
import { registerCompletionCommand } from './cliCompletion';
import { applyWorkspaceDefault, registerConfigCommands } from './cliConfig';
import { registerGoldenCommands } from './cliGolden';
import { registerSandboxCommands } from './cliSandboxes';
import { registerWorkspaceCommands } from './cliWorkspaces';
import { registerSnapshotCommands } from './cliSnapshots';
import { registerTokenCommands } from './cliTokens';
import { EXIT, exitCodeFor } from './exitCodes';

const marks: Record<Check['status'], string> = { ok: '✓', warn: '!', fail: '✗' };

/** Our own arguments: everything before a `--` (what follows belongs to the job). */
const ownArgs = (argv: string[]): string[] => argv.slice(0, argv.includes('--') ? argv.indexOf('--') : undefined);

/** With --json (before any `--`), stdout carries only the result and stderr only the failure, both as JSON. */
const jsonMode = (argv: string[]): boolean => ownArgs(argv).includes('--json');

/** What the parsed command line says beyond a command's own options: `--as <user>` (or `--as=user`) before any `--`. */
const invocation: { actor?: string } = {};

/**
 * The command a line names: the longest run of leading words that are subcommands (flags skipped), and the words
 * left over. `snapflow help snapshot create` and the docs test resolve commands with it, without running anything.
 */
export function resolveCommand(program: Command, words: string[]): { command: Command; path: string[]; rest: string[] } {
  let command = program;
  const path: string[] = [];
  const rest = [...words];
  while (rest.length) {
    const next = command.commands.find((c) => c.name() === rest[0] || c.aliases().includes(rest[0]!));
    if (!next) break;
    command = next;
    path.push(rest.shift()!);
  }
  return { command, path, rest };
}

function printChecks(checks: Check[], json: boolean): void {
  if (json) return console.log(JSON.stringify({ ok: checks.every((c) => c.status !== 'fail'), checks }, null, 2));
  const width = Math.max(...checks.map((c) => c.name.length));
  for (const c of checks) {
    console.log(`${marks[c.status]} ${c.name.padEnd(width)}  ${c.detail}${c.fix ? `\n  ${' '.repeat(width)}  fix: ${c.fix}` : ''}`);
  }
}

/** A catalog read the client made itself that could not connect is DATABASE_UNAVAILABLE with its fix, not INTERNAL. */
async function asDatabaseError(err: unknown): Promise<unknown> {
  const [{ toDatabaseError }, { loadConfig }] = await Promise.all([import('../db/client'), import('../lib/config')]);
  try {
    const url = loadConfig(process.env).databaseUrl;
    const port = Number(new URL(url).port || 5432);
    // Only a socket error on the catalog's port: a refused API or Temporal connection is theirs to describe.
    for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
      if ((e as { port?: unknown }).port === port) return toDatabaseError(err, url);
    }
    return err;
  } catch {
    return err; // no valid config: the error stays what it was
  }
}

/** Failures print `code: message` and the hint; with --json the same object on stderr. Exit code by kind (exitCodes.ts). */
async function printError(err: unknown, json: boolean): Promise<void> {
  const { describeFailure } = await import('../lib/errors');
  const failure = describeFailure(await asDatabaseError(err));
  if (json)
    console.error(
      JSON.stringify({ code: failure.code, message: failure.message, field: failure.field ?? null, hint: failure.hint ?? null }, null, 2),
    );
  else console.error(`${failure.code}: ${failure.message}${failure.hint ? `\n  hint: ${failure.hint}` : ''}`);
  if (process.env.SNAPFLOW_DEBUG) console.error(err);
  process.exitCode = exitCodeFor(failure.code);
}

/** A usage error commander found (unknown command or option, missing argument): one line and a hint, exit 2. */
function printUsageError(err: CommanderError, argv: string[], json: boolean): void {
  process.exitCode = EXIT.usage;
  const words = ownArgs(argv.slice(2)).filter((w) => !w.startsWith('-'));
  const { path } = resolveCommand(buildCli([]), words);
  const hint = `see \`${['snapflow', ...path].join(' ')} --help\``;
  if (!json) {
    // commander has printed its line (and a "Did you mean …?"); `snapflow host` alone printed its help instead
    if (err.code !== 'commander.help') console.error(`  hint: ${hint}`);
    return;
  }
  const message = err.code === 'commander.help' ? 'a subcommand is required' : err.message.replace(/^error: /, '');
  const name = /(?:option|argument) '(?:--)?([a-z][\w-]*)/i.exec(message)?.[1];
  const field = name?.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  console.error(JSON.stringify({ code: 'VALIDATION_FAILED', message, field: field ?? null, hint }, null, 2));
}

/** The command words of a CLI line (`sandbox run`), for its span's name: never its arguments, which may be data. */
function commandName(argv: string[]): string {
  const words: string[] = [];
  for (const arg of argv.slice(2)) {
    if (arg.startsWith('-') || words.length === 2) break;
    words.push(arg);
  }
  return words.join(' ');
}

async function withClient<T>(work: (client: SnapflowClient) => Promise<T>): Promise<T> {
  // With an API URL and a token (environment or `snapflow login`), the API and nothing else: no database, no Temporal.
  const { apiCredentials } = await import('./credentials');
  const api = apiCredentials();
  if (api) {
    if (invocation.actor !== undefined) {
      const { SnapflowError } = await import('../lib/errors');
      throw new SnapflowError({
        code: 'PERMISSION_DENIED',
        field: 'as',
        message: '--as cannot change who the token says you are',
        hint: 'drop --as, or use a token made for that user (snapflow token create --user …)',
      });
    }
    const { SnapflowApiClient } = await import('./api');
    // The API client has the calls the CLI makes; one the API does not offer fails where it is used.
    return work(new SnapflowApiClient(api) as unknown as SnapflowClient);
  }
  const [{ loadConfig }, { SnapflowClient }] = await Promise.all([import('../lib/config'), import('./index')]);
  // `--as <user>` (as commander parsed it: `--as=user` too, never a word after `--`) overrides SNAPFLOW_ACTOR.
  const env = invocation.actor ? { ...process.env, SNAPFLOW_ACTOR: invocation.actor } : process.env;
  // Connects on the first Temporal call: a command's input is validated before anything is reached.
  const client = SnapflowClient.lazy(loadConfig(env), { env });
  try {
    // One trace per command when tracing is on (OTEL_EXPORTER_OTLP_ENDPOINT): its calls, workflows and activities.
    return await client.traced(`snapflow ${commandName(process.argv)}`, () => work(client));
  } catch (err) {
    throw client.connectFailure ?? err;
  } finally {
    await client.close();
  }
}

/** Runs a command: the result itself on stdout with --json, else `print`; `exitCode` for results that are failures. */
async function run<T>(
  json: boolean | undefined,
  work: (client: SnapflowClient) => Promise<T>,
  print: (result: T) => void,
  exitCode?: (result: T) => number,
): Promise<void> {
  try {
    const result = await withClient(work);
    if (json) console.log(JSON.stringify(result, null, 2));
    else print(result);
    if (exitCode) process.exitCode = exitCode(result);
  } catch (err) {
    await printError(err, Boolean(json));
  }
}

/** The package version, from the package.json above this file (client/ in the repository, dist/client/ when built). */
function packageVersion(): string {
  for (let dir = __dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return '0.0.0';
}

export function buildCli(argv: string[] = process.argv): Command {
  const json = jsonMode(argv);
  const program = new Command('snapflow')
    .description('Sandbox snapshots on Temporal')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput(json ? { writeErr: () => undefined, outputError: () => undefined } : {})
    .option('--as <user>', 'act as this user (default SNAPFLOW_ACTOR)');
  // .env is read once a command runs, not for --help; then the actor and the default workspace, before connecting.
  program.hook('preAction', async (root, action) => {
    (await import('../lib/config')).loadDotEnv();
    invocation.actor = (root.opts() as { as?: string }).as;
    await applyWorkspaceDefault(action);
  });

  program
    .command('doctor')
    .description('check Temporal, Postgres, each Docker host, snapshot storage and the GitHub App')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { runDoctor } = await import('./doctor');
      const checks = await runDoctor();
      printChecks(checks, Boolean(opts.json));
      if (checks.some((c) => c.status === 'fail')) process.exitCode = EXIT.failed;
    });

  const host = program.command('host').description('Docker hosts');
  host
    .command('self-test <hostId>')
    .description('create, exec in, commit and remove a sandbox on a host, then upload it to storage')
    .option('--no-push', 'skip the upload to snapshot storage')
    .option('--json', 'machine-readable output')
    .action(async (hostId: string, opts: { push: boolean; json?: boolean }) =>
      run(
        opts.json,
        (client) => client.hostSelfTest({ hostId, push: opts.push, nonce: randomUUID() }),
        (result) =>
          console.log(`✓ host ${hostId}: ${result.output}${result.stored ? `; stored ${result.stored.ref}@${result.stored.digest}` : ''}`),
      ),
    );
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

  const storage = program.command('storage').description('snapshot storage (operators)');
  storage
    .command('gc')
    .description('free the blobs no stored snapshot references any more (deleted, pruned); a dry run unless --yes')
    .option('--yes', 'remove them (the registry garbage-collects); without it only report')
    .option('--json', 'machine-readable output')
    .action(async (o: { yes?: boolean; json?: boolean }) =>
      run(
        o.json,
        (client) => client.storageGc({ yes: o.yes }),
        (r) => {
          const size = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
          if (r.dryRun) {
            console.log(`${r.blobs} unreferenced blobs, ${size(r.bytes)}, would be freed of ${size(r.storageBytesBefore)} stored`);
            console.log(`  ${r.manifests} manifests kept; run \`snapflow storage gc --yes\` to remove them`);
          } else {
            console.log(`✓ freed ${r.blobs} blobs, ${size(r.bytes)}: storage ${size(r.storageBytesBefore)} → ${size(r.storageBytesAfter)}`);
            const damaged = r.check?.damaged ?? [];
            if (!damaged.length) console.log(`  ${r.check?.checked ?? 0} live snapshots checked: every blob they name is stored`);
            for (const d of damaged) console.log(`✗ ${d.workspace}/${d.name} (${d.storedRef}) misses ${d.missing.join(', ')}`);
          }
        },
        // Checked after the sweep: a live snapshot left without a blob no longer pulls, whatever was freed.
        (r) => (r.check?.damaged.length ? EXIT.failed : EXIT.ok),
      ),
    );

  registerSnapshotCommands(program, run);
  registerGoldenCommands(program, run);
  registerSandboxCommands(program, run);
  registerWorkspaceCommands(program, run);
  registerAgentCommands(program, run);
  registerConfigCommands(program);
  registerTokenCommands(program, run);
  registerCompletionCommand(program);

  return program;
}

/** `help a b` is `a b --help` (commander's own help command only looks one word deep). */
function expandHelp(argv: string[]): string[] {
  const [node = 'node', script = 'snapflow', first, ...rest] = argv;
  if (first !== 'help') return argv;
  return [node, script, ...rest.filter((w) => w !== '--help' && w !== '-h'), '--help'];
}

export function main(argv: string[] = process.argv): void {
  const json = jsonMode(argv);
  const args = expandHelp(argv);
  buildCli(args)
    .parseAsync(args)
    .catch(async (err: unknown) => {
      if (err instanceof CommanderError) {
        // --help and --version end here with 0; `snapflow host` alone prints its help and is a usage error.
        if (err.exitCode === 0) process.exitCode = EXIT.ok;
        else printUsageError(err, args, json);
        return;
      }
      await printError(err, json);
    });
}

if (require.main === module) main();
