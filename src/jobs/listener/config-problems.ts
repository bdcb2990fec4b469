/**
 * The end of a listener's config check (relay, proxy): every problem found
 * is thrown at once, in one error with one count, so an operator fixes the
 * whole section in one pass rather than one line per start.
 */
import type { ErrorCode } from '../../error-codes.js';
import { type ConfigProblem, ConfigurationError } from '../../errors.js';

export function throwSectionProblems(
  section: 'relay' | 'proxy',
  code: ErrorCode,
  problems: readonly ConfigProblem[],
  remedy: string,
): void {
  if (problems.length === 0) return;
  throw new ConfigurationError({
    code,
    message: `The ${section} configuration has ${problems.length} problem(s)`,
    remedy,
    problems: [...problems],
  });
}
