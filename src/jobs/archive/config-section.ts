/**
 * The `archive:` section of the config file, read when `mailbridge archive`
 * runs: validated with its schema (src/config/sections.ts). Flags win over
 * it; it fills what they leave out.
 */
import { parseSection } from '../../config/schema.js';
import { type ArchiveSection, archiveSectionSchema } from '../../config/sections.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError } from '../../errors.js';

/**
 * What the configuration's `archive` section says; empty when it has none.
 * @throws ConfigurationError `ARCHIVE_OPTION_INVALID` listing every problem, each by its field
 */
export function readArchiveSection(config: Pick<MailbridgeConfig, 'sections'>): ArchiveSection {
  const raw = config.sections.archive;
  if (raw === undefined || raw === null) return {};
  const parsed = parseSection(archiveSectionSchema, raw, { prefix: 'archive' });
  if (parsed.problems.length === 0) return parsed.value as ArchiveSection;
  throw new ConfigurationError({
    code: 'ARCHIVE_OPTION_INVALID',
    message: `The archive section of the config file is not valid:\n${parsed.problems.map((p) => `  - ${p.field}: ${p.message}`).join('\n')}`,
    remedy: 'Fix each setting named; a flag given on the command line wins over the section.',
    problems: parsed.problems,
  });
}
