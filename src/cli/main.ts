#!/usr/bin/env node
import { runCli } from './run.js';

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
// Let pending stdout writes drain before leaving: piping the token into another program must not lose it.
process.exitCode = code;
