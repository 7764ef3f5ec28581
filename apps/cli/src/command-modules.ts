import type { Command } from 'commander';

/**
 * Which module registers which top-level commands, in the order `flotilla
 * --help` lists them. Each module is imported only when one of its commands
 * runs, so that a command loads what it needs and no more: the agent daemon
 * on an appliance never loads the hub (NestJS, TypeORM, pg), the policy
 * compiler or the gateway. command-modules.spec.ts checks this table against
 * what the modules register.
 */
export interface CommandModule {
  commands: readonly string[];
  register: () => Promise<(program: Command) => void>;
}

export const COMMAND_MODULES: readonly CommandModule[] = [
  { commands: ['hub'], register: async () => (await import('./commands/hub.js')).registerHub },
  { commands: ['agent'], register: async () => (await import('./commands/agent.js')).registerAgent },
  { commands: ['validate', 'diff', 'apply'], register: async () => (await import('./commands/policy.js')).registerPolicy },
  { commands: ['get'], register: async () => (await import('./commands/get.js')).registerGet },
  { commands: ['describe'], register: async () => (await import('./commands/describe.js')).registerDescribe },
  { commands: ['schema'], register: async () => (await import('./commands/schema.js')).registerSchema },
  { commands: ['delete'], register: async () => (await import('./commands/delete.js')).registerDelete },
  { commands: ['tokens'], register: async () => (await import('./commands/tokens.js')).registerTokens },
  { commands: ['enrollment-tokens'], register: async () => (await import('./commands/enrollment-tokens.js')).registerEnrollmentTokens },
  { commands: ['version'], register: async () => (await import('./commands/version.js')).registerVersion },
  { commands: ['rollout'], register: async () => (await import('./commands/rollout.js')).registerRollout },
  { commands: ['promote'], register: async () => (await import('./commands/promote.js')).registerPromote },
  { commands: ['spoke'], register: async () => (await import('./commands/spoke.js')).registerSpoke },
  { commands: ['completion'], register: async () => (await import('./commands/completion.js')).registerCompletion },
  { commands: ['signing-key'], register: async () => (await import('./commands/signing-key.js')).registerSigningKey },
  { commands: ['route'], register: async () => (await import('./commands/route.js')).registerRoute },
  { commands: ['gateway'], register: async () => (await import('./commands/gateway.js')).registerGateway },
];

/**
 * Registers the given modules' commands on `program`; every module when
 * `only` is empty (help, completion, a mistyped command: they need the whole
 * command tree).
 */
export async function registerCommands(program: Command, only: readonly CommandModule[]): Promise<void> {
  const chosen = only.length > 0 && !only.some((m) => m.commands.includes('completion')) ? only : COMMAND_MODULES;
  const registers = await Promise.all(chosen.map((m) => m.register()));
  for (const register of registers) register(program);
}
