/**
 * What to do with the library's errors: every one is a MailbridgeError with a
 * stable `code`, a `remedy` sentence for the person running the program, and
 * the `exitCode` the CLI would use (2 configuration, 3 refused, 4 unreachable,
 * 1 anything else).
 *
 *   npx tsx examples/handle-errors.ts; echo "exit code $?"
 */
import {
  ConfigurationError,
  createTokenProvider,
  isMailbridgeError,
  loadConfig,
} from 'm365-mailbridge';

try {
  const config = await loadConfig();
  const token = await createTokenProvider(config).getToken();
  console.log(`token acquired, expires ${token.expiresOn.toISOString()}`);
} catch (error) {
  if (!isMailbridgeError(error)) throw error; // a bug, not a setup problem: keep the stack

  console.error(`error ${error.code} (${error.name})`);
  if (error instanceof ConfigurationError && error.problems.length > 0) {
    // CONFIG_INVALID lists every wrong setting at once, named by its config-file key.
    for (const problem of error.problems) console.error(`  - ${problem.field}: ${problem.message}`);
  } else {
    // `message` is the whole text: what happened, then the remedy.
    const what = error.message.endsWith(error.remedy)
      ? error.message.slice(0, -error.remedy.length).trimEnd()
      : error.message;
    console.error(`  ${what}`);
  }
  console.error(`what to do: ${error.remedy}`);
  if (error.entra) {
    // What the sign-in logs and Microsoft support search by.
    console.error(
      `  Entra: AADSTS ${error.entra.errorCodes.join(', ') || '-'}, trace id ${error.entra.traceId ?? '-'}, correlation id ${error.entra.correlationId ?? '-'}`,
    );
  }
  // exitCode rather than process.exit(): lets pending output drain first.
  process.exitCode = error.exitCode;
}
