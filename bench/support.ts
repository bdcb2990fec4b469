/**
 * What a bench script needs besides its measurement: the throwaway CA and the
 * child process that trusts it, the machine description, Markdown output and
 * its own section of bench/README.md. (bench/token.ts predates this module and
 * keeps its own copies of the same steps.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createTestCa } from '../test/helpers/pki.js';
import { CA_CERT_FILE, CA_KEY_FILE, TEST_CA_DIR_ENV } from '../test/helpers/test-ca.js';

export const README = join(dirname(fileURLToPath(import.meta.url)), 'README.md');

/**
 * Node reads NODE_EXTRA_CA_CERTS only at process start. So a bench makes the
 * CA in a temporary folder, runs its own file again in a child that trusts
 * it (`childEnv` set to `1` there), and removes the folder when the child ends.
 * Returns the child's exit code.
 */
export async function runInChildTrustingTestCa(childEnv: string): Promise<number> {
  const dir = await mkdtemp(join(os.tmpdir(), 'mailbridge-bench-'));
  try {
    const ca = createTestCa(`mailbridge bench CA ${new Date().toISOString()}`);
    const caPath = join(dir, CA_CERT_FILE);
    await writeFile(caPath, ca.certificatePem, { mode: 0o644 });
    await writeFile(join(dir, CA_KEY_FILE), ca.keys.privateKeyPem, { mode: 0o600 });
    // execArgv carries tsx's loader, argv[1] is the bench file: the child runs the same way.
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: 'inherit',
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: caPath,
        [TEST_CA_DIR_ENV]: dir,
        [childEnv]: '1',
      },
    });
    return await waitForChild(child);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Passes termination signals on, so the launcher outlives the child and removes the CA. */
async function waitForChild(child: ChildProcess): Promise<number> {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of signals) process.on(signal, forward);
  try {
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    if (signal) return 128 + (os.constants.signals[signal] ?? 0);
    return code ?? 1;
  } finally {
    for (const signal of signals) process.off(signal, forward);
  }
}

/**
 * Two lines: the hardware and OS, then Node, the `software` a bench names
 * (library and server versions) and the date.
 */
export function describeMachine(software: string[]): string {
  const cpus = os.cpus();
  const cpu = cpus[0]?.model.trim() ?? 'unknown';
  const date = new Date().toISOString().slice(0, 10);
  return [
    `Machine: ${cpu}, ${cpus.length} cores, ${os.type()} ${os.release()} ${os.arch()}`,
    [`Node ${process.version}`, ...software, `run on ${date}`].join(', '),
  ].join('  \n');
}

/** First column left-aligned, the figures right-aligned. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const rule = header.map((_, i) => (i === 0 ? '---' : '---:'));
  return [line(header), line(rule), ...rows.map(line)].join('\n');
}

/**
 * Replaces what stands between `<!-- bench:NAME:begin -->` and
 * `<!-- bench:NAME:end -->` in bench/README.md, and nothing else: other
 * benches own the other sections. Reads the file just before writing it.
 */
export async function writeReadmeSection(name: string, content: string): Promise<void> {
  const beginMarker = `<!-- bench:${name}:begin -->`;
  const endMarker = `<!-- bench:${name}:end -->`;
  const text = await readFile(README, 'utf8');
  const begin = text.indexOf(beginMarker);
  const end = text.indexOf(endMarker);
  if (begin < 0 || end < begin) {
    throw new Error(`${README} has no ${beginMarker} … ${endMarker} section to fill`);
  }
  const updated = `${text.slice(0, begin + beginMarker.length)}\n${content}\n${text.slice(end)}`;
  await writeFile(README, updated);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[middle - 1] ?? Number.NaN) + upper) / 2;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The entry point of every bench: options are parsed first (so a usage error
 * shows before any CA is made), then the launcher runs this same file again
 * in a child that trusts the throwaway CA, and the child measures.
 */
export function runBench<Options>(
  name: string,
  parse: (argv: string[]) => Options,
  measure: (options: Options) => Promise<number>,
): void {
  const childEnv = `MAILBRIDGE_BENCH_${name.toUpperCase()}_CHILD`;
  const main = async (): Promise<number> => {
    const options = parse(process.argv.slice(2));
    return process.env[childEnv] === '1' ? measure(options) : runInChildTrustingTestCa(childEnv);
  };
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(
        `bench:${name} failed: ${error instanceof Error ? error.stack : error}\n`,
      );
      process.exitCode = 1;
    },
  );
}

/** A progress line on stderr, named after the bench. */
export function progressLogger(name: string): (message: string) => void {
  return (message) => process.stderr.write(`bench:${name} ${message}\n`);
}

/** One value when all rounds agree, else every round's. */
export function counts(values: readonly number[]): string {
  return new Set(values).size === 1 ? String(values[0]) : values.join(', ');
}

/** A whole-number flag of a bench script, refused with its range when it is anything else. */
export function wholeOption(
  name: string,
  value: string | undefined,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(
      Number.isFinite(max)
        ? `--${name} must be a whole number from ${min} to ${max}`
        : `--${name} must be a whole number ≥ ${min}`,
    );
  }
  return n;
}

export interface CorpusBenchOptions {
  messages: number;
  rounds: number;
  /** Through the shaping proxy, as a server or storage account far from the machine. */
  wan: boolean;
  /** Ours's connections (`--connections`), for the benches that take it; 1 otherwise. */
  connections: number;
  writeReadme: boolean;
}

/** `--messages N --rounds N [--wan] [--write-readme]`, for the benches that archive a seeded corpus. */
export function corpusBenchOptions(
  argv: string[],
  defaults: { rounds: number; connections?: number },
): CorpusBenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: String(defaults.rounds) },
      wan: { type: 'boolean', default: false },
      'write-readme': { type: 'boolean', default: false },
      ...(defaults.connections === undefined
        ? {}
        : { connections: { type: 'string', default: String(defaults.connections) } }),
    },
  });
  return {
    messages: wholeOption('messages', values.messages, 1, 100_000),
    rounds: wholeOption('rounds', values.rounds, 1, 20),
    wan: values.wan,
    connections:
      defaults.connections === undefined
        ? 1
        : wholeOption('connections', values.connections as string, 1, 8),
    writeReadme: values['write-readme'],
  };
}
