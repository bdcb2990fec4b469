/** Moved to src/sandbox/mail-servers.ts: the sandbox and the tests share one implementation. */
export * from '../../src/sandbox/mail-servers.js';
