/** Moved to src/sandbox/pki.ts: the sandbox and the tests share one implementation. */
export * from '../../src/sandbox/pki.js';
