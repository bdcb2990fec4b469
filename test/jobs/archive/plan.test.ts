import { describe, expect, it } from 'vitest';
import {
  folderSelected,
  isSelectable,
  matchesPattern,
  unmatchedPatterns,
} from '../../../src/jobs/archive/filters.js';
import {
  chunk,
  groupForFetch,
  newUids,
  planFolder,
  searchCriteria,
  shouldWriteManifest,
  toUidSet,
} from '../../../src/jobs/archive/plan.js';

describe('folder patterns', () => {
  it('match exact paths, * as any run of characters', () => {
    expect(matchesPattern('INBOX', 'INBOX')).toBe(true);
    expect(matchesPattern('INBOX', 'inbox')).toBe(false);
    expect(matchesPattern('INBOX', 'INBOX/Sub')).toBe(false);
    expect(matchesPattern('Archive/*', 'Archive/2024')).toBe(true);
    expect(matchesPattern('Archive/*', 'Archive/2024/Q1')).toBe(true);
    expect(matchesPattern('Archive/*', 'Archive')).toBe(false);
    expect(matchesPattern('*', '')).toBe(true);
    expect(matchesPattern('*20*', 'Archive/2024')).toBe(true);
    expect(matchesPattern('a*b*c', 'abc')).toBe(true);
    expect(matchesPattern('a*b*c', 'acb')).toBe(false);
    expect(matchesPattern('ab*ba', 'aba')).toBe(false);
    expect(matchesPattern('a.b', 'axb')).toBe(false);
    expect(matchesPattern('[x]', '[x]')).toBe(true);
  });

  it('select with include and exclude, exclude winning', () => {
    const filter = { include: ['INBOX', 'Archive/*'], exclude: ['Archive/Old*'] };
    expect(folderSelected('INBOX', filter)).toBe(true);
    expect(folderSelected('Archive/2024', filter)).toBe(true);
    expect(folderSelected('Archive/Old2019', filter)).toBe(false);
    expect(folderSelected('Sent', filter)).toBe(false);
    expect(folderSelected('Sent', { exclude: ['Junk'] })).toBe(true);
    expect(unmatchedPatterns(['INBOX'], ['INBOX', 'Nope*'])).toEqual(['Nope*']);
  });

  it('skip folders that cannot be selected', () => {
    expect(isSelectable(new Set(['\\HasChildren']))).toBe(true);
    expect(isSelectable(new Set(['\\Noselect']))).toBe(false);
    expect(isSelectable(new Set(['\\NonExistent']))).toBe(false);
  });
});

describe('planFolder', () => {
  const archived = new Map([[100, { lastUid: 50, count: 40 }]]);

  it('fetches everything on the first run', () => {
    expect(planFolder(undefined, { uidValidity: 100, uidNext: 61, messages: 60 })).toEqual({
      action: 'fetch',
      reason: 'first-run',
      uidValidity: 100,
      afterUid: 0,
      estimate: 60,
    });
  });

  it('fetches UIDs above the checkpoint', () => {
    expect(planFolder(archived, { uidValidity: 100, uidNext: 61, messages: 50 })).toMatchObject({
      action: 'fetch',
      reason: 'incremental',
      afterUid: 50,
      estimate: 10,
    });
  });

  it('skips a folder whose UIDNEXT says nothing is new', () => {
    expect(planFolder(archived, { uidValidity: 100, uidNext: 51, messages: 45 })).toEqual({
      action: 'skip',
      reason: 'up-to-date',
      uidValidity: 100,
    });
    expect(planFolder(archived, { uidValidity: 100, messages: 0 })).toMatchObject({
      action: 'skip',
      reason: 'empty',
    });
  });

  it('starts again from UID 1 under a new UIDVALIDITY', () => {
    expect(planFolder(archived, { uidValidity: 200, uidNext: 5, messages: 4 })).toEqual({
      action: 'fetch',
      reason: 'uidvalidity-changed',
      uidValidity: 200,
      afterUid: 0,
      estimate: 4,
    });
  });

  it('searches and filters for the UID FETCH n:* pitfall', () => {
    expect(searchCriteria(50)).toEqual({ uid: '51:*' });
    const since = new Date('2024-01-01T00:00:00Z');
    expect(searchCriteria(0, since)).toEqual({ uid: '1:*', since });
    // A server answers 51:* with the last message (UID 50) when nothing is new.
    expect(newUids([50], 50)).toEqual([]);
    expect(newUids([53, 51, 50, 51], 50)).toEqual([51, 53]);
    expect(newUids(false, 0)).toEqual([]);
  });
});

describe('fetch grouping', () => {
  it('compresses UID sets', () => {
    expect(toUidSet([1, 2, 3, 7, 9, 10])).toBe('1:3,7,9:10');
    expect(toUidSet([5])).toBe('5');
    expect(toUidSet([3, 1, 2, 2])).toBe('1:3');
    expect(chunk([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('streams large messages on their own and bounds groups of small ones', () => {
    const limits = { streamAboveBytes: 1000, maxGroupBytes: 2500, maxGroupMessages: 3 };
    const groups = groupForFetch(
      [
        { uid: 1, size: 900 },
        { uid: 2, size: 900 },
        { uid: 3, size: 900 },
        { uid: 4, size: 5000 },
        { uid: 5, size: 10 },
        { uid: 6, size: 10 },
        { uid: 7, size: 10 },
        { uid: 8, size: 10 },
      ],
      limits,
    );
    expect(groups).toEqual([
      { kind: 'whole', uids: [1, 2] },
      { kind: 'whole', uids: [3] },
      { kind: 'stream', uid: 4 },
      { kind: 'whole', uids: [5, 6, 7] },
      { kind: 'whole', uids: [8] },
    ]);
  });

  it('writes the manifest after N lines or T milliseconds', () => {
    const policy = { maxPending: 3, maxDelayMs: 200 };
    expect(shouldWriteManifest(0, undefined, 1000, policy)).toBe(false);
    expect(shouldWriteManifest(2, 900, 1000, policy)).toBe(false);
    expect(shouldWriteManifest(3, 990, 1000, policy)).toBe(true);
    expect(shouldWriteManifest(1, 800, 1000, policy)).toBe(true);
  });
});
