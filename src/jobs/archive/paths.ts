/** The archive's layout lives with the readers (migrate restores from it): see mailbox-read/archive-paths.ts. */
export * from '../mailbox-read/archive-paths.js';
