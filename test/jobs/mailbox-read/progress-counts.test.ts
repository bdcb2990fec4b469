import { describe, expect, it } from 'vitest';
import { ProgressCounts } from '../../../src/jobs/mailbox-read/progress-counts.js';

describe('progress counts', () => {
  it("replaces a folder's STATUS estimate by its search, never below what is done", () => {
    const p = new ProgressCounts();
    p.planned('INBOX', 10);
    p.planned('Sent', 5);
    expect(p.snapshot().estimatedMessages).toBe(15);
    p.searched('INBOX', 4);
    expect(p.snapshot().estimatedMessages).toBe(9);
    for (let i = 0; i < 4; i++) p.done(100);
    p.searched('Sent', 0);
    expect(p.snapshot()).toEqual({ messages: 4, bytes: 400, estimatedMessages: 4 });
  });
});
