import { describe, expect, it } from 'vitest';
import { formatBytes, formatClock, formatDuration } from '../../src/util/format.js';

/** [input, expected text] pairs. */
type Answers = ReadonlyArray<readonly [number, string]>;

const BYTES: Answers = [
  [0, '0 B'],
  [512, '512 B'],
  [1023, '1023 B'],
  [1024, '1.0 KiB'],
  [1536, '1.5 KiB'],
  [12_400, '12 KiB'],
  [50 * 1024 ** 2, '50 MiB'],
  [5 * 1024 ** 3, '5.0 GiB'],
  [3 * 1024 ** 5, '3072 TiB'],
];

const DURATIONS: Answers = [
  [0, '0 ms'],
  [800, '800 ms'],
  [55_400, '55 s'],
  [119_000, '119 s'],
  [120_000, '2 min'],
  [299_609, '5 min'],
  [119 * 60_000, '119 min'],
  [3 * 3_600_000, '3 h'],
  [47 * 3_600_000, '47 h'],
  [5 * 86_400_000, '5 d'],
];

const CLOCK: Answers = [
  [2_500, '2.5s'],
  [42_000, '42s'],
  [125_000, '2m05s'],
  [3_720_000, '1h02m'],
];

describe('formatBytes', () => {
  it('counts in binary units, one decimal below 10', () => {
    expect(BYTES.map(([n]) => formatBytes(n))).toEqual(BYTES.map(([, text]) => text));
  });
});

describe('formatDuration', () => {
  it('rounds to the one unit that reads best', () => {
    expect(DURATIONS.map(([ms]) => formatDuration(ms))).toEqual(DURATIONS.map(([, t]) => t));
  });
});

describe('formatClock', () => {
  it('keeps the seconds for a progress meter', () => {
    expect(CLOCK.map(([ms]) => formatClock(ms))).toEqual(CLOCK.map(([, text]) => text));
  });
});
