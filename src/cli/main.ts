#!/usr/bin/env node
import { onReaderGone, READER_GONE_EXIT } from './output.js';
import { runCli } from './run.js';

// `mailbridge … | head -1`: once the reader has gone, nothing more can be delivered; end quietly, as
// SIGPIPE ends other tools, whichever command is writing and wherever the write happens.
onReaderGone([process.stdout, process.stderr], () => process.exit(READER_GONE_EXIT));

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
// Let pending stdout writes drain before leaving: piping the token into another program must not lose it.
process.exitCode = code;
