import { Argument } from 'commander';

/**
 * A positional argument with the words shell completion offers for it. The
 * command still checks the value itself (kinds take any case and aliases,
 * which commander's choices would refuse).
 */
export class WordArgument extends Argument {
  constructor(
    name: string,
    description: string,
    readonly words: readonly string[],
  ) {
    super(name, description);
  }
}
