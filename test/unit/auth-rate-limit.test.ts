import { describe, expect, it } from 'vitest';
import { LoginRateLimiter } from '../../src/auth/rate-limit.js';

describe('LoginRateLimiter', () => {
  it('refuses after maxFailures within the window, per identity and address, and recovers', () => {
    let now = 1_000_000;
    const l = new LoginRateLimiter({ maxFailures: 3, windowMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(l.check('alice', '10.0.0.1').allowed).toBe(true);
      l.record('alice', '10.0.0.1', false);
      now += 1000;
    }
    const c = l.check('alice', '10.0.0.1');
    expect(c.allowed).toBe(false);
    expect(c.allowed === false && c.retryAfterMs).toBe(57_000);
    expect(l.check('alice', '10.0.0.2').allowed).toBe(true);
    expect(l.check('bob', '10.0.0.1').allowed).toBe(true);
    now += 57_001;
    expect(l.check('alice', '10.0.0.1').allowed).toBe(true);
  });

  it('treats names that exist and names that do not alike, and a success clears failures', () => {
    const l = new LoginRateLimiter({ maxFailures: 2, windowMs: 60_000 });
    l.record('no-such-identity', 'a', false);
    l.record('no-such-identity', 'a', false);
    expect(l.check('no-such-identity', 'a').allowed).toBe(false);
    l.record('alice', 'a', false);
    l.record('alice', 'a', true);
    l.record('alice', 'a', false);
    expect(l.check('alice', 'a').allowed).toBe(true);
  });

  it('keeps memory bounded', () => {
    const l = new LoginRateLimiter({ maxFailures: 5, windowMs: 60_000, maxEntries: 100 });
    for (let i = 0; i < 1000; i++) l.record(`user${i}`, 'x', false);
    expect(l.size).toBe(100);
  });
});
