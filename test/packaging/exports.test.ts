/**
 * The package's public surface is exactly the list in public-api.ts: the
 * built entry point (what `npm pack` ships) exports those values and no
 * others, and package.json exposes no deep import.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PUBLIC_VALUES } from './public-api.js';
import { ROOT } from './support.js';

describe('the public API', () => {
  it('is exactly the supported list, in the built entry point', async () => {
    const entry = (await import(pathToFileURL(join(ROOT, 'dist', 'index.js')).href)) as object;
    expect(Object.keys(entry).sort()).toEqual([...PUBLIC_VALUES].sort());
  });

  it('offers no deep imports', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>;
    };
    expect(Object.keys(pkg.exports).sort()).toEqual(['.', './package.json']);
  });
});
