/**
 * Who an MCP caller is, from the credential it presents (stdio: `WARDEN_TOKEN`;
 * HTTP: `Authorization: Bearer`): a Warden token (`wdt_…`, issued by
 * `warden token issue`) or an OIDC JWT.
 *
 * This only finds the login name to present to Warden's listener. It decides
 * nothing: the listener authenticates the credential itself (SCRAM for a token,
 * signature/issuer/audience/expiry for a JWT), exactly as for any wire client,
 * and the MCP server refuses the caller when that login fails.
 *
 * - A token: the state store keeps each token's SCRAM verifier, salted with its
 *   identity's salt; the token belongs to the identity whose valid record's
 *   verifier it reproduces (one PBKDF2 per identity with valid tokens).
 * - A JWT: the name the listener will map it to (`act` actor first, as
 *   src/auth/oidc.ts does), read from the payload; verified by the listener.
 */
import type { IdentityConfig, WardenConfig } from '../config/types.js';
import type { StateStore } from '../store/types.js';
import { tokenVerifier } from '../auth/identity-verifier.js';

export interface Caller {
  /** The login name (identity) presented to the listener. */
  user: string;
  /** The identity as configured, or (JWT) as its claims describe it. */
  identity: IdentityConfig;
  credential: 'token' | 'jwt';
  onBehalfOf?: string;
  /** The only database a scoped token logs in to. */
  scope?: string;
  /** When the credential stops being valid (ms since epoch), when known. */
  expiresAt?: number;
}

export const TOKEN_SHAPE = /^wdt_[a-z2-7]{32}$/;

function jwtPayload(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const p = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as unknown;
    return p && typeof p === 'object' && !Array.isArray(p) ? (p as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function groupsOf(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((g): g is string => typeof g === 'string');
  if (typeof v === 'string') return v.split(/\s+/).filter(Boolean);
  return [];
}

/** The caller a credential names, or undefined when it names nobody (unknown, expired or revoked token; not a JWT). */
export async function callerOf(config: WardenConfig, store: StateStore | undefined, credential: string, now = Date.now()): Promise<Caller | undefined> {
  if (TOKEN_SHAPE.test(credential)) {
    if (!store) return undefined;
    const records = await store.listTokens({});
    const tried = new Map<string, string>();
    for (const t of records) {
      if (t.revokedAt || Date.parse(t.expiresAt) <= now) continue;
      const identity = config.identities.find((i) => i.name === t.identity);
      if (!identity) continue;
      let v = tried.get(identity.name);
      if (v === undefined) tried.set(identity.name, (v = tokenVerifier(identity, credential)));
      if (v !== t.verifier) continue;
      return { user: identity.name, identity, credential: 'token', ...(t.onBehalfOf ? { onBehalfOf: t.onBehalfOf } : {}), ...(t.scope ? { scope: t.scope } : {}), expiresAt: Date.parse(t.expiresAt) };
    }
    return undefined;
  }
  const p = jwtPayload(credential);
  if (!p || !config.oidc) return undefined;
  const claims = config.oidc.claims;
  const str = (o: Record<string, unknown>, k: string | undefined): string | undefined => (k && typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const subject = str(p, claims.name) ?? str(p, 'sub');
  const act = p.act && typeof p.act === 'object' && !Array.isArray(p.act) ? (p.act as Record<string, unknown>) : undefined;
  const actor = act ? (str(act, claims.name) ?? str(act, 'sub')) : undefined;
  const name = actor ?? subject;
  if (!name) return undefined;
  const src = act ?? p;
  const configured = config.identities.find((i) => i.name === name);
  const kind = (str(src, claims.kind) ?? (act ? 'agent' : 'human')) as IdentityConfig['kind'];
  const identity: IdentityConfig = configured ?? { name, kind, groups: groupsOf(claims.groups ? src[claims.groups] : undefined) };
  const exp = typeof p.exp === 'number' ? p.exp * 1000 : undefined;
  if (exp !== undefined && exp <= now) return undefined;
  return { user: name, identity, credential: 'jwt', ...(actor && subject ? { onBehalfOf: subject } : {}), ...(exp ? { expiresAt: exp } : {}) };
}
