/** Shared with migrate's restore, which checks each archived file as it reads it. */
export * from '../../mailbox-read/file-hash.js';
