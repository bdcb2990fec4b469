import { describe, expect, it } from 'vitest';
import { flagsToCopy, uidSet } from '../../../src/jobs/migrate/message-flags.js';

describe('flagsToCopy', () => {
  it('keeps what a person set, never \\Deleted or \\Recent', () => {
    expect(
      flagsToCopy(
        ['\\Seen', '\\answered', '\\Flagged', '\\Draft', '\\Deleted', '\\Recent'],
        undefined,
      ),
    ).toEqual(['\\Seen', '\\Answered', '\\Flagged', '\\Draft']);
  });

  it('keeps keywords only where the destination keeps them', () => {
    const flags = ['\\Seen', '$Forwarded', 'Work'];
    expect(flagsToCopy(flags, new Set(['\\Seen', '\\*']))).toEqual(flags);
    expect(flagsToCopy(flags, new Set(['\\Seen', '$forwarded']))).toEqual(['\\Seen', '$Forwarded']);
    expect(flagsToCopy(flags, new Set(['\\Seen']))).toEqual(['\\Seen']);
  });
});

describe('uidSet', () => {
  it('writes runs as ranges', () => {
    expect(uidSet([9, 1, 2, 3, 7, 10, 3])).toBe('1:3,7,9:10');
    expect(uidSet([5])).toBe('5');
  });
});
