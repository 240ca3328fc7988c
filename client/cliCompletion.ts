// `snapflow completion bash|zsh|fish`: a completion script generated from the command tree, so it never drifts.
import { Argument, type Command } from 'commander';

interface Node {
  /** `snapflow golden config`: the words that lead to this command. */
  path: string;
  commands: Array<{ name: string; description: string }>;
  options: Array<{ flag: string; description: string }>;
}

function walk(command: Command, path: string, inherited: Node['options'], out: Node[]): Node[] {
  const own = command.options.filter((o) => o.long && o.long !== '--version').map((o) => ({ flag: o.long!, description: o.description }));
  const options = [...own, ...inherited, { flag: '--help', description: 'display help for command' }];
  out.push({ path, commands: command.commands.map((c) => ({ name: c.name(), description: c.description() })), options });
  for (const c of command.commands) walk(c, `${path} ${c.name()}`, path === 'snapflow' ? own : inherited, out);
  return out;
}

const single = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

function bash(nodes: Node[]): string {
  const cases = nodes.map(
    (n) => `    ${single(n.path)}) echo ${single([...n.commands.map((c) => c.name), ...n.options.map((o) => o.flag)].join(' '))} ;;`,
  );
  return `# snapflow bash completion: eval "$(snapflow completion bash)"; completes \`snapflow …\` and \`npx snapflow …\`
_snapflow_words() {
  case "$1" in
${cases.join('\n')}
    *) return 1 ;;
  esac
}
_snapflow() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmdpath=snapflow first=1 w i
  if [[ "\${COMP_WORDS[0]##*/}" == npx ]]; then
    # npx: only \`npx snapflow …\` is ours; anything else keeps the shell's file names
    if ((COMP_CWORD == 1)); then COMPREPLY=($(compgen -W snapflow -- "$cur")); return 0; fi
    [[ "\${COMP_WORDS[1]}" == snapflow ]] || { COMPREPLY=(); compopt -o default 2>/dev/null; return 0; }
    first=2
  fi
  for ((i = first; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    # after \`--\` the words are the job's command: nothing of ours to offer
    [[ "$w" == -- ]] && { COMPREPLY=(); compopt -o default 2>/dev/null; return 0; }
    case "$w" in -*) continue ;; esac
    _snapflow_words "$cmdpath $w" >/dev/null && cmdpath="$cmdpath $w"
  done
  COMPREPLY=($(compgen -W "$(_snapflow_words "$cmdpath")" -- "$cur"))
}
complete -F _snapflow snapflow
complete -F _snapflow npx
`;
}

function zsh(nodes: Node[]): string {
  const commands = nodes.map(
    (n) =>
      `  ${single(n.path)} ${single(n.commands.map((c) => `${c.name.replace(/:/g, '\\:')}:${c.description.replace(/:/g, '\\:')}`).join('\n'))}`,
  );
  const options = nodes.map((n) => `  ${single(n.path)} ${single(n.options.map((o) => o.flag).join(' '))}`);
  return `#compdef snapflow
# snapflow zsh completion: eval "$(snapflow completion zsh)", or save it as _snapflow in your $fpath
typeset -gA _snapflow_commands _snapflow_options
_snapflow_commands=(
${commands.join('\n')}
)
_snapflow_options=(
${options.join('\n')}
)
_snapflow() {
  local cmdpath=snapflow key w i first=2
  if [[ \${words[1]:t} == npx ]]; then
    (( CURRENT == 2 )) && { compadd -- snapflow; return }
    [[ \${words[2]} == snapflow ]] || { _files; return }
    first=3
  fi
  for ((i = first; i < CURRENT; i++)); do
    w=\${words[i]}
    [[ $w == -- ]] && { _files; return }
    [[ $w == -* ]] && continue
    key="$cmdpath $w"
    (( \${+_snapflow_options[$key]} )) && cmdpath=$key
  done
  local -a subcommands
  subcommands=(\${(f)_snapflow_commands[$cmdpath]})
  if [[ \${words[CURRENT]} == -* || \${#subcommands} -eq 0 ]]; then
    compadd -- \${=_snapflow_options[$cmdpath]}
  else
    _describe 'command' subcommands
  fi
}
compdef _snapflow snapflow npx
`;
}

function fish(nodes: Node[]): string {
  const paths = nodes.map((n) => single(n.path)).join(' ');
  const lines = nodes.flatMap((n) => [
    ...n.commands.map(
      (c) => `complete -c snapflow -n ${single(`__snapflow_at ${single(n.path)}`)} -a ${single(c.name)} -d ${single(c.description)}`,
    ),
    ...n.options.map(
      (o) =>
        `complete -c snapflow -n ${single(`__snapflow_at ${single(n.path)}`)} -l ${single(o.flag.slice(2))} -d ${single(o.description)}`,
    ),
  ]);
  return `# snapflow fish completion: snapflow completion fish | source
set -g __snapflow_paths ${paths}
function __snapflow_path
  set -l cmdpath snapflow
  for w in (commandline -opc)[2..-1]
    string match -q -- '-*' $w; and continue
    contains -- "$cmdpath $w" $__snapflow_paths; and set cmdpath "$cmdpath $w"
  end
  echo $cmdpath
end
function __snapflow_at
  test (__snapflow_path) = $argv[1]
end
complete -c snapflow -f
${lines.join('\n')}
`;
}

const shells = { bash, zsh, fish };

export function completionScript(program: Command, shell: string): string {
  const generate = shells[shell as keyof typeof shells];
  if (!generate) throw new Error(`no completion for ${shell}`);
  return generate(walk(program, 'snapflow', [], []));
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script, e.g. eval "$(snapflow completion bash)"')
    .addArgument(new Argument('<shell>', 'bash | zsh | fish').choices(Object.keys(shells)))
    .action((shell: string) => void process.stdout.write(completionScript(program, shell)));
}
