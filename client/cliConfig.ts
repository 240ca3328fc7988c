// `snapflow config …`: the CLI's own defaults (today: the workspace), kept in ~/.config/snapflow/config.json (0600),
// and the `--workspace` option every workspace command shares: the flag, else SNAPFLOW_WORKSPACE, else the config.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Option, type Command } from 'commander';

/** The keys `snapflow config` knows, with what each means (an unknown key is refused, not stored). */
const KEYS = { workspace: 'the workspace a command uses when --workspace is omitted' } as const;
type Key = keyof typeof KEYS;
type Stored = Partial<Record<Key, string>>;

export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.SNAPFLOW_CONFIG_DIR ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'snapflow');
  return join(dir, 'config.json');
}

/** A usage failure before anything connects: the CLI prints it like any typed error (exit 2). */
async function usage(field: string, message: string, hint: string): Promise<Error> {
  const { validationError } = await import('../lib/validation');
  return validationError(field, message, hint);
}

function read(file = configFile()): Stored {
  if (!existsSync(file)) return {};
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Stored) : {};
  } catch {
    return {}; // a hand-broken file reads as empty; the next `config set` rewrites it whole
  }
}

function write(values: Stored, file = configFile()): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, `${JSON.stringify(values, null, 2)}\n`, { mode: 0o600 });
  chmodSync(partial, 0o600);
  renameSync(partial, file); // never a half-written config
}

async function checkKey(key: string): Promise<Key> {
  if (key in KEYS) return key as Key;
  throw await usage('key', `no config key "${key.slice(0, 64)}"`, `keys: ${Object.keys(KEYS).join(', ')}`);
}

/** The default workspace: SNAPFLOW_WORKSPACE, else `snapflow config set workspace`, else none. */
export function defaultWorkspace(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.SNAPFLOW_WORKSPACE || read(configFile(env)).workspace || undefined;
}

/** Options made by `workspaceOption`, with what each falls back to when no default workspace is set. */
const fallbacks = new WeakMap<Option, string | null>();

/** `--workspace <id>`: optional on the line; `fallback` (e.g. "system") when no default is set, else required. */
export function workspaceOption(fallback?: string): Option {
  const option = new Option(
    '--workspace <id>',
    `workspace id${fallback ? ` (or "${fallback}")` : ''}; default: SNAPFLOW_WORKSPACE, then \`snapflow config set workspace\`${fallback ? `, then "${fallback}"` : ''}`,
  );
  fallbacks.set(option, fallback ?? null);
  return option;
}

/** Before an action runs: fill in an omitted `--workspace` from the defaults, or fail naming how to set one. */
export async function applyWorkspaceDefault(command: Command): Promise<void> {
  for (const option of command.options) {
    if (!fallbacks.has(option) || command.getOptionValue(option.attributeName()) !== undefined) continue;
    const workspace = defaultWorkspace() ?? fallbacks.get(option) ?? undefined;
    if (workspace === undefined)
      throw await usage(
        'workspace',
        'no workspace: pass --workspace <id>',
        'or set a default: `snapflow config set workspace <id>` or SNAPFLOW_WORKSPACE=<id>',
      );
    command.setOptionValueWithSource(option.attributeName(), workspace, 'default');
  }
}

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description(`the CLI's defaults, kept in ${configFile().replace(homedir(), '~')}`);
  config
    .command('set <key> <value>')
    .description(`set a default (${Object.keys(KEYS).join(', ')})`)
    .action(async (key: string, value: string) => {
      const name = await checkKey(key);
      const { validateField } = await import('../lib/validation');
      write({ ...read(), [name]: validateField('workspace', value) });
      console.error(`✓ ${name} = ${value}`);
    });
  config
    .command('get <key>')
    .description('print one default (SNAPFLOW_WORKSPACE wins over the stored workspace)')
    .action(async (key: string) => {
      const name = await checkKey(key);
      const value = name === 'workspace' ? defaultWorkspace() : read()[name];
      if (value === undefined) throw await usage(name, `${name} is not set`, `snapflow config set ${name} <value>`);
      console.log(value);
    });
  config
    .command('list')
    .description('every stored default')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }) => {
      const values = read();
      if (o.json) return console.log(JSON.stringify(values, null, 2));
      for (const [key, value] of Object.entries(values)) console.log(`${key}=${value}`);
    });
  config
    .command('unset <key>')
    .description('remove a stored default')
    .action(async (key: string) => {
      const name = await checkKey(key);
      const { [name]: _removed, ...rest } = read();
      write(rest);
      console.error(`✓ ${name} unset`);
    });
}
