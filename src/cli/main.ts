/**
 * `shadowvault` entry point: finds the command (longest match, so "disk info" beats "disk"), runs it, and
 * turns errors into one line `error SV_ERR_...: message` on stderr and exit code 1 (2 for usage errors).
 */
import { readFileSync } from 'node:fs';
import { hasCode, isSvError, wrapSystemError } from '../errors/index.js';
import type { CliIo, Command } from './command.js';
import { COMMAND_ENTRIES, loadCommands, type CommandEntry } from './commands/index.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url) /* build/src/cli → repo root */, 'utf8')) as { version: string };
  return pkg.version;
}

async function help(): Promise<string> {
  const COMMANDS = await loadCommands();
  const width = Math.max(...COMMANDS.map((c) => c.name.length), 8);
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    `shadowvault ${version()}: backup appliance for Hyper-V and QEMU/KVM virtual machines`,
    '',
    'usage: shadowvault <command> [options]      shadowvault <command> --help',
    '',
    'commands:',
    ...lines,
    '',
    'options:',
    '  --help, -h     this text',
    '  --version, -v  the version',
    '',
  ].join('\n');
}

/** The help of a command group (`disk`): its sub-commands with their usage, or undefined when `word` is none. */
async function groupHelp(word: string | undefined): Promise<string | undefined> {
  const entries = COMMAND_ENTRIES.filter((c) => c.name.startsWith(`${word} `));
  if (!word || !entries.length) return undefined;
  const members = await loadCommands(entries);
  const width = Math.max(...members.map((c) => c.name.length - word.length - 1));
  return [
    `usage: shadowvault ${word} <subcommand> [options]      shadowvault ${word} <subcommand> --help`,
    '',
    'subcommands:',
    ...members.flatMap((c) => [`  ${c.name.slice(word.length + 1).padEnd(width)}  ${c.summary}`, `      ${c.usage}`]),
    '',
  ].join('\n');
}

/** The command entry `argv` names (longest match: "disk info" beats "disk"), and the arguments after its name. */
export function findCommand(argv: string[]): { command: CommandEntry; rest: string[] } | undefined {
  let best: { command: CommandEntry; rest: string[] } | undefined;
  for (const command of COMMAND_ENTRIES) {
    const words = command.name.split(' ');
    if (words.every((w, i) => argv[i] === w) && (!best || words.length > best.command.name.split(' ').length)) {
      best = { command, rest: argv.slice(words.length) };
    }
  }
  return best;
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout.write(await help());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version' || argv[0] === '-v') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const found = findCommand(argv);
  const group = found ? undefined : await groupHelp(argv[0]);
  if (group && (argv.length === 1 || argv[1] === '--help' || argv[1] === '-h' || argv[1] === 'help')) {
    io.stdout.write(group);
    return argv.length === 1 ? 2 : 0;
  }
  if (!found) {
    io.stderr.write(`error SV_ERR_CLI_UNKNOWN_COMMAND: unknown command "${argv.join(' ')}"; see shadowvault ${group ? `${argv[0]} ` : ''}--help\n`);
    return 2;
  }
  try {
    const command = await found.command.load();
    if (found.rest.includes('--help') || found.rest.includes('-h')) {
      io.stdout.write(`usage: ${command.usage}\n\n${command.summary}\n`);
      return 0;
    }
    return await command.run(found.rest, io);
  } catch (err) {
    const e = isSvError(err) ? err : wrapSystemError(err);
    io.stderr.write(`error ${e.code}: ${e.message}\n`);
    if (io.env.SHADOWVAULT_DEBUG && e.stack) io.stderr.write(`${e.stack}\n`);
    return hasCode(e, 'SV_ERR_CLI_BAD_USAGE') ? 2 : 1;
  }
}
