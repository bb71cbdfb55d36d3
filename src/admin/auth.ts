/**
 * Who is calling the admin API: HTTP Basic with a Warden identity's name and
 * password, checked against the identity's SCRAM verifier (never stored in the
 * clear), with the same failed-login limits and audit events as the proxy.
 * Unknown names take as long as wrong passwords.
 *
 * Later credentials (tokens, OIDC) plug in as further {@link Credential} kinds.
 */
import crypto from 'node:crypto';
import { identityVerifier } from '../auth/identity-verifier.js';
import type { IdentityConfig } from '../config/types.js';
import { checkScramPassword, mockScramVerifier, type ScramVerifier } from '../auth/index.js';
import { LoginRateLimiter, DEFAULT_LOGIN_RATE_LIMIT, type LoginRateLimitOptions } from '../auth/rate-limit.js';

export type AuthResult =
  | { ok: true; identity: IdentityConfig }
  | { ok: false; status: 401 | 429; message: string; retryAfterS?: number };

export interface AdminAuthenticator {
  authenticate(authorization: string | undefined, address: string): Promise<AuthResult>;
}

export interface AdminAuthEvents {
  loginFailed?(e: { identity: string; clientAddress: string; reason: 'authentication failed' | 'rate limited' }): void;
}

/** `Basic base64(name:password)` → name and password, or null. */
export function parseBasic(header: string | undefined): { name: string; password: string } | null {
  if (!header) return null;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return null;
  return { name: text.slice(0, colon), password: text.slice(colon + 1) };
}

export function createAdminAuthenticator(
  identities: readonly IdentityConfig[],
  events: AdminAuthEvents = {},
  limits: LoginRateLimitOptions = DEFAULT_LOGIN_RATE_LIMIT,
): AdminAuthenticator {
  const verifiers = new Map<string, { identity: IdentityConfig; verifier: ScramVerifier }>();
  for (const identity of identities) {
    const verifier = identityVerifier(identity);
    if (verifier) verifiers.set(identity.name, { identity, verifier });
  }
  const mockSecret = crypto.randomBytes(32);
  const limiter = new LoginRateLimiter(limits);
  return {
    async authenticate(header, address) {
      const creds = parseBasic(header);
      if (!creds) return { ok: false, status: 401, message: 'authentication required: HTTP Basic with a Warden identity and its password' };
      const c = limiter.check(creds.name, address);
      if (!c.allowed) {
        events.loginFailed?.({ identity: creds.name, clientAddress: address, reason: 'rate limited' });
        return { ok: false, status: 429, message: `too many failed login attempts for "${creds.name}"`, retryAfterS: Math.ceil(c.retryAfterMs / 1000) };
      }
      const known = verifiers.get(creds.name);
      const ok = await checkScramPassword(creds.password, known?.verifier ?? mockScramVerifier(creds.name, mockSecret));
      limiter.record(creds.name, address, ok && !!known);
      if (!ok || !known) {
        events.loginFailed?.({ identity: creds.name, clientAddress: address, reason: 'authentication failed' });
        return { ok: false, status: 401, message: `password authentication failed for "${creds.name}"` };
      }
      return { ok: true, identity: known.identity };
    },
  };
}
