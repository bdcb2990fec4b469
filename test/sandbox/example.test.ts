/**
 * Runs examples/sandbox-test.ts, the user's test README shows, as it is:
 * importing it registers its tests here (it imports the built package, so
 * `npm run build` first, as for the CLI tests).
 */
import '../../examples/sandbox-test.js';
