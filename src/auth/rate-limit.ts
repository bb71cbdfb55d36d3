/**
 * Failed-login rate limiting per (identity name, client address). Keyed by the
 * name the client tried — whether or not such an identity exists — so the
 * limiter reveals nothing about which identities exist. Pure (injectable clock);
 * bounded memory.
 */
export interface LoginRateLimitOptions {
  /** Failures allowed within the window before further attempts are refused. */
  maxFailures: number;
  windowMs: number;
  /** Most (identity, address) pairs remembered; the oldest are forgotten first. */
  maxEntries?: number;
  now?: () => number;
}

export const DEFAULT_LOGIN_RATE_LIMIT: LoginRateLimitOptions = { maxFailures: 10, windowMs: 5 * 60_000 };

export type RateCheck = { allowed: true } | { allowed: false; retryAfterMs: number };

export class LoginRateLimiter {
  private readonly failures = new Map<string, number[]>();
  private readonly max: number;
  private readonly window: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(o: LoginRateLimitOptions = DEFAULT_LOGIN_RATE_LIMIT) {
    this.max = Math.max(1, o.maxFailures);
    this.window = Math.max(1, o.windowMs);
    this.maxEntries = o.maxEntries ?? 100_000;
    this.now = o.now ?? Date.now;
  }

  private key(identity: string, address: string): string {
    return `${address}\u0000${identity}`;
  }

  private recent(key: string): number[] {
    const list = this.failures.get(key);
    if (!list) return [];
    const cutoff = this.now() - this.window;
    const kept = list.filter((t) => t > cutoff);
    if (kept.length === 0) this.failures.delete(key);
    else if (kept.length !== list.length) this.failures.set(key, kept);
    return kept;
  }

  /** May this identity try to log in from this address now? */
  check(identity: string, address: string): RateCheck {
    const list = this.recent(this.key(identity, address));
    if (list.length < this.max) return { allowed: true };
    return { allowed: false, retryAfterMs: Math.max(0, list[list.length - this.max] + this.window - this.now()) };
  }

  /** Record the outcome of an attempt: a success clears the failures. */
  record(identity: string, address: string, ok: boolean): void {
    const key = this.key(identity, address);
    if (ok) {
      this.failures.delete(key);
      return;
    }
    const list = this.recent(key);
    list.push(this.now());
    if (list.length > this.max) list.splice(0, list.length - this.max);
    this.failures.delete(key); // re-insert: most recent last
    this.failures.set(key, list);
    while (this.failures.size > this.maxEntries) {
      const oldest = this.failures.keys().next().value as string;
      this.failures.delete(oldest);
    }
  }

  get size(): number {
    return this.failures.size;
  }
}
