import type { Command } from 'commander';
import { CliError, EXIT } from '../exit-codes.js';
import { WordArgument } from './word-argument.js';

/** One command of the tree, as completion sees it. */
interface Node {
  /** `flotilla`, `flotilla tokens`, `flotilla tokens create`. */
  path: string;
  /** Subcommand name (and aliases) -> its node path. */
  children: [string, string][];
  options: string[];
  /** Flags that take a value -> the values to offer (empty: file names). */
  valued: [string, string[]][];
  /** Positional index -> words to offer. */
  args: [number, string[]][];
}

// Only words a shell reads literally go into the script; anything else is left out rather than quoted.
const SAFE = /^[A-Za-z0-9._:/@+-]+$/;
const safe = (words: readonly string[]) => words.filter((w) => SAFE.test(w));

/** Walks the commander tree through its public API, so the script follows every command added later. */
function collect(cmd: Command, path: string, out: Node[]): void {
  const help = cmd.createHelp();
  const subcommands = help.visibleCommands(cmd);
  const options = help.visibleOptions(cmd);
  const node: Node = {
    path,
    children: [],
    options: safe(options.flatMap((o) => [o.short, o.long].filter((f): f is string => !!f))),
    valued: options.filter((o) => o.required || o.optional).flatMap((o) => [o.short, o.long].filter((f): f is string => !!f && SAFE.test(f)).map((f): [string, string[]] => [f, safe(o.argChoices ?? [])])),
    args: cmd.registeredArguments.flatMap((a, i): [number, string[]][] => {
      const words = a instanceof WordArgument ? a.words : (a.argChoices ?? []);
      return words.length ? [[i, safe(words)]] : [];
    }),
  };
  out.push(node);
  for (const sub of subcommands) {
    const childPath = `${path} ${sub.name()}`;
    for (const name of safe([sub.name(), ...sub.aliases()])) node.children.push([name, childPath]);
    // The implicit `help` command has no subtree of its own worth completing.
    if (sub.name() !== 'help' || sub.commands.length > 0) collect(sub, childPath, out);
  }
}

const cases = (fn: string, doc: string, arms: [string, string][], fallback = '') =>
  [
    `# ${doc}`,
    `${fn}() {`,
    `  case "$1/$2" in`,
    ...arms.map(([pattern, body]) => `    ${pattern}) ${body} ;;`),
    ...(fallback ? [`    *) ${fallback} ;;`] : []),
    '  esac',
    '}',
  ].join('\n');

const q = (s: string) => `"${s}"`;

/** Helpers both shells run: plain functions over case statements. */
function helpers(nodes: Node[]): string {
  return [
    cases(
      '__flotilla_child',
      'the node a subcommand word leads to from node $1',
      nodes.flatMap((n) => n.children.map(([w, p]): [string, string] => [q(`${n.path}/${w}`), `echo ${q(p)}`])),
    ),
    cases(
      '__flotilla_commands',
      'subcommands of node $1',
      nodes.filter((n) => n.children.length).map((n) => [q(`${n.path}/`), `echo ${q(n.children.map(([w]) => w).join(' '))}`]),
    ),
    cases(
      '__flotilla_options',
      'flags of node $1',
      nodes.map((n) => [q(`${n.path}/`), `echo ${q(n.options.join(' '))}`]),
    ),
    cases(
      '__flotilla_takes_value',
      'whether flag $2 of node $1 takes a value',
      nodes.filter((n) => n.valued.length).map((n) => [n.valued.map(([f]) => q(`${n.path}/${f}`)).join('|'), 'return 0']),
      'return 1',
    ),
    cases(
      '__flotilla_values',
      'the values flag $2 of node $1 takes (none listed: file names)',
      nodes.flatMap((n) => n.valued.filter(([, v]) => v.length).map(([f, v]): [string, string] => [q(`${n.path}/${f}`), `echo ${q(v.join(' '))}`])),
    ),
    cases(
      '__flotilla_args',
      'words for positional argument $2 of node $1',
      nodes.flatMap((n) => n.args.map(([i, words]): [string, string] => [q(`${n.path}/${i}`), `echo ${q(words.join(' '))}`])),
    ),
    `# The command node and the index of the positional argument the words "$@" lead to.
__flotilla_walk() {
  local node="flotilla" pos=0 skip=0 w next
  for w in "$@"; do
    if [ "$skip" = 1 ]; then
      skip=0
      # bash splits --flag=value into three words: the value follows the "=".
      [ "$w" = "=" ] && skip=1
      continue
    fi
    case "$w" in
      =) skip=1; continue ;;
      -*=*) continue ;;
      -*) __flotilla_takes_value "$node" "$w" && skip=1; continue ;;
    esac
    next=""
    [ "$pos" = 0 ] && next="$(__flotilla_child "$node" "$w")"
    if [ -n "$next" ]; then node="$next"; else pos=$((pos + 1)); fi
  done
  printf '%s\\n%s\\n' "$node" "$pos"
}`,
  ].join('\n\n');
}

const BASH_MAIN = `_flotilla() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" opt walk node pos values
  walk="$(__flotilla_walk "\${COMP_WORDS[@]:1:COMP_CWORD-1}")"
  node="\${walk%%$'\\n'*}"
  pos="\${walk##*$'\\n'}"
  [ "$COMP_CWORD" -ge 2 ] && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  opt="$prev"
  if [ "$cur" = "=" ]; then
    cur=""
  elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 3 ]; then
    opt="\${COMP_WORDS[COMP_CWORD-2]}"
  fi
  COMPREPLY=()
  if [ -n "$opt" ] && __flotilla_takes_value "$node" "$opt"; then
    values="$(__flotilla_values "$node" "$opt")"
    # No listed values: complete -o default offers file names.
    [ -n "$values" ] && COMPREPLY=($(compgen -W "$values" -- "$cur"))
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(__flotilla_options "$node")" -- "$cur"))
    return 0
  fi
  values="$(__flotilla_args "$node" "$pos")"
  [ "$pos" = 0 ] && values="$(__flotilla_commands "$node") $values"
  COMPREPLY=($(compgen -W "$values" -- "$cur"))
}
complete -o default -F _flotilla flotilla`;

const ZSH_MAIN = `_flotilla() {
  local cur="\${words[CURRENT]}" opt="\${words[CURRENT-1]}" walk node pos values
  walk="$(__flotilla_walk "\${(@)words[2,CURRENT-1]}")"
  node="\${walk%%$'\\n'*}"
  pos="\${walk##*$'\\n'}"
  if (( CURRENT > 2 )) && __flotilla_takes_value "$node" "$opt"; then
    values="$(__flotilla_values "$node" "$opt")"
    if [[ -n "$values" ]]; then compadd -- \${=values}; else _files; fi
    return
  fi
  if [[ "$cur" == -* ]]; then
    values="$(__flotilla_options "$node")"
    compadd -- \${=values}
    return
  fi
  values="$(__flotilla_args "$node" "$pos")"
  [[ "$pos" == 0 ]] && values="$(__flotilla_commands "$node") $values"
  if [[ -n "\${values// /}" ]]; then compadd -- \${=values}; else _files; fi
}
compdef _flotilla flotilla`;

/** The completion script for one shell, generated from the program's commands. */
export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const nodes: Node[] = [];
  collect(program, 'flotilla', nodes);
  const header =
    shell === 'bash'
      ? '# flotilla completion for bash, generated by `flotilla completion bash` from the CLI\'s own commands.\n# Load it with: source <(flotilla completion bash)   (e.g. in ~/.bashrc)'
      : '#compdef flotilla\n# flotilla completion for zsh, generated by `flotilla completion zsh` from the CLI\'s own commands.\n# Load it after compinit with: source <(flotilla completion zsh)   (e.g. in ~/.zshrc)';
  return `${header}\n\n${helpers(nodes)}\n\n${shell === 'bash' ? BASH_MAIN : ZSH_MAIN}\n`;
}

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(flotilla completion bash), or zsh')
    .addArgument(new WordArgument('<shell>', 'bash or zsh', ['bash', 'zsh']))
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') throw new CliError(`no completion for shell "${shell}"; bash or zsh`, EXIT.usage);
      process.stdout.write(completionScript(program, shell));
    });
}
