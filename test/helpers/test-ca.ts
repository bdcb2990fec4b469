/** Moved to src/sandbox/test-ca.ts: the sandbox and the tests share one implementation. */
export * from '../../src/sandbox/test-ca.js';
