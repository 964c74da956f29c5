/**
 * What a CLI command is. Commands live one per file in src/cli/commands/ and are registered in
 * src/cli/commands/index.ts, the one place that lists them.
 */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
}

export interface Command {
  /** The word after `shadowvault`; sub-commands use a space ("disk info"). */
  readonly name: string;
  /** One line for `shadowvault --help`. */
  readonly summary: string;
  /** Usage text printed by `shadowvault <name> --help` and on a usage error. */
  readonly usage: string;
  /** Runs with the arguments after the command name; resolves to the process exit code. */
  run(args: string[], io: CliIo): Promise<number>;
}
