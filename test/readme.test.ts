// The README cannot rot: its code fences balance, every ```sh line starting `npx snapflow` is parsed against the
// CLI's real command tree (built in-process, nothing runs), every `snapflow …` it names inline exists with its flags,
// and every `npm run X` is a script of package.json. No stack needed: it reads files and the commander tree.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command, Option } from 'commander';
import { buildCli, resolveCommand } from '../client/cli';
import { exitCodeFor } from '../client/exitCodes';
import { ERROR_CODES } from '../lib/errors';

const root = join(__dirname, '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const scripts = Object.keys((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: object }).scripts);
/** npm's own commands the README uses besides scripts (`npm ci`, `npm pack`, …). */
const NPM_BUILTINS = new Set(['ci', 'install', 'pack', 'start', 'test', 'run']);

/** Shell words of one line: quotes kept together, an unquoted `#` at a word's start ends the line. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote: string | undefined;
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
      else word += ch;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (ch === '#' && !inWord) break;
    else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** Every option a command accepts: its own, and its ancestors' (`--as`), plus help and version. */
function findOption(command: Command, flag: string): Option | 'builtin' | undefined {
  if (flag === '--help' || flag === '-h') return 'builtin';
  for (let c: Command | null = command; c; c = c.parent) {
    const found = c.options.find((o) => o.long === flag || o.short === flag || (o.negate && o.long === flag));
    if (found) return found;
  }
  return undefined;
}

/** One `snapflow …` invocation (the words after `snapflow`), parsed like commander would, against the tree. */
function checkInvocation(program: Command, line: string[], where: string): string[] {
  const words = line[0] === 'help' ? [...line.slice(1), '--help'] : line; // `help a b` is `a b --help`, as in main()
  const dash = words.indexOf('--');
  const own = dash === -1 ? words : words.slice(0, dash);
  const { command, path, rest } = resolveCommand(program, own);
  const name = commandPath(command);
  if (path.length === 0 && !(rest[0] ?? '').startsWith('-')) return [`${where}: \`snapflow ${rest[0] ?? ''}\` is not a command`];
  if (command.commands.length > 0 && !rest.some((w) => w === '--help' || w === '--version' || w === '-V'))
    return [`${where}: \`${name} ${rest[0] ?? ''}\` is not a command (${command.commands.map((c) => c.name()).join(', ')})`];
  const problems: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i]!;
    if (!word.startsWith('-') || word === '-') {
      positionals.push(word);
      continue;
    }
    const [flag = word, inline] = word.split(/=(.*)/s);
    if (flag === '--version' || flag === '-V') continue;
    const option = findOption(command, flag);
    if (!option) problems.push(`${where}: \`${name}\` has no option ${flag}`);
    else if (option !== 'builtin' && option.required && inline === undefined) i++; // its value is the next word
  }
  const declared = command.registeredArguments;
  const required = declared.filter((a) => a.required).length;
  const variadic = declared.some((a) => a.variadic);
  const given = positionals.length + (dash === -1 ? 0 : words.length - dash - 1);
  if (given < required && !rest.includes('--help'))
    problems.push(`${where}: \`${name}\` needs ${required} argument(s), the README gives ${given}`);
  if (!variadic && positionals.length > declared.length)
    problems.push(
      `${where}: \`${name}\` takes ${declared.length} argument(s), the README gives ${positionals.length}: ${positionals.join(' ')}`,
    );
  return problems;
}

/** Lines of the README's code fences, and whether each fence opens and closes on a line of its own. */
function fences(text: string): { blocks: Array<{ lang: string; start: number; lines: string[] }>; problems: string[] } {
  const blocks: Array<{ lang: string; start: number; lines: string[] }> = [];
  const problems: string[] = [];
  let open: { lang: string; start: number; lines: string[] } | undefined;
  text.split('\n').forEach((line, i) => {
    const fence = /^\s*```(.*)$/.exec(line);
    if (!fence) return void open?.lines.push(line);
    const after = fence[1]!.trim();
    if (open) {
      if (after) problems.push(`line ${i + 1}: a closing fence followed by text ("${after.slice(0, 30)}…") does not close the block`);
      else blocks.push(open);
      open = after ? open : undefined;
      if (after) open?.lines.push(line);
    } else if (/^[\w+-]*$/.test(after)) open = { lang: after, start: i + 1, lines: [] };
    else problems.push(`line ${i + 1}: a fence with text after it ("${after.slice(0, 30)}")`);
  });
  if (open) problems.push(`line ${open.start}: a code fence is never closed`);
  return { blocks, problems };
}

/** Shell commands of one logical line: `\` continuations joined, split on `&&`, `||`, `;` and `|`. */
function commandsOf(lines: string[]): string[][] {
  const joined = lines.join('\n').replace(/\\\n\s*/g, ' ');
  return joined
    .split('\n')
    .flatMap((line) => line.split(/\s(?:&&|\|\||;|\|)\s/))
    .map(shellWords)
    .filter((w) => w.length > 0);
}

function checkNpm(words: string[], where: string): string[] {
  if (words[0] !== 'npm') return [];
  const [, sub, script] = words;
  if (sub === 'run') return script && !scripts.includes(script) ? [`${where}: \`npm run ${script}\` is not a script in package.json`] : [];
  if (sub === 'start' || sub === 'test') return scripts.includes(sub) ? [] : [`${where}: package.json has no "${sub}" script`];
  return sub && !NPM_BUILTINS.has(sub) ? [`${where}: \`npm ${sub}\` is neither an npm command the README may use nor a script`] : [];
}

/** Every problem in a README text; the real README must have none. */
export function checkReadme(text: string): string[] {
  const program = buildCli([]);
  const { blocks, problems } = fences(text);
  // Runnable blocks: ```sh, each command parsed (`npx snapflow …` against the tree, `npm …` against package.json).
  for (const block of blocks.filter((b) => b.lang === 'sh')) {
    for (const words of commandsOf(block.lines)) {
      const where = `sh block at line ${block.start}: ${words.join(' ').slice(0, 60)}`;
      if (words[0] === 'npx' && words[1] === 'snapflow') problems.push(...checkInvocation(program, words.slice(2), where));
      problems.push(...checkNpm(words, where));
    }
  }
  // Inline: `npx snapflow …` / `snapflow …` spans name real commands and flags; `npm run X` names a script.
  const prose = text.replace(/^\s*```[\s\S]*?^\s*```\s*$/gm, '');
  for (const [, span = ''] of prose.matchAll(/`([^`\n]+)`/g)) {
    for (const [, run = ''] of span.matchAll(/\bnpm run (?:--silent )?([\w:-]+)/g))
      if (!scripts.includes(run)) problems.push(`inline \`${span}\`: \`npm run ${run}\` is not a script in package.json`);
    const at = /(?:^|\s|\()(?:npx )?snapflow (.+)$/.exec(span);
    if (!at) continue;
    problems.push(...checkInline(program, at[1]!, `inline \`${span}\``));
  }
  return problems;
}

/**
 * An inline mention may be a summary (`snapshot list / get <name> / delete <name>`, `[--wait]`, `--ok|--failed`): its
 * leading words must be a command, each ` / ` alternative a sibling of it (or a command of its own), and every flag
 * an option of the command it is written after or of one of its subcommands.
 */
function checkInline(program: Command, text: string, where: string): string[] {
  const [head = '', ...alternatives] = text.replace(/^help /, '').split(' / ');
  const words = (part: string): string[] => shellWords(part.replace(/[[\]|]/g, ' ').replace(/…/g, ' '));
  const first = words(head)[0];
  if (!first || first.startsWith('-') || first.startsWith('<')) return checkFlags(program, words(text), where);
  const resolved = resolveCommand(program, words(head));
  if (resolved.path.length === 0) return [`${where}: \`snapflow ${first}\` is not a command`];
  const problems = checkFlags(resolved.command, words(head), where);
  const parent = resolved.command.parent ?? program;
  for (const alternative of alternatives) {
    const [word] = words(alternative);
    if (!word || word.startsWith('-')) {
      problems.push(...checkFlags(resolved.command, words(alternative), where));
      continue;
    }
    const sibling = resolveCommand(parent, words(alternative));
    const own = sibling.path.length ? sibling : resolveCommand(program, words(alternative));
    if (own.path.length === 0) problems.push(`${where}: \`${word}\` is not a command beside \`${resolved.path.join(' ')}\``);
    else problems.push(...checkFlags(own.command, words(alternative), where));
  }
  return problems;
}

function checkFlags(command: Command, words: string[], where: string): string[] {
  const everywhere = (c: Command): Command[] => [c, ...c.commands.flatMap(everywhere)];
  const scope = everywhere(command);
  return words
    .filter((w) => /^--[a-z]/.test(w))
    .map((w) => w.split('=')[0]!.replace(/[.,;:)]+$/, ''))
    .filter((flag) => !scope.some((c) => findOption(c, flag)))
    .map((flag) => `${where}: ${flag} is not an option of \`${commandPath(command)}\``);
}

const commandPath = (c: Command): string => (c.parent ? `${commandPath(c.parent)} ${c.name()}` : c.name());

test('the README names only commands, flags and scripts that exist, and its code fences balance', () => {
  expect(checkReadme(readme)).toEqual([]);
});

test('the check has something to check: the tour and the useful commands are parsed', () => {
  const sh = fences(readme).blocks.filter((b) => b.lang === 'sh');
  const snapflowCommands = sh.flatMap((b) => commandsOf(b.lines)).filter((w) => w[0] === 'npx' && w[1] === 'snapflow');
  expect(snapflowCommands.length).toBeGreaterThanOrEqual(10);
  expect(snapflowCommands.map((w) => w.slice(2, 4).join(' '))).toEqual(expect.arrayContaining(['snapshot create', 'sandbox run']));
});

test('a renamed command, a renamed flag, a missing script or an unclosed fence in the README is reported', () => {
  const tour = readme.indexOf('npx snapflow snapshot create');
  expect(tour).toBeGreaterThan(0);
  const renamed = readme.slice(0, tour) + readme.slice(tour).replace('snapshot create', 'snapshot craete');
  expect(checkReadme(renamed)).toEqual([expect.stringContaining('`snapflow snapshot craete` is not a command')]);

  expect(checkReadme(readme.replace('--runtime codex --size small --wait', '--runtime codex --sise small --wait'))).toEqual(
    expect.arrayContaining([expect.stringContaining('`snapflow snapshot create` has no option --sise')]),
  );
  expect(checkReadme(readme.replace('sandbox start <id> --explain', 'sandbox explain <id>'))).toEqual(
    expect.arrayContaining([expect.stringContaining('`snapflow sandbox explain` is not a command')]),
  );
  expect(checkReadme(`${readme}\nRun \`npm run formatt\` first.\n`)).toEqual([
    expect.stringContaining('`npm run formatt` is not a script'),
  ]);
  expect(checkReadme(`${readme}\n\`npx snapflow snapshot list --limt 5\`\n`)).toEqual([expect.stringContaining('--limt')]);

  const fence = '```sh\nnpx snapflow snapshot list\n``` Open the UI';
  expect(checkReadme(`${readme}\n${fence}\n`)).toEqual(
    expect.arrayContaining([expect.stringContaining('does not close the block'), expect.stringContaining('never closed')]),
  );
});

test('every error code is in the exit-code table, in the row of the exit code the CLI gives it', () => {
  const rows = [...readme.matchAll(/^\| (\d) \| [^|]+ \|([^\n]*)\|$/gm)].map(([, exit, codes = '']) => ({
    exit: Number(exit),
    codes: [...codes.matchAll(/`([A-Z_*]+)`/g)].map(([, c = '']) => new RegExp(`^${c.replace(/\*/g, '[A-Z_]+')}$`)),
  }));
  expect(rows.map((r) => r.exit)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  const misplaced = ERROR_CODES.filter((code) => !rows.find((r) => r.exit === exitCodeFor(code))?.codes.some((c) => c.test(code)));
  expect(misplaced).toEqual([]);
});
