/** Moved to src/sandbox/imap-fault-proxy.ts: the sandbox and the tests share one implementation. */
export * from '../../src/sandbox/imap-fault-proxy.js';
