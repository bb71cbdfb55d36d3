/**
 * Configuration of OIDC/JWT client authentication: the `oidc:` section of warden.yaml.
 *
 *   oidc:
 *     issuer: https://idp.example.com/        # required; `iss` must equal it exactly
 *     audience: warden                        # string or list; `aud` must contain one of them
 *     jwks: https://idp.example.com/jwks.json # http(s) URL, file:// URL or file path
 *     clock_tolerance: 30s                    # seconds (number) or 500ms/30s/2m/1m30s; default 30s, at most 10m
 *     algorithms: [RS256, ES256, EdDSA]       # default RS256 RS384 RS512 PS256 ES256 ES384 EdDSA
 *     claims:
 *       name: preferred_username              # default sub; an exact claim name or a dotted path
 *       kind: warden_kind                     # claim holding human|service|agent; default: none
 *       groups: groups                        # claim holding a list or a space-separated string
 *     identities: [alice, trainer]            # optional allow-list of identity names
 *
 * `OidcSchema` (zod v4) validates the raw YAML value (after `${NAME}` substitution) and
 * transforms it into `OidcSettings`. It is pure: a relative `jwks` path is kept as written;
 * the loader calls `resolveOidcPaths(settings, configDir)`.
 *
 * Never accepted, whatever the file says: `alg: none` and the symmetric HS* algorithms (a JWKS
 * holds public keys; accepting HS* invites algorithm confusion with a public key as the secret).
 * Error messages never contain the configured URL (it could carry a credential).
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** Asymmetric JWS algorithms `algorithms:` may list. */
export const OIDC_ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
] as const;
export type OidcAlgorithm = (typeof OIDC_ALGORITHMS)[number];

export const DEFAULT_OIDC_ALGORITHMS: readonly OidcAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'];
export const DEFAULT_OIDC_CLOCK_TOLERANCE_SEC = 30;
/** Largest clock tolerance accepted: beyond it, "expired" stops meaning much. */
export const MAX_OIDC_CLOCK_TOLERANCE_SEC = 600;
export const DEFAULT_OIDC_NAME_CLAIM = 'sub';

/** Where the JSON Web Key Set comes from. */
export type OidcJwksSource = { kind: 'url'; url: URL } | { kind: 'file'; path: string };

/** Which claims make up the Warden identity. Each is an exact claim name or a dotted path. */
export interface OidcClaimMapping {
  /** Identity name (default `sub`). */
  name: string;
  /** Claim holding human|service|agent; unset → the default kind (see oidc.ts). */
  kind?: string;
  /** Claim holding the groups (a list of strings or a space-separated string); unset → no groups. */
  groups?: string;
}

/** The normalized `oidc:` section. */
export interface OidcSettings {
  /** `iss` must equal this exactly. */
  issuer: string;
  /** `aud` must contain at least one of these. */
  audience: string[];
  jwks: OidcJwksSource;
  clockToleranceSec: number;
  /** Accepted `alg` values; never `none` nor HS*. */
  algorithms: OidcAlgorithm[];
  claims: OidcClaimMapping;
  /** When set, only these identity names may log in with a token. */
  identities?: string[];
}

// ---------------------------------------------------------------------------------------------
// Value parsers
// ---------------------------------------------------------------------------------------------

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const TOLERANCE_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/**
 * A clock tolerance: a number of seconds (or a numeric string), or `<number><unit>` parts with
 * unit ms, s, m or h (`500ms`, `30s`, `2m`, `1m30s`). Returns seconds, 0 to 600.
 */
export function parseClockTolerance(input: unknown): Parsed<number> {
  const bad = 'expected a number of seconds or a duration such as 30s or 2m';
  let sec: number;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return { ok: false, error: bad };
    sec = input;
  } else if (typeof input === 'string') {
    const s = input.trim();
    if (/^\d+(\.\d+)?$/.test(s)) {
      sec = Number(s);
    } else {
      if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(s)) return { ok: false, error: bad };
      sec = 0;
      for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) sec += Number(m[1]) * TOLERANCE_UNITS[m[2]];
    }
  } else {
    return { ok: false, error: bad };
  }
  if (sec < 0) return { ok: false, error: 'must not be negative' };
  if (sec > MAX_OIDC_CLOCK_TOLERANCE_SEC) return { ok: false, error: `must be at most ${MAX_OIDC_CLOCK_TOLERANCE_SEC / 60}m` };
  return { ok: true, value: Math.round(sec * 1000) / 1000 };
}

/** `jwks:` — an http(s) URL, a file:// URL or a file path (kept as written). */
export function parseJwksSource(input: string): Parsed<OidcJwksSource> {
  const v = input.trim();
  if (v === '') return { ok: false, error: 'must not be empty' };
  if (/^https?:\/\//i.test(v)) {
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      return { ok: false, error: 'is not a valid URL' };
    }
    if (url.hostname === '') return { ok: false, error: 'URL has no host' };
    if (url.hash) return { ok: false, error: 'URL must not have a #fragment' };
    return { ok: true, value: { kind: 'url', url } };
  }
  if (/^file:/i.test(v)) {
    try {
      return { ok: true, value: { kind: 'file', path: fileURLToPath(v) } };
    } catch {
      return { ok: false, error: 'is not a valid file:// URL (use an absolute file:///path or a plain path)' };
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) {
    return { ok: false, error: 'must be an https:// or http:// URL or a file path' };
  }
  return { ok: true, value: { kind: 'file', path: v } };
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/** A strict object whose unknown-key error lists the keys allowed there (as config/schema.ts). */
function strictObject<T extends z.ZodRawShape>(shape: T) {
  const keys = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown key (expected one of ${keys})` : undefined),
  });
}

const nonEmpty = z.string().trim().min(1, { message: 'must not be empty' });

/** A string or a non-empty list of non-empty strings, normalized to a de-duplicated list. */
const stringOrList = z
  .preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(nonEmpty).min(1, { message: 'must not be empty' }))
  .transform((list) => [...new Set(list)]);

/** A claim name or dotted path: no empty segments. */
const claimPath = nonEmpty.superRefine((v, ctx) => {
  if (v.split('.').some((p) => p === '')) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a claim name or dotted path (e.g. preferred_username or ext.user)` });
  }
});

const algorithm = z.string().transform((v, ctx) => {
  const a = v.trim();
  if ((OIDC_ALGORITHMS as readonly string[]).includes(a)) return a as OidcAlgorithm;
  if (a.toLowerCase() === 'none' || /^hs\d+$/i.test(a)) {
    ctx.addIssue({ code: 'custom', message: `${a} is never accepted (unsigned or symmetric algorithms cannot be verified with a JWKS)` });
  } else {
    ctx.addIssue({ code: 'custom', message: `unknown algorithm "${a}" (expected one of ${OIDC_ALGORITHMS.join(', ')})` });
  }
  return z.NEVER;
});

const ClaimsSchema = strictObject({
  name: claimPath.default(DEFAULT_OIDC_NAME_CLAIM),
  kind: claimPath.optional(),
  groups: claimPath.optional(),
});

/** The raw `oidc:` object → `OidcSettings`. */
export const OidcSchema = strictObject({
  issuer: nonEmpty,
  audience: stringOrList,
  jwks: z.string().transform((v, ctx) => {
    const r = parseJwksSource(v);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error });
      return z.NEVER;
    }
    return r.value;
  }),
  clock_tolerance: z
    .unknown()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return DEFAULT_OIDC_CLOCK_TOLERANCE_SEC;
      const r = parseClockTolerance(v);
      if (!r.ok) {
        ctx.addIssue({ code: 'custom', message: r.error });
        return z.NEVER;
      }
      return r.value;
    }),
  algorithms: z
    .preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(algorithm).min(1, { message: 'must not be empty' }))
    .optional(),
  claims: ClaimsSchema.optional(),
  identities: stringOrList.optional(),
}).transform((raw): OidcSettings => {
  const claims: OidcClaimMapping = { name: raw.claims?.name ?? DEFAULT_OIDC_NAME_CLAIM };
  if (raw.claims?.kind !== undefined) claims.kind = raw.claims.kind;
  if (raw.claims?.groups !== undefined) claims.groups = raw.claims.groups;
  const settings: OidcSettings = {
    issuer: raw.issuer,
    audience: raw.audience,
    jwks: raw.jwks,
    clockToleranceSec: raw.clock_tolerance,
    algorithms: raw.algorithms ? [...new Set(raw.algorithms)] : [...DEFAULT_OIDC_ALGORITHMS],
    claims,
  };
  if (raw.identities !== undefined) settings.identities = raw.identities;
  return settings;
});

/** What `oidc:` may look like in the YAML (before validation). */
export type OidcRawConfig = z.input<typeof OidcSchema>;

/** Resolves a relative `jwks` file path against `baseDir` (the config file's directory). */
export function resolveOidcPaths(s: OidcSettings, baseDir: string): OidcSettings {
  if (s.jwks.kind !== 'file' || isAbsolute(s.jwks.path)) return s;
  return { ...s, jwks: { kind: 'file', path: resolve(baseDir, s.jwks.path) } };
}
