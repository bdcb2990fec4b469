/**
 * The `migrate:` section of a config file, read when `mailbridge migrate`
 * runs: validated with its schema (src/config/sections.ts) plus the rules the
 * job adds, paths made absolute against the file's folder. Flags win over
 * it; it fills what they leave out.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { readConfigFile } from '../../config/file.js';
import { parseSection } from '../../config/schema.js';
import { type MigrateSection, migrateSectionSchema } from '../../config/sections.js';
import { type ConfigProblem, ConfigurationError } from '../../errors.js';

/** What the section says, paths absolute, `map` as `SRC=DEST` entries like `--map`. */
export interface MigrateSectionSettings {
  from?: string;
  to?: string;
  folders?: string[];
  exclude?: string[];
  map?: string[];
  since?: string;
  state?: string;
  connections?: number;
  syncFlags?: boolean;
  fromPasswordFile?: string;
  toPasswordFile?: string;
  fromTokenCommand?: string[];
  toTokenCommand?: string[];
}

/**
 * Reads and checks the `migrate` section of `file`; empty when it has none.
 * @param maxConnections the session layer's cap per mailbox, above the schema's own bound
 * @throws ConfigurationError `MIGRATE_OPTION_INVALID` listing every problem, each by its field
 */
export async function readMigrateSection(
  file: string,
  maxConnections: number,
): Promise<MigrateSectionSettings> {
  const raw = (await readConfigFile(file)).migrate;
  if (raw === undefined || raw === null) return {};
  const parsed = parseSection(migrateSectionSchema, raw, { prefix: 'migrate' });
  const problems: ConfigProblem[] = [...parsed.problems];
  const section = parsed.value as Partial<MigrateSection>;
  if (parsed.ok && section.connections !== undefined && section.connections > maxConnections) {
    problems.push({
      field: 'migrate.connections',
      message: `migrate.connections must be a whole number from 1 to ${maxConnections}: each is one connection per mailbox on each side.`,
    });
  }
  for (const side of ['from', 'to'] as const) {
    if (parsed.ok && section[`${side}PasswordFile`] && section[`${side}TokenCommand`]) {
      problems.push({
        field: `migrate.${side}TokenCommand`,
        message: `migrate.${side}TokenCommand and migrate.${side}PasswordFile are two ways to log in: give one.`,
      });
    }
  }
  if (problems.length > 0) {
    const lines = problems.map((p) => `  - ${p.field}: ${p.message}`);
    throw new ConfigurationError({
      code: 'MIGRATE_OPTION_INVALID',
      message: `The migrate section of the config file is not valid:\n${lines.join('\n')}\n${problems.length === 1 ? '1 problem' : `${problems.length} problems`}.`,
      remedy: 'Fix each setting named; a flag given on the command line wins over the section.',
      problems,
    });
  }
  const base = dirname(resolve(file));
  const path = (value: string) => (isAbsolute(value) ? value : resolve(base, value));
  const { from, to, folders, exclude, since, connections, map, state } = section as MigrateSection;
  const { fromPasswordFile, toPasswordFile, syncFlags } = section as MigrateSection;
  const { fromTokenCommand, toTokenCommand } = section as MigrateSection;
  return {
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
    ...(folders ? { folders } : {}),
    ...(exclude ? { exclude } : {}),
    ...(since ? { since } : {}),
    ...(connections !== undefined ? { connections } : {}),
    ...(syncFlags !== undefined ? { syncFlags } : {}),
    ...(map ? { map: Object.entries(map).map(([from, to]) => `${from}=${to}`) } : {}),
    ...(state ? { state: path(state) } : {}),
    ...(fromPasswordFile ? { fromPasswordFile: path(fromPasswordFile) } : {}),
    ...(toPasswordFile ? { toPasswordFile: path(toPasswordFile) } : {}),
    // The program as written: a bare name is looked up in PATH, a relative path is the user's to mean.
    ...(fromTokenCommand ? { fromTokenCommand } : {}),
    ...(toTokenCommand ? { toTokenCommand } : {}),
  };
}
