/**
 * OIDC / JWT client authentication: verifies a JWT a PostgreSQL client presents as its password
 * and maps it to a Warden identity. The caller only offers this over TLS (a bearer token on a
 * clear-text connection can be replayed) and decides what to do with the result.
 *
 * Checks, in order: the token is a compact JWS (`not a JWT` otherwise; JWE is refused); its `alg`
 * is one of the configured asymmetric algorithms — `none` and HS* are refused even if listed, so
 * a public key can never be used as an HMAC secret; the signature verifies with a key from the
 * JWKS (by `kid`/`alg`); `iss` equals the issuer exactly; `aud` contains a configured audience;
 * `exp` is present and in the future and `nbf` (if any) in the past, both with `clockToleranceSec`;
 * the name/kind/groups claims map to an identity; the name is on the `identities` allow-list when
 * one is configured.
 *
 * Delegation (RFC 8693 `act`): a token for subject alice carrying `act: { sub: "trainer" }` means
 * "trainer acting on behalf of alice". Warden authenticates the ACTOR — the party actually talking
 * to the database — so the result is identity = trainer, `actor` = "trainer", `onBehalfOf` =
 * "alice" (the subject's mapped name). The actor's name is `act[claims.name]` when present, else
 * `act.sub`; its kind and groups are read from the `act` object only (a delegate never inherits
 * the subject's groups) and its kind defaults to `agent` when `act` has no kind claim. The
 * allow-list applies to the actor's name. With nested actors (`act` inside `act`) only the
 * outermost — the current actor — is used; the earlier delegation chain is not recorded.
 *
 * Without `act`, the kind comes from `claims.kind` (default `human`), groups from `claims.groups`.
 *
 * Keys: a JWKS URL is fetched on first use and cached for `refreshMs` (10 min); a token whose key
 * is unknown triggers a refetch at most once per `unknownKidCooldownMs` (30 s, key rotation); a
 * failed refresh keeps using the keys already fetched and is retried after 5 s. A JWKS file is
 * re-read when its mtime (or size) changes; an unreadable or invalid file fails verification.
 *
 * `verify()` never throws for a bad token or an unavailable JWKS: it returns `{ ok: false, reason }`
 * with a reason fit for a log line — it never contains the token, and claim values taken from an
 * unverified token are never echoed.
 */
import { readFile, stat } from 'node:fs/promises';
import {
  createLocalJWKSet,
  errors,
  jwtVerify,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyOptions,
} from 'jose';
import type { IdentityKind } from '../config/types.js';
import type { OidcSettings } from '../config/oidc.js';

export const DEFAULT_JWKS_REFRESH_MS = 10 * 60_000;
export const DEFAULT_UNKNOWN_KID_COOLDOWN_MS = 30_000;
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000;
/** After a failed JWKS fetch, the next attempt waits at least this long. */
const FAILED_FETCH_RETRY_MS = 5_000;
/** Longest token considered; PostgreSQL passwords are short, real JWTs a few KiB. */
const MAX_TOKEN_LENGTH = 16 * 1024;
/** Largest JWKS document accepted. */
const MAX_JWKS_BYTES = 1024 * 1024;

const IDENTITY_KINDS: readonly IdentityKind[] = ['human', 'service', 'agent'];

export interface OidcIdentity {
  name: string;
  kind: IdentityKind;
  groups: string[];
}

export type OidcResult =
  | {
      ok: true;
      /** Who is connecting: the actor when the token carries `act`, else the subject. */
      identity: OidcIdentity;
      /** With `act`: the subject's name (the user the actor works for). */
      onBehalfOf?: string;
      /** With `act`: the actor's name (equal to identity.name). */
      actor?: string;
      expiresAt: Date;
      /** The verified claim set. */
      claims: Record<string, unknown>;
    }
  | { ok: false; reason: string };

export interface OidcVerifierOptions {
  /** Used for JWKS URLs (default: global fetch). */
  fetch?: typeof fetch;
  /** The clock for token times and the JWKS cache (default: the system clock). */
  now?: () => Date;
  /** How long a fetched JWKS is used before it is fetched again (default 10 min). */
  refreshMs?: number;
  /** Least time between JWKS fetches caused by an unknown key id (default 30 s). */
  unknownKidCooldownMs?: number;
  /** Timeout of one JWKS fetch (default 5 s). */
  timeoutMs?: number;
}

/** A verification failure with a loggable reason (internal). */
class OidcFailure extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;
type LocalSet = ReturnType<typeof createLocalJWKSet>;

// ---------------------------------------------------------------------------------------------
// Cheap shape checks
// ---------------------------------------------------------------------------------------------

const B64URL = /^[A-Za-z0-9_-]+$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeJsonSegment(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * True when `password` has the shape of a compact JWS: three base64url segments (the signature
 * may be empty) whose first decodes to a JSON object with a string `alg`. Cheap; verifies nothing.
 */
export function looksLikeJwt(password: string): boolean {
  if (password.length > MAX_TOKEN_LENGTH) return false;
  const parts = password.split('.');
  if (parts.length !== 3) return false;
  const [header, payload, signature] = parts;
  if (!B64URL.test(header) || !B64URL.test(payload) || (signature !== '' && !B64URL.test(signature))) return false;
  const decoded = decodeJsonSegment(header);
  return isPlainObject(decoded) && typeof decoded.alg === 'string';
}

/** An attacker-chosen `alg` value, safe to print. */
function printableAlg(alg: string): string {
  return /^[A-Za-z0-9_+-]{1,32}$/.test(alg) ? alg : '(unprintable)';
}

function isoSeconds(epochSec: unknown): string {
  if (typeof epochSec !== 'number' || !Number.isFinite(epochSec)) return 'an invalid time';
  const d = new Date(epochSec * 1000);
  return Number.isNaN(d.getTime()) ? 'an invalid time' : d.toISOString().replace(/\.000Z$/, 'Z');
}

/** A claim by exact name, else by dotted path through nested objects (own properties only). */
export function readClaim(obj: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(obj, path)) return obj[path];
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (!isPlainObject(cur) || !Object.hasOwn(cur, part)) return undefined;
    cur = cur[part];
  }
  return cur;
}

// ---------------------------------------------------------------------------------------------
// Key sources
// ---------------------------------------------------------------------------------------------

/** Describes why a JWKS document could not be used, without echoing its content. */
function jwksProblem(err: unknown): string {
  if (err instanceof OidcFailure) return err.reason;
  if (err instanceof SyntaxError) return 'invalid JSON';
  if (err instanceof errors.JOSEError) return 'not a valid JSON Web Key Set';
  if (err instanceof Error && err.name === 'TimeoutError') return 'timed out';
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${(err.cause as NodeJS.ErrnoException).code ?? err.cause.message}` : '';
    return `${err.message}${cause}`.slice(0, 200);
  }
  return 'unknown error';
}

function parseJwks(text: string): LocalSet {
  const doc: unknown = JSON.parse(text);
  if (!isPlainObject(doc) || !Array.isArray(doc.keys)) throw new OidcFailure('not a JSON Web Key Set (no "keys" list)');
  return createLocalJWKSet(doc as unknown as JSONWebKeySet);
}

/** Looks a key up in a set; an unknown key becomes `undefined` (other errors pass through). */
async function lookup(set: LocalSet, header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey | undefined> {
  try {
    return await set(header, token);
  } catch (err) {
    if (err instanceof errors.JWKSNoMatchingKey) return undefined;
    throw err;
  }
}

/** A JWKS fetched over HTTP(S) with a TTL cache and a cooldown on unknown-kid refetches. */
class RemoteJwks {
  private set?: LocalSet;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private lastError?: string;
  private inflight?: Promise<void>;
  private readonly label: string;

  constructor(
    private readonly url: URL,
    private readonly fetchFn: typeof fetch,
    private readonly clock: () => number,
    private readonly refreshMs: number,
    private readonly cooldownMs: number,
    private readonly timeoutMs: number,
  ) {
    // Scheme, host and path only: a query string or user info could hold a credential.
    this.label = `${url.protocol}//${url.host}${url.pathname}`;
  }

  readonly resolve: KeyResolver = async (header, token) => {
    const now = this.clock();
    if (!this.set || now - this.fetchedAt >= this.refreshMs) await this.refresh(FAILED_FETCH_RETRY_MS);
    if (!this.set) throw new OidcFailure(`JWKS unavailable: ${this.lastError ?? 'not fetched'}`);
    const key = await lookup(this.set, header, token);
    if (key) return key;
    // Unknown kid: perhaps the IdP rotated its keys. Refetch, but not more than once per cooldown.
    await this.refresh(this.cooldownMs);
    const again = await lookup(this.set, header, token);
    if (again) return again;
    throw new OidcFailure('unknown signing key');
  };

  /** Fetches the set unless an attempt was made less than `minGapMs` ago; concurrent callers share one fetch. */
  private refresh(minGapMs: number): Promise<void> {
    if (this.inflight) return this.inflight;
    if (this.clock() - this.attemptedAt < minGapMs) return Promise.resolve();
    this.attemptedAt = this.clock();
    this.inflight = this.fetchSet().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetchSet(): Promise<void> {
    try {
      const res = await this.fetchFn(this.url, {
        headers: { accept: 'application/jwk-set+json, application/json' },
        redirect: 'follow',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      if (!res.ok) throw new OidcFailure(`HTTP ${res.status}`);
      const text = await res.text();
      if (text.length > MAX_JWKS_BYTES) throw new OidcFailure('response too large');
      this.set = parseJwks(text);
      this.fetchedAt = this.clock();
      this.lastError = undefined;
    } catch (err) {
      // Keep any keys fetched before: an IdP blip should not lock everyone out.
      this.lastError = `${jwksProblem(err)} (${this.label})`;
    }
  }
}

/** A JWKS read from a file, re-read when the file changes. */
class FileJwks {
  private set?: LocalSet;
  private stamp?: string;
  private inflight?: Promise<LocalSet>;

  constructor(private readonly path: string) {}

  readonly resolve: KeyResolver = async (header, token) => {
    const set = await this.load();
    const key = await lookup(set, header, token);
    if (key) return key;
    throw new OidcFailure('unknown signing key');
  };

  private load(): Promise<LocalSet> {
    this.inflight ??= this.reload().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async reload(): Promise<LocalSet> {
    try {
      const st = await stat(this.path);
      const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
      if (this.set && stamp === this.stamp) return this.set;
      if (st.size > MAX_JWKS_BYTES) throw new OidcFailure('file too large');
      const set = parseJwks(await readFile(this.path, 'utf8'));
      this.set = set;
      this.stamp = stamp;
      return set;
    } catch (err) {
      // The file is the operator's: always reflect its current state, fail closed when it is broken.
      this.set = undefined;
      this.stamp = undefined;
      const code = (err as NodeJS.ErrnoException).code;
      const problem = typeof code === 'string' ? `cannot read (${code})` : jwksProblem(err);
      throw new OidcFailure(`JWKS unavailable: ${problem} (${this.path})`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Verifier
// ---------------------------------------------------------------------------------------------

/** Turns a jose (or other) error into a loggable reason. */
function describeFailure(err: unknown): string {
  if (err instanceof OidcFailure) return err.reason;
  if (err instanceof errors.JWTExpired) return `token expired at ${isoSeconds(err.payload.exp)}`;
  if (err instanceof errors.JWTClaimValidationFailed) {
    const { claim, reason } = err;
    if (claim === 'iss') return reason === 'missing' ? 'wrong issuer (no iss claim)' : 'wrong issuer';
    if (claim === 'aud') return reason === 'missing' ? 'wrong audience (no aud claim)' : 'wrong audience';
    if (claim === 'exp') return reason === 'missing' ? 'token has no exp claim' : 'exp claim is not a number';
    if (claim === 'nbf') return reason === 'invalid' ? 'nbf claim is not a number' : `token not valid before ${isoSeconds(err.payload.nbf)}`;
    if (claim === 'iat') return 'iat claim is not a number';
    return `invalid ${printableAlg(claim)} claim`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature verification failed';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'unsupported algorithm';
  if (err instanceof errors.JWKSNoMatchingKey) return 'unknown signing key';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return `malformed token: ${err.message}`;
  if (err instanceof errors.JOSEError) return `token rejected: ${err.message}`;
  if (err instanceof Error) return `token rejected: ${err.message.slice(0, 200)}`;
  return 'token rejected';
}

function kindOf(value: unknown, claim: string, fallback: IdentityKind): IdentityKind {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (IDENTITY_KINDS as readonly string[]).includes(value)) return value as IdentityKind;
  throw new OidcFailure(`kind claim "${claim}" is not human, service or agent`);
}

function groupsOf(value: unknown, claim: string): string[] {
  if (value === undefined || value === null) return [];
  let list: unknown[];
  if (typeof value === 'string') list = value.split(/\s+/).filter((g) => g !== '');
  else if (Array.isArray(value)) list = value;
  else throw new OidcFailure(`groups claim "${claim}" is not a list or a space-separated string`);
  if (!list.every((g): g is string => typeof g === 'string' && g !== '')) {
    throw new OidcFailure(`groups claim "${claim}" contains something other than non-empty strings`);
  }
  return [...new Set(list as string[])];
}

function nameOf(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new OidcFailure(`${what} is missing or not a string`);
  return value;
}

/** Verifies JWTs against one OIDC configuration. Create one per configuration and reuse it (it caches keys). */
export class OidcVerifier {
  private readonly keys: KeyResolver;
  private readonly now: () => Date;
  private readonly algorithms: string[];
  private readonly allowed?: ReadonlySet<string>;

  constructor(
    readonly settings: OidcSettings,
    options: OidcVerifierOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    // Belt and braces: whatever the settings say, never none or HMAC.
    this.algorithms = (settings.algorithms as readonly string[]).filter((a) => a.toLowerCase() !== 'none' && !/^HS/i.test(a));
    if (settings.identities) this.allowed = new Set(settings.identities);
    if (settings.jwks.kind === 'url') {
      const remote = new RemoteJwks(
        settings.jwks.url,
        options.fetch ?? globalThis.fetch,
        () => this.now().getTime(),
        options.refreshMs ?? DEFAULT_JWKS_REFRESH_MS,
        options.unknownKidCooldownMs ?? DEFAULT_UNKNOWN_KID_COOLDOWN_MS,
        options.timeoutMs ?? DEFAULT_JWKS_TIMEOUT_MS,
      );
      this.keys = remote.resolve;
    } else {
      this.keys = new FileJwks(settings.jwks.path).resolve;
    }
  }

  /** Verifies `token` and maps it to an identity. Never throws. */
  async verify(token: string): Promise<OidcResult> {
    try {
      return await this.verifyOrThrow(token);
    } catch (err) {
      return { ok: false, reason: describeFailure(err) };
    }
  }

  private async verifyOrThrow(token: string): Promise<OidcResult> {
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw new OidcFailure('not a JWT');
    const segments = token.split('.');
    if (segments.length === 5) throw new OidcFailure('encrypted tokens (JWE) are not supported');
    if (!looksLikeJwt(token)) throw new OidcFailure('not a JWT');
    const header = decodeJsonSegment(segments[0]) as Record<string, unknown> & { alg: string };
    const alg = header.alg;
    if (alg === 'none' || !this.algorithms.includes(alg)) throw new OidcFailure(`unsupported algorithm ${printableAlg(alg)}`);

    const options: JWTVerifyOptions = {
      issuer: this.settings.issuer,
      audience: this.settings.audience,
      algorithms: this.algorithms,
      clockTolerance: this.settings.clockToleranceSec,
      currentDate: this.now(),
      requiredClaims: ['exp'],
    };
    let payload: JWTPayload;
    try {
      payload = (await jwtVerify(token, this.keys, options)).payload;
    } catch (err) {
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
      payload = await this.verifyWithCandidates(token, err, options);
    }
    return this.mapClaims(payload);
  }

  /** Several keys match the header (no `kid`): the token is good if one of them verifies it. */
  private async verifyWithCandidates(
    token: string,
    candidates: errors.JWKSMultipleMatchingKeys,
    options: JWTVerifyOptions,
  ): Promise<JWTPayload> {
    for await (const key of candidates) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (err) {
        if (!(err instanceof errors.JWSSignatureVerificationFailed)) throw err;
      }
    }
    throw new OidcFailure('signature verification failed');
  }

  private mapClaims(payload: JWTPayload): OidcResult {
    const claims = payload as Record<string, unknown>;
    const map = this.settings.claims;
    const subjectName = nameOf(readClaim(claims, map.name), `name claim "${map.name}"`);

    let identity: OidcIdentity;
    let onBehalfOf: string | undefined;
    if (claims.act !== undefined) {
      const act = claims.act;
      if (!isPlainObject(act)) throw new OidcFailure('act claim is not an object');
      // Nested act (act.act) is the earlier delegation chain: deliberately ignored.
      const mapped = readClaim(act, map.name);
      const actorName = mapped !== undefined ? nameOf(mapped, `act claim's "${map.name}"`) : nameOf(act.sub, 'act claim\'s "sub"');
      identity = {
        name: actorName,
        kind: map.kind ? kindOf(readClaim(act, map.kind), map.kind, 'agent') : 'agent',
        groups: map.groups ? groupsOf(readClaim(act, map.groups), map.groups) : [],
      };
      onBehalfOf = subjectName;
    } else {
      identity = {
        name: subjectName,
        kind: map.kind ? kindOf(readClaim(claims, map.kind), map.kind, 'human') : 'human',
        groups: map.groups ? groupsOf(readClaim(claims, map.groups), map.groups) : [],
      };
    }
    if (this.allowed && !this.allowed.has(identity.name)) {
      throw new OidcFailure(`identity ${JSON.stringify(identity.name)} is not allowed to use OIDC tokens`);
    }
    const result: OidcResult = {
      ok: true,
      identity,
      expiresAt: new Date((payload.exp as number) * 1000),
      claims,
    };
    if (onBehalfOf !== undefined) {
      result.onBehalfOf = onBehalfOf;
      result.actor = identity.name;
    }
    return result;
  }
}
