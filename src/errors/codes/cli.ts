import type { ErrorTable } from '../spec.js';

/** Errors of the command-line interface. */
export const CLI_ERRORS = {
  SV_ERR_CLI_UNKNOWN_COMMAND: { status: 400, summary: 'The command name is not one `shadowvault --help` lists.' },
  SV_ERR_CLI_BAD_USAGE: { status: 400, summary: 'Options or arguments do not match the command\'s usage line.' },
  SV_ERR_CLI_OUTPUT_EXISTS: { status: 409, summary: 'The output path exists and overwriting was not asked for (--force).' },
} as const satisfies ErrorTable;
