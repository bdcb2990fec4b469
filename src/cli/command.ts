import type { MailbridgeConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { FlagSpec, ParsedArgs } from './args.js';
import type { CliIo } from './output.js';

export interface CommandContext {
  args: ParsedArgs;
  io: CliIo;
  logger: Logger;
  /** Loads and validates settings from flags, environment and --config, once. */
  loadConfig(): Promise<MailbridgeConfig>;
}

export interface Command {
  /** Words that select it, e.g. `token` or `setup exchange`. */
  name: string;
  summary: string;
  /** Usage line after `mailbridge `. */
  usage: string;
  /** Flags of this command, besides the common ones. */
  flags: FlagSpec[];
  /** Whether the connection setting flags and the environment apply. */
  usesSettings: boolean;
  /**
   * What the words after the flags name (`DIR`, `ID...`). Without it a
   * command takes none, and a stray word is refused rather than ignored: an
   * unquoted `--subject two words` or a second address after `--to` must not
   * send less than was typed.
   */
  operands?: string;
  /** Extra help paragraphs. */
  details?: string;
  run(context: CommandContext): Promise<number>;
}
