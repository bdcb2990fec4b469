/** The archive's folder selection is the generic one: this path stays for its callers. */
export * from '../mailbox-read/folder-filter.js';
