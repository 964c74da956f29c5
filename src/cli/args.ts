/** Argument parsing shared by commands: node's util.parseArgs, with usage errors as catalogued errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SvError } from '../errors/index.js';
import type { DiskFormat } from '../formats/types.js';

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

const INPUT_FORMATS: readonly DiskFormat[] = ['raw', 'vhd', 'vhdx'];

/**
 * The value of an input format option (`--format` / `--input-format`): undefined when not given (the name and
 * the content decide), else raw, vhd or vhdx; anything else is a usage error.
 */
export function inputFormat(value: string | undefined, option: string, usage: string): DiskFormat | undefined {
  if (value === undefined || value === 'auto') return undefined;
  if (!(INPUT_FORMATS as readonly string[]).includes(value)) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `${option} must be ${INPUT_FORMATS.join(', ')} or auto, not ${JSON.stringify(value)}\nusage: ${usage}`, { option, value });
  }
  return value as DiskFormat;
}
