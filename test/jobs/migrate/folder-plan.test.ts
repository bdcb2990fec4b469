import { describe, expect, it } from 'vitest';
import {
  type ListedFolder,
  parseMapEntry,
  planFolders,
} from '../../../src/jobs/migrate/folder-plan.js';

function folder(path: string, delimiter: string, extra: Partial<ListedFolder> = {}): ListedFolder {
  return { path, delimiter, flags: new Set(), ...extra };
}

const exchange = [
  folder('INBOX', '/', { specialUse: '\\Inbox' }),
  folder('Sent Items', '/', { specialUse: '\\Sent' }),
  folder('Deleted Items', '/', { specialUse: '\\Trash' }),
];

describe('planFolders', () => {
  it("rebuilds paths with the destination's delimiter", () => {
    const plan = planFolders(
      [folder('INBOX', '.'), folder('Projects', '.'), folder('Projects.2024', '.')],
      exchange,
    );
    expect(plan.map((p) => [p.source, p.destination])).toEqual([
      ['INBOX', 'INBOX'],
      ['Projects', 'Projects'],
      ['Projects.2024', 'Projects/2024'],
    ]);
  });

  it("keeps a name holding the destination's delimiter one folder", () => {
    const plan = planFolders([folder('a/b', '.'), folder('a/b.c', '.')], exchange);
    expect(plan.map((p) => [p.destination, p.renamed])).toEqual([
      ['a_b', true],
      ['a_b/c', true],
    ]);
    // The other way: dots are ordinary characters on a `/` server.
    const back = planFolders([folder('v1.2', '/'), folder('v1.2/x', '/')], [folder('INBOX', '.')]);
    expect(back.map((p) => p.destination)).toEqual(['v1_2', 'v1_2.x']);
  });

  it('maps special-use folders to the destination folder of that use, or Exchange names', () => {
    const plan = planFolders(
      [
        folder('Sent', '/', { specialUse: '\\Sent' }),
        folder('Sent/2023', '/'),
        folder('Trash', '/', { specialUse: '\\Trash' }),
        folder('Junk', '/', { specialUse: '\\Junk' }),
        folder('INBOX/Drafts', '/', { specialUse: '\\Drafts' }),
        folder('Archive', '/', { specialUse: '\\Archive' }),
        folder('inbox', '/'),
      ],
      [...exchange, folder('Gesendet', '/', { specialUse: '\\Sent' })],
    );
    expect(Object.fromEntries(plan.map((p) => [p.source, p.destination]))).toEqual({
      Sent: 'Sent Items',
      'Sent/2023': 'Sent Items/2023',
      Trash: 'Deleted Items',
      Junk: 'Junk Email',
      'INBOX/Drafts': 'Drafts',
      Archive: 'Archive',
      inbox: 'INBOX',
    });
    expect(plan.find((p) => p.source === 'Sent')).toMatchObject({
      exists: true,
      specialUse: '\\Sent',
    });
    expect(plan.find((p) => p.source === 'Junk')?.exists).toBe(false);
  });

  it('applies --map to a folder and its subfolders, the most specific entry winning', () => {
    const plan = planFolders(
      [folder('Old', '.'), folder('Old.A', '.'), folder('Old.B', '.'), folder('Old.B.x', '.')],
      exchange,
      {
        map: [
          { source: 'Old', destination: 'Legacy/Old mail' },
          { source: 'Old.B', destination: 'B' },
        ],
      },
    );
    expect(plan.map((p) => p.destination)).toEqual([
      'Legacy/Old mail',
      'Legacy/Old mail/A',
      'B',
      'B/x',
    ]);
  });

  it('takes --folder and --exclude patterns, and skips folders that hold no messages', () => {
    const source = [
      folder('INBOX', '/'),
      folder('Lists', '/', { flags: new Set(['\\Noselect']) }),
      folder('Lists/a', '/'),
      folder('Lists/b', '/'),
      folder('Ünïcödé ✓', '/'),
    ];
    expect(
      planFolders(source, exchange, { include: ['Lists/*', 'Ü*'], exclude: ['Lists/b'] }).map(
        (p) => p.destination,
      ),
    ).toEqual(['Lists/a', 'Ünïcödé ✓']);
  });

  it('keeps subscriptions as the source has them, all when the source reports none', () => {
    const plan = planFolders(
      [folder('INBOX', '/', { subscribed: true }), folder('Lists', '/')],
      exchange,
    );
    expect(plan.map((p) => p.subscribed)).toEqual([true, false]);
    expect(planFolders([folder('Lists', '/')], exchange)[0]?.subscribed).toBe(true);
  });

  it('reads --map entries', () => {
    expect(parseMapEntry('A=B=C')).toEqual({ source: 'A', destination: 'B=C' });
    expect(parseMapEntry('=B')).toBeUndefined();
    expect(parseMapEntry('A=')).toBeUndefined();
  });
});
