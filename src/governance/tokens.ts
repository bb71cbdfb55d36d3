/**
 * Short-lived login tokens: issued by `warden token issue` into the state
 * store (hashed as a SCRAM verifier, never the secret), used as the password of
 * their identity (checked in the same SCRAM exchange as the identity's own
 * password, without TLS), limited in time and optionally to one database, and
 * revocable. A session that logged in with a token ends at its next statement
 * once the token has expired or been revoked.
 */
import type { IdentityConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { newTokenSecret, tokenVerifier } from '../auth/identity-verifier.js';
import { parseScramVerifier } from '../auth/scram-verifier.js';
import type { StateStore, TokenRecord } from '../store/types.js';
import { newId } from '../store/ids.js';
import type { LoginTokens, TokenCredential } from '../contract/login-tokens.js';

/** Longest token lifetime accepted. */
export const MAX_TOKEN_TTL_MS = 30 * 24 * 3_600_000;

export async function issueToken(
  store: StateStore,
  identity: IdentityConfig,
  o: { ttlMs: number; onBehalfOf?: string; scope?: string; issuedBy?: string; now?: Date },
): Promise<{ record: TokenRecord; token: string }> {
  if (!(o.ttlMs > 0) || o.ttlMs > MAX_TOKEN_TTL_MS) throw new Error(`the lifetime must be more than 0 and at most 30d`);
  const now = o.now ?? new Date();
  const token = newTokenSecret();
  const record: TokenRecord = {
    id: newId('tok'),
    identity: identity.name,
    verifier: tokenVerifier(identity, token),
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + o.ttlMs).toISOString(),
    ...(o.onBehalfOf ? { onBehalfOf: o.onBehalfOf } : {}),
    ...(o.scope ? { scope: o.scope } : {}),
    ...(o.issuedBy ? { issuedBy: o.issuedBy } : {}),
  };
  await store.putToken(record);
  return { record, token };
}

export interface TokenService extends LoginTokens {
  /** Whether a token used by a live session is still good (from a cache refreshed every few seconds). */
  stillValid(id: string, now?: Date): boolean;
  close(): void;
}

export function createTokenService(store: StateStore, log: Logger, refreshMs = 2_000): TokenService {
  const known = new Map<string, TokenRecord>();
  const refresh = async (): Promise<void> => {
    try {
      for (const t of await store.listTokens({ all: true })) known.set(t.id, t);
    } catch (err) {
      log.warn({ reason: (err as Error).message }, 'reading tokens from the state store failed');
    }
  };
  void refresh();
  const timer = setInterval(() => void refresh(), refreshMs);
  timer.unref();
  return {
    async credentials(identity, database) {
      const now = Date.now();
      const out: TokenCredential[] = [];
      for (const t of await store.listTokens({ identity })) {
        known.set(t.id, t);
        if (t.revokedAt || Date.parse(t.expiresAt) <= now) continue;
        if (t.scope !== undefined && t.scope !== database) continue;
        const v = parseScramVerifier(t.verifier);
        if (!v) continue;
        out.push({ id: t.id, storedKey: v.storedKey, serverKey: v.serverKey, expiresAt: new Date(t.expiresAt), ...(t.onBehalfOf ? { onBehalfOf: t.onBehalfOf } : {}) });
      }
      return out;
    },
    stillValid(id, now = new Date()) {
      const t = known.get(id);
      if (!t) return true; // issued after the last refresh: its expiry is checked by the session
      return !t.revokedAt && Date.parse(t.expiresAt) > now.getTime();
    },
    close() {
      clearInterval(timer);
    },
  };
}
