/** Argument parsing shared by commands: node's util.parseArgs, with usage errors as catalogued errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SvError } from '../errors/index.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseCommandArgs<O extends Options>(args: string[], options: O, usage: string) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `${(err as Error).message}\nusage: ${usage}`, {}, { cause: err });
  }
}

/** Print a value as JSON on stdout (the `--json` output of every command). */
export function printJson(io: { stdout: NodeJS.WritableStream }, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
