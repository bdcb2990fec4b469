/**
 * Start-up time of the built CLI: `node dist/cli/main.js --version` and a
 * few help commands, spawned one after another, with `node -e 0` as the floor
 * no CLI can go below. With `--baseline DIR` (another checkout, built) each
 * command runs from both checkouts in turns, so a slow moment of the machine
 * hits both.
 *
 *   npx tsx bench/startup.ts [--runs N] [--cold-runs N] [--baseline DIR] [--write-readme]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  describeMachine,
  markdownTable,
  median,
  progressLogger,
  writeReadmeSection,
} from './support.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const COMMANDS = [['--version'], ['--help'], ['setup', '--help'], ['token', '--help']];
const log = progressLogger('startup');

interface Sample {
  wallMs: number;
  cpuMs: number;
  status: number | null;
}

/** CPU time (user + system) of this process's waited-for children, from /proc: spawnSync gives none. */
function childrenCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
  // cutime and cstime are fields 16 and 17 of the line, 14 and 15 after "pid (comm) ".
  const ticks = Number(fields[13]) + Number(fields[14]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

function spawnOnce(args: string[]): Sample {
  const cpuBefore = childrenCpuMs();
  const start = process.hrtime.bigint();
  const child = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  return { wallMs, cpuMs: childrenCpuMs() - cpuBefore, status: child.status };
}

/**
 * Drops the checkouts' JavaScript (dist/ and node_modules/) from the page
 * cache, so the next start reads it from disk: a first run after a while.
 * Node itself stays cached. Needs python3 (Node has no posix_fadvise).
 */
function evict(roots: string[]): boolean {
  const script = [
    'import os, sys',
    'for root in sys.argv[1:]:',
    '  for d, _, files in os.walk(os.path.realpath(root)):',
    '    for f in files:',
    '      try: fd = os.open(os.path.join(d, f), os.O_RDONLY)',
    '      except OSError: continue',
    '      os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)',
  ].join('\n');
  const dirs = roots.flatMap((r) => [join(r, 'dist'), join(r, 'node_modules')]);
  return spawnSync('python3', ['-c', script, ...dirs], { stdio: 'ignore' }).status === 0;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return (
    sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
  );
}

function main(): void {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '30' },
      'cold-runs': { type: 'string', default: '10' },
      baseline: { type: 'string' },
      'write-readme': { type: 'boolean', default: false },
    },
  });
  const runs = Number(values.runs);
  const coldRuns = Number(values['cold-runs']);
  const checkouts = [
    ...(values.baseline ? [{ label: 'baseline', root: resolve(values.baseline) }] : []),
    { label: 'this checkout', root: ROOT },
  ];
  const cases = [
    { name: '`node -e 0` (Node alone)', args: () => ['-e', '0'], perCheckout: false },
    ...COMMANDS.map((command) => ({
      name: `\`mailbridge ${command.join(' ')}\``,
      args: (root: string) => [join(root, 'dist/cli/main.js'), ...command],
      perCheckout: true,
    })),
  ];
  const series = new Map<string, { warm: Sample[]; cold: Sample[] }>();
  const key = (c: string, label: string) => `${c}\u0000${label}`;
  for (const c of cases) {
    for (const { label } of c.perCheckout ? checkouts : checkouts.slice(-1)) {
      series.set(key(c.name, label), { warm: [], cold: [] });
    }
  }
  const each = (fn: (c: (typeof cases)[number], root: string, label: string) => void) => {
    for (const c of cases) {
      for (const { root, label } of c.perCheckout ? checkouts : checkouts.slice(-1))
        fn(c, root, label);
    }
  };
  log(`warm-up, then ${runs} warm runs of each`);
  each((c, root) => spawnOnce(c.args(root)));
  for (let i = 0; i < runs; i++) {
    each((c, root, label) => series.get(key(c.name, label))?.warm.push(spawnOnce(c.args(root))));
  }
  let cold = coldRuns > 0;
  for (let i = 0; cold && i < coldRuns; i++) {
    log(`cold round ${i + 1} of ${coldRuns}`);
    each((c, root, label) => {
      if (!cold) return;
      cold = evict(checkouts.map((x) => x.root));
      if (cold) series.get(key(c.name, label))?.cold.push(spawnOnce(c.args(root)));
    });
  }
  if (!cold && coldRuns > 0) log('python3 is missing: no cold runs');

  const ms = (v: number) => (Number.isNaN(v) ? '' : v.toFixed(0));
  const rows: string[][] = [];
  for (const c of cases) {
    for (const { label } of c.perCheckout ? checkouts : checkouts.slice(-1)) {
      const s = series.get(key(c.name, label));
      if (!s) continue;
      const wall = (xs: Sample[]) => xs.map((x) => x.wallMs);
      const failed = s.warm.find((x) => x.status !== 0);
      const name = checkouts.length > 1 && c.perCheckout ? `${c.name}, ${label}` : c.name;
      rows.push([
        failed ? `${name} (exits ${failed.status})` : name,
        ms(median(wall(s.warm))),
        ms(percentile(wall(s.warm), 90)),
        ms(median(s.warm.map((x) => x.cpuMs))),
        s.cold.length > 0 ? ms(median(wall(s.cold))) : '',
        s.cold.length > 0 ? ms(percentile(wall(s.cold), 90)) : '',
      ]);
    }
  }
  const [load1] = os.loadavg();
  const text = [
    describeMachine([`load average ${load1?.toFixed(1)} at the end`]),
    '',
    markdownTable(
      [
        `ms, ${runs} warm and ${cold ? coldRuns : 0} cold runs`,
        'warm median',
        'warm p90',
        'warm CPU median',
        'cold median',
        'cold p90',
      ],
      rows,
    ),
    '',
    `${values.baseline ? `Baseline: ${values.baseline}. ` : ''}Cold: the checkouts' dist/ and node_modules/ dropped from the page cache before each run (Node itself stays cached). CPU: user + system of the child, in 10 ms ticks.`,
  ].join('\n');
  process.stdout.write(`${text}\n`);
  if (values['write-readme']) {
    writeReadmeSection('startup', text).catch((error: unknown) => {
      process.stderr.write(`${error}\n`);
      process.exitCode = 1;
    });
  }
}

main();
