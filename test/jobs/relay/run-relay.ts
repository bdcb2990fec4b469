/**
 * Runs `mailbridge relay` from the sources, as
 * `node --import tsx test/jobs/relay/run-relay.ts --config FILE`, for the
 * benchmarks in bench/ (the tests start the built CLI instead: tsx costs about
 * a second of CPU per start). The settings are read exactly as the CLI reads
 * them: flags, then the environment, then --config.
 */
import {
  COMMON_FLAGS,
  parseCommandArgs,
  SETTING_FLAGS,
  settingsFromFlags,
} from '../../../src/cli/args.js';
import { relayCommand } from '../../../src/cli/commands/relay.js';
import { reportError, stderrLogger } from '../../../src/cli/output.js';
import { loadConfig } from '../../../src/config/load.js';

const io = { stdout: process.stdout, stderr: process.stderr, env: process.env };
try {
  const args = parseCommandArgs(process.argv.slice(2), [
    ...COMMON_FLAGS,
    ...SETTING_FLAGS,
    ...relayCommand.flags,
  ]);
  const file = typeof args.values.config === 'string' ? args.values.config : undefined;
  process.exitCode = await relayCommand.run({
    args,
    io,
    logger: stderrLogger(process.stderr, false),
    loadConfig: () =>
      loadConfig({
        env: process.env,
        ...(file ? { file } : {}),
        overrides: settingsFromFlags(args.values),
      }),
  });
} catch (error) {
  process.exitCode = reportError(error, io, { json: false, debug: false });
}
