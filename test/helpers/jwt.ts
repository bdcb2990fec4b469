/** Moved to src/sandbox/jwt.ts: the sandbox and the tests share one implementation. */
export * from '../../src/sandbox/jwt.js';
