/** Moved to src/sandbox/token-service.ts: the sandbox and the tests share one implementation. */
export * from '../../src/sandbox/token-service.js';
