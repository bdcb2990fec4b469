/**
 * The AUTH penalty and queue on their own, on a clock the test moves. The
 * flood over real sockets is in relay.test.ts ("under an AUTH flood").
 */
import { describe, expect, it } from 'vitest';
import { AuthGuard } from '../../../src/jobs/listener/auth-guard.js';

function guardAt(options: { capacity?: number; concurrency?: number } = {}) {
  let now = 1_000_000;
  const guard = new AuthGuard({ initialMs: 1000, maxMs: 15_000, now: () => now, ...options });
  return {
    guard,
    advance(ms: number) {
      now += ms;
    },
  };
}

describe('AuthGuard', () => {
  it('grows the delay per address with each failure, up to the maximum, and spaces attempts', () => {
    const { guard, advance } = guardAt();
    expect(guard.admit('192.0.2.1', 'scanner')).toMatchObject({ ok: true, waitMs: 0 });
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      guard.record('192.0.2.1', `guess${i}`, false);
      const admitted = guard.admit('192.0.2.1', `guess${i + 1}`);
      if (!admitted.ok) throw new Error('refused');
      waits.push(admitted.waitMs);
      advance(admitted.waitMs);
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 15_000, 15_000]);
    // At the maximum, a second attempt while one waits would wait twice as long: refused unchecked.
    guard.record('192.0.2.1', 'guess6', false);
    expect(guard.admit('192.0.2.1', 'x')).toMatchObject({ ok: true, waitMs: 15_000 });
    expect(guard.admit('192.0.2.1', 'y')).toMatchObject({ ok: false });
    // A success from the address clears it.
    guard.record('192.0.2.1', 'scanner', true);
    expect(guard.admit('192.0.2.1', 'z')).toMatchObject({ ok: true, waitMs: 0 });
  });

  it("delays a guessed user's logins from new addresses by at most the maximum, never refuses them, and not at all from an address it used", () => {
    const { guard } = guardAt();
    guard.record('198.51.100.7', 'scanner', true);
    // An attacker guesses scanner's password from many addresses.
    for (let i = 0; i < 50; i++) guard.record(`203.0.113.${i}`, 'scanner', false);
    const known = guard.admit('198.51.100.7', 'scanner');
    expect(known).toMatchObject({ ok: true, waitMs: 0 });
    expect(known.ok && known.rank()).toBe(0);
    const fresh = guard.admit('198.51.100.8', 'scanner');
    expect(fresh).toMatchObject({ ok: true, waitMs: 15_000 });
    expect(fresh.ok && fresh.rank()).toBe(1);
  });

  it('forgets failures after a quiet while', () => {
    const { guard, advance } = guardAt();
    for (let i = 0; i < 4; i++) guard.record('192.0.2.9', 'x', false);
    advance(16 * 60 * 1000);
    expect(guard.admit('192.0.2.9', 'x')).toMatchObject({ ok: true, waitMs: 0 });
  });

  it('keeps bounded state however many addresses and names an attacker rotates', () => {
    const { guard } = guardAt({ capacity: 100 });
    for (let i = 0; i < 100_000; i++) {
      guard.record(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `user${i}`, false);
    }
    expect(guard.size).toBeLessThanOrEqual(300);
  });

  it('runs one check at a time plus one kept for trusted logins, then clean addresses before failing ones, judged when a place frees', async () => {
    const { guard } = guardAt();
    guard.record('192.0.2.1', 'scanner', true);
    const rankOf = (address: string, user: string) => {
      const admitted = guard.admit(address, user);
      if (!admitted.ok) throw new Error('refused');
      return admitted.rank;
    };
    const order: string[] = [];
    let release: () => void = () => {};
    const first = guard.run(
      rankOf('203.0.113.1', 'x'),
      () => new Promise<void>((r) => (release = r)),
    );
    // Both bots rank as clean on arrival; the first fails before a place frees.
    const bot1 = rankOf('203.0.113.2', 'scanner');
    const bot2 = rankOf('203.0.113.3', 'scanner');
    const queued = [
      guard.run(bot1, async () => order.push('bot1')),
      guard.run(bot2, async () => order.push('bot2')),
      guard.run(rankOf('198.51.100.9', 'other'), async () => order.push('clean')),
      guard.run(rankOf('192.0.2.1', 'scanner'), async () => order.push('trusted')),
    ];
    guard.record('203.0.113.2', 'scanner', false);
    await new Promise((r) => setTimeout(r, 10));
    // The trusted login takes the place kept for it; the others wait for the guess in progress.
    expect(order).toEqual(['trusted']);
    release();
    await first;
    await Promise.all(queued);
    expect(order).toEqual(['trusted', 'bot2', 'clean', 'bot1']);
  });
});
