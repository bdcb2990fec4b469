/**
 * The order vitest starts test files in. It starts the slowest first when its
 * cache of the last run's durations says which they are, but CI runs a clean
 * clone with no cache, and then it starts the largest files first: the
 * slowest (checkout-script.test.ts) was 96th of 153 and ran on alone at the
 * end. Replaying CI's per-file times through 4 workers, size order ends after
 * 604 s, these files first then size order after 587 s (the sum over 4
 * workers is 581 s), and the gain holds with every time off by up to 30 %.
 */
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The slowest files of a CI run (each over 50 s with 4 files at once), slowest first. */
const SLOWEST = [
  'test/packaging/checkout-script.test.ts',
  'test/jobs/queue/distributed.test.ts',
  'test/jobs/queue/migrate.test.ts',
  'test/jobs/migrate/restore.test.ts',
  'test/jobs/archive/crash.test.ts',
  'test/jobs/migrate/crash.test.ts',
  'test/jobs/migrate/migrate.test.ts',
  'test/sandbox/faults-cli.test.ts',
  'test/sandbox/quick-start.test.ts',
  'test/jobs/migrate/faults.test.ts',
  'test/cli/token-cache.test.ts',
  'test/cli/mail.test.ts',
];

export class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (spec: TestSpecification) => {
      const index = SLOWEST.indexOf(relative(this.ctx.config.root, spec.moduleId));
      return index === -1 ? SLOWEST.length : index;
    };
    // A stable sort: the rest keep vitest's own order.
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}
