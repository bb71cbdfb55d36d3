/**
 * Console sessions: after a login with a Warden identity's password, the browser holds an
 * opaque random cookie; the server keeps what it stands for (the identity's name, a CSRF
 * token, when it was made and last used). Only the SHA-256 of the cookie value is kept, so a
 * heap dump or a timing side channel on the map does not give a usable cookie.
 *
 * A session ends at logout, after `idleTimeoutMs` without a request, `maxAgeMs` after its
 * login, or when Warden restarts (sessions live in memory, per instance). Every request
 * looks the identity up again in the running configuration (console-access.ts), so a reload
 * that removes it or its group, or a suspension, takes effect on the next request.
 */
import crypto from 'node:crypto';

export interface ConsoleSession {
  readonly identity: string;
  /**
   * An identity that logged in with an OIDC token (JWT): as its verified claims said (name, kind,
   * groups), since it is not in the configuration. Absent for configured identities.
   */
  readonly oidc?: { readonly name: string; readonly kind: 'human' | 'service' | 'agent'; readonly groups: readonly string[] };
  /** Sent back in the `x-warden-csrf` header of every state-changing request. */
  readonly csrf: string;
  readonly createdAt: number;
  lastSeen: number;
  readonly expiresAt: number;
}

export interface ConsoleSessionOptions {
  idleTimeoutMs: number;
  maxAgeMs: number;
  /** Sessions one identity may hold at once (the oldest ends first); default 20. */
  perIdentity?: number;
  /** Sessions in all (the oldest ends first); default 10,000. */
  max?: number;
  now?: () => number;
}

const hash = (token: string): string => crypto.createHash('sha256').update(token).digest('base64url');

/** A cookie value we issue: 32 random bytes, base64url (43 characters). */
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

export class ConsoleSessions {
  readonly #byHash = new Map<string, ConsoleSession>();
  readonly #o: Required<Omit<ConsoleSessionOptions, 'now'>> & { now: () => number };

  constructor(o: ConsoleSessionOptions) {
    this.#o = { perIdentity: 20, max: 10_000, now: Date.now, ...o };
  }

  /** A new session for this identity: the cookie value (give it to the browser once) and the session. */
  create(identity: string, o: { oidc?: ConsoleSession['oidc']; notAfter?: number } = {}): { token: string; session: ConsoleSession } {
    const now = this.#o.now();
    this.#sweep(now);
    const mine = [...this.#byHash].filter(([, s]) => s.identity === identity).sort((a, b) => a[1].createdAt - b[1].createdAt);
    while (mine.length >= this.#o.perIdentity) this.#byHash.delete(mine.shift()![0]);
    while (this.#byHash.size >= this.#o.max) this.#byHash.delete(this.#byHash.keys().next().value!);
    const token = crypto.randomBytes(32).toString('base64url');
    const session: ConsoleSession = {
      identity,
      csrf: crypto.randomBytes(32).toString('base64url'),
      createdAt: now,
      lastSeen: now,
      expiresAt: Math.min(now + this.#o.maxAgeMs, o.notAfter ?? Number.POSITIVE_INFINITY),
      ...(o.oidc ? { oidc: o.oidc } : {}),
    };
    this.#byHash.set(hash(token), session);
    return { token, session };
  }

  /** The live session a cookie value stands for (its idle clock restarted), or undefined. */
  get(token: string): ConsoleSession | undefined {
    if (!TOKEN.test(token)) return undefined;
    const key = hash(token);
    const s = this.#byHash.get(key);
    if (!s) return undefined;
    const now = this.#o.now();
    if (now >= s.expiresAt || now - s.lastSeen >= this.#o.idleTimeoutMs) {
      this.#byHash.delete(key);
      return undefined;
    }
    s.lastSeen = now;
    return s;
  }

  /** Ends the session of this cookie value; true when there was one. */
  end(token: string): boolean {
    return TOKEN.test(token) && this.#byHash.delete(hash(token));
  }

  /** Ends every session of an identity (e.g. it was suspended); how many ended. */
  endAll(identity: string): number {
    let n = 0;
    for (const [k, s] of this.#byHash) if (s.identity === identity && this.#byHash.delete(k)) n++;
    return n;
  }

  get size(): number {
    return this.#byHash.size;
  }

  #sweep(now: number): void {
    for (const [k, s] of this.#byHash) if (now >= s.expiresAt || now - s.lastSeen >= this.#o.idleTimeoutMs) this.#byHash.delete(k);
  }
}

/** Constant-time comparison of two tokens (false when the lengths differ). */
export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}
