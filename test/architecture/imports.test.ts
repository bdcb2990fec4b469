/**
 * The module graph of src/, read from the import statements: no cycles, and
 * no import runs back up the layers `util → config → auth → clients →
 * (doctor | setup | jobs) → cli`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Relative imports and re-exports, type-only ones included: a cycle of types is still a knot to untie. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/g)) {
    found.push(resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts')));
  }
  for (const m of text.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g)) {
    found.push(resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts')));
  }
  return found;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((file) => [file, importsOf(file)]));
const name = (file: string) => relative(SRC, file);

function findCycles(): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open')
        cycles.push([...stack.slice(stack.indexOf(next)), next].map(name));
      else if (!state.has(next) && graph.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file);
  return cycles;
}

/** Lower numbers are lower layers; a module may import only from its own layer or below. */
const LAYERS: Record<string, number> = {
  util: 0,
  'errors.ts': 0,
  'error-codes.ts': 0,
  log: 0,
  config: 1,
  // The local Microsoft 365 stand-in: settings and helpers below it, and only the CLI's
  // sandbox command and the library entry above it (see the test at the end).
  sandbox: 1.5,
  auth: 2,
  clients: 3,
  doctor: 4,
  setup: 4,
  jobs: 4,
  cli: 5,
  'index.ts': 6,
};

function layerOf(file: string): number {
  const top = name(file).split('/')[0] as string;
  const layer = LAYERS[top];
  if (layer === undefined)
    throw new Error(`src/${top} has no layer in this test: add it to LAYERS`);
  return layer;
}

describe('the module graph of src/', () => {
  it('has no import cycles', () => {
    expect(findCycles()).toEqual([]);
  });

  it('never imports up a layer', () => {
    const upward: string[] = [];
    for (const [file, imports] of graph) {
      for (const target of imports) {
        if (graph.has(target) && layerOf(target) > layerOf(file)) {
          upward.push(`${name(file)} → ${name(target)}`);
        }
      }
    }
    expect(upward).toEqual([]);
  });

  it('lets jobs share parts only through jobs/mailbox-read/ and jobs/listener/, which import no job', () => {
    // mailbox-read: reading mailboxes (archive, migrate); listener: listening services (relay, proxy).
    const SHARED = ['mailbox-read', 'listener'];
    // The queue runs other jobs, through their public entry point only (their index.ts).
    const runsJobs = (from: string, target: string) =>
      from === 'queue' && name(target).split('/')[2] === 'index.ts';
    const jobOf = (file: string) => {
      const [top, job] = name(file).split('/');
      return top === 'jobs' ? job : undefined;
    };
    const across: string[] = [];
    for (const [file, imports] of graph) {
      const from = jobOf(file);
      for (const target of imports) {
        const to = jobOf(target);
        if (from && to && to !== from && !SHARED.includes(to) && !runsJobs(from, target))
          across.push(`${name(file)} → ${name(target)}`);
      }
    }
    expect(across).toEqual([]);
  });

  it('lets only the sandbox command and the library entry use src/sandbox/', () => {
    const allowed = new Set(['cli/commands/sandbox.ts', 'index.ts']);
    const users: string[] = [];
    for (const [file, imports] of graph) {
      if (name(file).startsWith('sandbox/') || allowed.has(name(file))) continue;
      for (const target of imports) {
        if (name(target).startsWith('sandbox/')) users.push(`${name(file)} → ${name(target)}`);
      }
    }
    expect(users).toEqual([]);
  });

  it('reads every import (the parser above is not blind)', () => {
    expect(graph.get(join(SRC, 'cli/main.ts'))).toContain(join(SRC, 'cli/run.ts'));
  });
});
