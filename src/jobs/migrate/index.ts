export type {
  MigrateFolderResult,
  MigrateProgressEvent,
  SkippedMessage,
} from './copy-folder.js';
export type { M365Endpoint, MigrateEndpoint, PasswordImapEndpoint } from './endpoint.js';
export type { MailboxPair } from './mailbox-list.js';
export { parseMailboxPairs, readMailboxPairs } from './mailbox-list.js';
export type {
  MigrateListResult,
  MigrateMailboxListOptions,
  PairName,
  PairOutcome,
} from './mailbox-list-run.js';
export {
  DEFAULT_PAIR_CONCURRENCY,
  listExitCode,
  migrateMailboxList,
  pairStateDir,
} from './mailbox-list-run.js';
export type {
  MigrateFolderSummary,
  MigrateMailboxOptions,
  MigrateResult,
} from './migrate.js';
export { DEFAULT_MIGRATE_CONNECTIONS, migrateMailbox } from './migrate.js';
