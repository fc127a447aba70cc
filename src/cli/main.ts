// The `imgport` command: dispatches to one module per verb in ./commands.
import { reportError, EXIT } from './exit.js';

/** A verb: takes its arguments, returns the exit status. */
export type Command = { summary: string; run(args: string[]): Promise<number> };

// One line per verb; the module is loaded only when its verb runs, to keep start-up fast.
const commands: Record<string, () => Promise<Command>> = {
  check: () => import('./commands/check.js').then((m) => m.command),
  compare: () => import('./commands/compare.js').then((m) => m.command),
  convert: () => import('./commands/convert.js').then((m) => m.command),
  create: () => import('./commands/create.js').then((m) => m.command),
  info: () => import('./commands/info.js').then((m) => m.command),
  inspect: async () => (await import('./commands/inspect.js')).command,
  map: () => import('./commands/map.js').then((m) => m.command),
  measure: () => import('./commands/measure.js').then((m) => m.command),
  resize: () => import('./commands/resize.js').then((m) => m.command),
  snapshot: () => import('./commands/snapshot.js').then((m) => m.command),
  serve: async () => (await import('./commands/serve.js')).command,
  v2v: async () => (await import('./commands/v2v.js')).command,
  sysprep: async () => (await import('./commands/sysprep.js')).command,
  'inspect-guest': async () => (await import('./commands/inspect-guest.js')).command,
};

function usage(): string {
  return [
    'usage: imgport <command> [options]',
    '',
    'commands:',
    ...Object.keys(commands).sort().map((c) => `  ${c}`),
    '',
    "run 'imgport <command> --help' for a command's options",
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  if (!verb || verb === '-h' || verb === '--help' || verb === 'help') {
    process.stdout.write(usage() + '\n');
    process.exitCode = verb ? EXIT.OK : EXIT.ERROR;
    return;
  }
  if (verb === '--version' || verb === '-V') {
    const { createRequire } = await import('node:module');
    const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
    process.stdout.write(`imgport ${pkg.version}\n`);
    return;
  }
  const load = commands[verb];
  if (!load) {
    process.stderr.write(`imgport: unknown command '${verb}'\n${usage()}\n`);
    process.exitCode = EXIT.ERROR;
    return;
  }
  try {
    process.exitCode = await (await load()).run(rest);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}

// Run directly under tsx (tests): `node --import tsx src/cli/main.ts ...`.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  void main(process.argv.slice(2));
}
