import { describe, expect, it } from 'vitest';
import { closestName, editDistance } from '../../src/util/did-you-mean.js';

describe('closestName', () => {
  it('ignores case, dashes and underscores', () => {
    expect(closestName('client_id', ['clientId', 'tenantId'])).toBe('clientId');
  });
  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('smpt', 'smtp')).toBe(1);
    expect(closestName('tokne', ['token', 'doctor'])).toBe('token');
  });
  it('finds nothing beyond the distance', () => {
    expect(closestName('archive', ['token', 'doctor'])).toBeUndefined();
  });
});
