import { Command } from 'commander';
import { COMMAND_MODULES, registerCommands } from './command-modules.js';

describe('command modules', () => {
  it('name exactly the top-level commands each module registers, in help order', async () => {
    for (const m of COMMAND_MODULES) {
      const program = new Command();
      (await m.register())(program);
      expect(program.commands.map((c) => c.name())).toEqual([...m.commands]);
      expect(program.commands.flatMap((c) => c.aliases())).toEqual([]);
    }
  });

  it('register only the chosen module, and every module for completion or none chosen', async () => {
    const agentOnly = new Command();
    await registerCommands(agentOnly, COMMAND_MODULES.filter((m) => m.commands.includes('agent')));
    expect(agentOnly.commands.map((c) => c.name())).toEqual(['agent']);

    const all = COMMAND_MODULES.flatMap((m) => m.commands);
    const none = new Command();
    await registerCommands(none, []);
    expect(none.commands.map((c) => c.name())).toEqual(all);

    const completion = new Command();
    await registerCommands(completion, COMMAND_MODULES.filter((m) => m.commands.includes('completion')));
    expect(completion.commands.map((c) => c.name())).toEqual(all);
  });
});
