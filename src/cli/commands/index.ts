/** The one list of CLI commands. Add a command by importing it here and appending it to COMMANDS. */
import type { Command } from '../command.js';

export const COMMANDS: readonly Command[] = [
];
