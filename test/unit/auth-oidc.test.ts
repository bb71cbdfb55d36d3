/**
 * OIDC/JWT verification (src/auth/oidc.ts) and its config schema (src/config/oidc.ts).
 * Real keys (jose.generateKeyPair), real signatures; the JWKS is served from a temp file and from
 * a local HTTP server whose request count shows the caching behaviour.
 */
import { mkdtemp, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as jose from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { looksLikeJwt, OidcVerifier, readClaim, type OidcResult } from '../../src/auth/oidc.js';
import { OidcSchema, resolveOidcPaths, type OidcSettings } from '../../src/config/oidc.js';

const ISSUER = 'https://idp.example.com/';
const AUDIENCE = 'warden';

interface TestKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: jose.CryptoKey;
  publicJwk: jose.JWK;
}

async function makeKey(alg: 'RS256' | 'ES256', kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg);
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

function jwks(...keys: TestKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.publicJwk) });
}

interface SignOptions {
  key: TestKey;
  /** Header kid; defaults to the key's, `null` for none. */
  kid?: string | null;
  issuer?: string;
  audience?: string | string[];
  subject?: string;
  /** Seconds since the epoch; `null` for no exp. */
  exp?: number | null;
  nbf?: number;
}

const nowSec = () => Math.floor(Date.now() / 1000);

async function sign(claims: jose.JWTPayload, o: SignOptions): Promise<string> {
  const kid = o.kid === undefined ? o.key.kid : o.kid;
  const jwt = new jose.SignJWT(claims)
    .setProtectedHeader(kid === null ? { alg: o.key.alg } : { alg: o.key.alg, kid })
    .setIssuer(o.issuer ?? ISSUER)
    .setAudience(o.audience ?? AUDIENCE)
    .setSubject(o.subject ?? 'alice')
    .setIssuedAt();
  const exp = o.exp === undefined ? nowSec() + 3600 : o.exp;
  if (exp !== null) jwt.setExpirationTime(exp);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  return jwt.sign(o.key.privateKey);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function settings(raw: Record<string, unknown>): OidcSettings {
  return OidcSchema.parse({ issuer: ISSUER, audience: AUDIENCE, ...raw });
}

function expectFailure(r: OidcResult): string {
  expect(r.ok).toBe(false);
  return r.ok ? '' : r.reason;
}

function expectSuccess(r: OidcResult): Extract<OidcResult, { ok: true }> {
  if (!r.ok) throw new Error(`expected success, got: ${r.reason}`);
  return r;
}

let dir: string;
let rsa: TestKey;
let ec: TestKey;
let rsaImpostor: TestKey;
let rsa2: TestKey;
let jwksFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-oidc-'));
  [rsa, ec, rsaImpostor, rsa2] = await Promise.all([
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
    makeKey('RS256', 'rsa-1'), // same kid, different key
    makeKey('RS256', 'rsa-2'),
  ]);
  jwksFile = join(dir, 'jwks.json');
  await writeFile(jwksFile, jwks(rsa, ec));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('looksLikeJwt', () => {
  it('accepts compact JWS shapes, including an unsigned one', async () => {
    expect(looksLikeJwt(await sign({}, { key: rsa }))).toBe(true);
    expect(looksLikeJwt(`${b64url({ alg: 'none' })}.${b64url({ sub: 'x' })}.`)).toBe(true);
  });

  it('rejects passwords and other tokens', () => {
    expect(looksLikeJwt('hunter2')).toBe(false);
    expect(looksLikeJwt('')).toBe(false);
    expect(looksLikeJwt('a.b.c')).toBe(false); // segments do not decode to a JSON header
    expect(looksLikeJwt('my.pass.word')).toBe(false);
    expect(looksLikeJwt(`${b64url({ typ: 'JWT' })}.${b64url({})}.sig`)).toBe(false); // no alg
    expect(looksLikeJwt(`${b64url({ alg: 5 })}.${b64url({})}.sig`)).toBe(false); // alg not a string
    expect(looksLikeJwt(`${b64url(['alg'])}.${b64url({})}.sig`)).toBe(false); // not an object
    expect(looksLikeJwt(`${b64url({ alg: 'RS256' })}.${b64url({})}`)).toBe(false); // two segments
    expect(looksLikeJwt(`${b64url({ alg: 'RS256' })}.${b64url({})}.s.i.g`)).toBe(false); // JWE-like
    expect(looksLikeJwt(`${b64url({ alg: 'RS256' })}.pay load.sig`)).toBe(false); // not base64url
    expect(looksLikeJwt('ghp_0123456789abcdefABCDEF0123456789abcd')).toBe(false);
  });
});

describe('readClaim', () => {
  it('prefers an exact claim name, then follows a dotted path through own properties', () => {
    const claims = { 'https://x.example/role': 'admin', ext: { user: 'bob' }, a: { b: 'ab' }, 'a.b': 'flat' };
    expect(readClaim(claims, 'https://x.example/role')).toBe('admin');
    expect(readClaim(claims, 'ext.user')).toBe('bob');
    expect(readClaim(claims, 'a.b')).toBe('flat');
    expect(readClaim(claims, 'ext.missing')).toBeUndefined();
    expect(readClaim(claims, 'ext.user.length')).toBeUndefined();
    expect(readClaim(claims, 'ext.constructor')).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------

describe('OidcSchema', () => {
  it('applies defaults', () => {
    const s = settings({ jwks: 'https://idp.example.com/.well-known/jwks.json' });
    expect(s.issuer).toBe(ISSUER);
    expect(s.audience).toEqual(['warden']);
    expect(s.jwks.kind).toBe('url');
    expect(s.jwks.kind === 'url' && s.jwks.url.href).toBe('https://idp.example.com/.well-known/jwks.json');
    expect(s.clockToleranceSec).toBe(30);
    expect(s.algorithms).toEqual(['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA']);
    expect(s.claims).toEqual({ name: 'sub' });
    expect(s.identities).toBeUndefined();
  });

  it('normalizes every optional key', () => {
    const s = settings({
      audience: ['warden', 'other', 'warden'],
      jwks: './keys/jwks.json',
      clock_tolerance: '2m',
      algorithms: ['ES256', 'EdDSA'],
      claims: { name: 'preferred_username', kind: 'warden_kind', groups: 'groups' },
      identities: ['alice', 'trainer'],
    });
    expect(s.audience).toEqual(['warden', 'other']);
    expect(s.jwks).toEqual({ kind: 'file', path: './keys/jwks.json' });
    expect(s.clockToleranceSec).toBe(120);
    expect(s.algorithms).toEqual(['ES256', 'EdDSA']);
    expect(s.claims).toEqual({ name: 'preferred_username', kind: 'warden_kind', groups: 'groups' });
    expect(s.identities).toEqual(['alice', 'trainer']);
  });

  it('accepts clock_tolerance as seconds or duration strings', () => {
    expect(settings({ jwks: 'k.json', clock_tolerance: 10 }).clockToleranceSec).toBe(10);
    expect(settings({ jwks: 'k.json', clock_tolerance: 0 }).clockToleranceSec).toBe(0);
    expect(settings({ jwks: 'k.json', clock_tolerance: '45' }).clockToleranceSec).toBe(45);
    expect(settings({ jwks: 'k.json', clock_tolerance: '30s' }).clockToleranceSec).toBe(30);
    expect(settings({ jwks: 'k.json', clock_tolerance: '1m30s' }).clockToleranceSec).toBe(90);
    expect(settings({ jwks: 'k.json', clock_tolerance: '500ms' }).clockToleranceSec).toBe(0.5);
  });

  it('resolves a relative jwks path only through resolveOidcPaths', () => {
    const rel = settings({ jwks: 'keys/jwks.json' });
    expect(resolveOidcPaths(rel, '/etc/warden').jwks).toEqual({ kind: 'file', path: '/etc/warden/keys/jwks.json' });
    const abs = settings({ jwks: '/srv/jwks.json' });
    expect(resolveOidcPaths(abs, '/etc/warden').jwks).toEqual({ kind: 'file', path: '/srv/jwks.json' });
    const url = settings({ jwks: 'http://127.0.0.1:8080/jwks' });
    expect(resolveOidcPaths(url, '/etc/warden')).toBe(url);
    expect(settings({ jwks: 'file:///srv/jwks.json' }).jwks).toEqual({ kind: 'file', path: '/srv/jwks.json' });
  });

  it.each([
    [{ jwks: 'k.json', algorithms: ['RS256', 'none'] }, 'never accepted'],
    [{ jwks: 'k.json', algorithms: ['HS256'] }, 'never accepted'],
    [{ jwks: 'k.json', algorithms: ['RS257'] }, 'unknown algorithm'],
    [{ jwks: 'k.json', algorithms: [] }, 'must not be empty'],
    [{ jwks: 'ftp://idp.example.com/jwks' }, 'https:// or http:// URL or a file path'],
    [{ jwks: '' }, 'must not be empty'],
    [{ jwks: 'k.json', clock_tolerance: '1 hour' }, 'expected a number of seconds'],
    [{ jwks: 'k.json', clock_tolerance: '1h' }, 'at most 10m'],
    [{ jwks: 'k.json', clock_tolerance: -1 }, 'must not be negative'],
    [{ jwks: 'k.json', audience: [] }, 'must not be empty'],
    [{ jwks: 'k.json', claims: { name: 'ext..user' } }, 'not a claim name or dotted path'],
    [{ jwks: 'k.json', claims: { nam: 'x' } }, 'unknown key (expected one of name, kind, groups)'],
    [{ jwks: 'k.json', issuer: '' }, 'must not be empty'],
    [{ jwks: 'k.json', identities: [] }, 'must not be empty'],
    [{ jwks: 'k.json', refresh: '5m' }, 'unknown key'],
  ])('rejects %j', (raw, message) => {
    const r = OidcSchema.safeParse({ issuer: ISSUER, audience: AUDIENCE, ...raw });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.message).join('\n')).toContain(message);
  });

  it('requires issuer, audience and jwks', () => {
    const r = OidcSchema.safeParse({});
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join('.')).sort()).toEqual(['audience', 'issuer', 'jwks']);
  });

  it('never puts the JWKS URL in an error message', () => {
    const r = OidcSchema.safeParse({ issuer: ISSUER, audience: AUDIENCE, jwks: 'gopher://user:s3cret@idp/' });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).not.toContain('s3cret');
  });
});

// ---------------------------------------------------------------------------------------------

describe('OidcVerifier with a JWKS file', () => {
  let verifier: OidcVerifier;
  beforeAll(() => {
    verifier = new OidcVerifier(settings({ jwks: jwksFile }));
  });

  it('accepts a valid RS256 token', async () => {
    const exp = nowSec() + 600;
    const r = expectSuccess(await verifier.verify(await sign({}, { key: rsa, exp })));
    expect(r.identity).toEqual({ name: 'alice', kind: 'human', groups: [] });
    expect(r.expiresAt.getTime()).toBe(exp * 1000);
    expect(r.claims.sub).toBe('alice');
    expect(r.claims.iss).toBe(ISSUER);
    expect(r.onBehalfOf).toBeUndefined();
    expect(r.actor).toBeUndefined();
  });

  it('accepts a valid ES256 token', async () => {
    const r = expectSuccess(await verifier.verify(await sign({}, { key: ec, subject: 'bob' })));
    expect(r.identity.name).toBe('bob');
  });

  it('accepts a token whose aud list contains a configured audience', async () => {
    const r = await verifier.verify(await sign({}, { key: rsa, audience: ['other', AUDIENCE] }));
    expect(r.ok).toBe(true);
  });

  it('rejects an expired token, saying when it expired', async () => {
    const exp = Date.UTC(2024, 10, 27, 10, 0, 0) / 1000;
    const reason = expectFailure(await verifier.verify(await sign({}, { key: rsa, exp })));
    expect(reason).toBe('token expired at 2024-11-27T10:00:00Z');
  });

  it('tolerates clock skew up to clock_tolerance on exp', async () => {
    expect((await verifier.verify(await sign({}, { key: rsa, exp: nowSec() - 10 }))).ok).toBe(true);
    expect((await verifier.verify(await sign({}, { key: rsa, exp: nowSec() - 60 }))).ok).toBe(false);
  });

  it('rejects a token that is not yet valid beyond the tolerance', async () => {
    const nbf = nowSec() + 600;
    const reason = expectFailure(await verifier.verify(await sign({}, { key: rsa, nbf })));
    expect(reason).toBe(`token not valid before ${new Date(nbf * 1000).toISOString().replace('.000Z', 'Z')}`);
    expect((await verifier.verify(await sign({}, { key: rsa, nbf: nowSec() + 10 }))).ok).toBe(true);
  });

  it('rejects a wrong audience', async () => {
    const reason = expectFailure(await verifier.verify(await sign({}, { key: rsa, audience: 'someone-else' })));
    expect(reason).toBe('wrong audience');
  });

  it('rejects a wrong issuer (exact match, even a missing trailing slash)', async () => {
    expect(expectFailure(await verifier.verify(await sign({}, { key: rsa, issuer: 'https://evil.example.com/' })))).toBe('wrong issuer');
    expect(expectFailure(await verifier.verify(await sign({}, { key: rsa, issuer: 'https://idp.example.com' })))).toBe('wrong issuer');
  });

  it('rejects a token signed by another key with the same kid', async () => {
    const reason = expectFailure(await verifier.verify(await sign({}, { key: rsaImpostor })));
    expect(reason).toBe('signature verification failed');
  });

  it('rejects a tampered payload', async () => {
    const [h, , s] = (await sign({}, { key: rsa })).split('.');
    const forged = `${h}.${b64url({ iss: ISSUER, aud: AUDIENCE, sub: 'root', exp: nowSec() + 600 })}.${s}`;
    expect(expectFailure(await verifier.verify(forged))).toBe('signature verification failed');
  });

  it('rejects alg none', async () => {
    const payload = { iss: ISSUER, aud: AUDIENCE, sub: 'alice', exp: nowSec() + 600 };
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`;
    expect(looksLikeJwt(unsigned)).toBe(true);
    expect(expectFailure(await verifier.verify(unsigned))).toBe('unsupported algorithm none');
    // Same with a junk signature and a kid pointing at a real key.
    const withSig = `${b64url({ alg: 'none', kid: 'rsa-1' })}.${b64url(payload)}.AAAA`;
    expect(expectFailure(await verifier.verify(withSig))).toBe('unsupported algorithm none');
  });

  it('rejects HS256 signed with the public key as the secret (algorithm confusion), even if configured', async () => {
    const pem = await jose.exportSPKI(await jose.importJWK(rsa.publicJwk, 'RS256') as jose.CryptoKey);
    const secret = new TextEncoder().encode(pem);
    const token = await new jose.SignJWT({})
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject('alice')
      .setExpirationTime(nowSec() + 600)
      .sign(secret);
    expect(expectFailure(await verifier.verify(token))).toBe('unsupported algorithm HS256');

    // Settings built by hand (bypassing the schema) that list HS256 and none change nothing.
    const forced = { ...settings({ jwks: jwksFile }), algorithms: ['RS256', 'HS256', 'none'] } as unknown as OidcSettings;
    const lax = new OidcVerifier(forced);
    expect(expectFailure(await lax.verify(token))).toBe('unsupported algorithm HS256');
    expect((await lax.verify(await sign({}, { key: rsa }))).ok).toBe(true);
  });

  it('rejects an algorithm outside the configured list', async () => {
    const rsOnly = new OidcVerifier(settings({ jwks: jwksFile, algorithms: ['RS256'] }));
    expect(expectFailure(await rsOnly.verify(await sign({}, { key: ec })))).toBe('unsupported algorithm ES256');
    expect((await rsOnly.verify(await sign({}, { key: rsa }))).ok).toBe(true);
  });

  it('rejects a token without exp', async () => {
    const reason = expectFailure(await verifier.verify(await sign({}, { key: rsa, exp: null })));
    expect(reason).toBe('token has no exp claim');
  });

  it('rejects a key id the JWKS does not have', async () => {
    expect(expectFailure(await verifier.verify(await sign({}, { key: rsa2 })))).toBe('unknown signing key');
  });

  it('rejects things that are not JWTs without echoing them', async () => {
    for (const junk of ['hunter2', 'a.b.c', '', `${b64url({ alg: 'RS256' })}.x`]) {
      const reason = expectFailure(await verifier.verify(junk));
      expect(reason).toBe('not a JWT');
    }
    const jwe = `${b64url({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.a.b.c.d`;
    expect(expectFailure(await verifier.verify(jwe))).toMatch(/JWE/);
  });

  it('never includes the token in a reason', async () => {
    const tokens = [
      await sign({}, { key: rsaImpostor }),
      await sign({}, { key: rsa, audience: 'x' }),
      await sign({}, { key: rsa, exp: 1 }),
      await sign({ act: 'x' }, { key: rsa }),
    ];
    for (const t of tokens) {
      const reason = expectFailure(await verifier.verify(t));
      for (const segment of t.split('.')) expect(reason).not.toContain(segment);
    }
  });

  it('verifies a kid-less token against every matching key', async () => {
    const file = join(dir, 'two-rsa.json');
    await writeFile(file, JSON.stringify({ keys: [rsa.publicJwk, rsa2.publicJwk].map(({ kid: _kid, ...k }) => k) }));
    const v = new OidcVerifier(settings({ jwks: file }));
    expect((await v.verify(await sign({}, { key: rsa2, kid: null }))).ok).toBe(true);
    expect((await v.verify(await sign({}, { key: rsa, kid: null }))).ok).toBe(true);
    expect(expectFailure(await v.verify(await sign({}, { key: rsaImpostor, kid: null })))).toBe('signature verification failed');
  });

  it('re-reads the file when it changes and fails closed when it disappears', async () => {
    const file = join(dir, 'rotating.json');
    await writeFile(file, jwks(rsa));
    const v = new OidcVerifier(settings({ jwks: file }));
    const oldToken = await sign({}, { key: rsa });
    const newToken = await sign({}, { key: rsa2 });
    expect((await v.verify(oldToken)).ok).toBe(true);
    expect(expectFailure(await v.verify(newToken))).toBe('unknown signing key');

    await writeFile(file, jwks(rsa2));
    const later = new Date(Date.now() + 5000);
    await utimes(file, later, later);
    expect((await v.verify(newToken)).ok).toBe(true);
    expect(expectFailure(await v.verify(oldToken))).toBe('unknown signing key');

    await writeFile(file, '{ not json');
    const later2 = new Date(Date.now() + 10_000);
    await utimes(file, later2, later2);
    expect(expectFailure(await v.verify(newToken))).toMatch(/^JWKS unavailable: invalid JSON/);

    await unlink(file);
    const reason = expectFailure(await v.verify(newToken));
    expect(reason).toMatch(/^JWKS unavailable: cannot read \(ENOENT\)/);
    expect(reason).toContain(file);
  });

  it('reports an unusable JWKS file', async () => {
    const file = join(dir, 'not-a-set.json');
    await writeFile(file, JSON.stringify({ kty: 'RSA' }));
    const v = new OidcVerifier(settings({ jwks: file }));
    expect(expectFailure(await v.verify(await sign({}, { key: rsa })))).toMatch(/^JWKS unavailable: not a JSON Web Key Set/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('claims mapping', () => {
  it('reads name, kind and groups (dotted path, list)', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, claims: { name: 'ext.user', kind: 'warden_kind', groups: 'groups' } }));
    const token = await sign({ ext: { user: 'etl' }, warden_kind: 'service', groups: ['loaders', 'analysts', 'loaders'] }, { key: rsa });
    const r = expectSuccess(await v.verify(token));
    expect(r.identity).toEqual({ name: 'etl', kind: 'service', groups: ['loaders', 'analysts'] });
  });

  it('accepts groups as a space-separated string (like scope)', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, claims: { groups: 'scope' } }));
    const r = expectSuccess(await v.verify(await sign({ scope: ' db:read  db:write ' }, { key: rsa })));
    expect(r.identity.groups).toEqual(['db:read', 'db:write']);
  });

  it('defaults kind to human and groups to none when the claims are absent', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, claims: { kind: 'warden_kind', groups: 'groups' } }));
    const r = expectSuccess(await v.verify(await sign({}, { key: rsa })));
    expect(r.identity).toEqual({ name: 'alice', kind: 'human', groups: [] });
  });

  it('ignores kind and groups claims that are not configured', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile }));
    const r = expectSuccess(await v.verify(await sign({ warden_kind: 'agent', groups: ['admins'] }, { key: rsa })));
    expect(r.identity).toEqual({ name: 'alice', kind: 'human', groups: [] });
  });

  it('rejects a missing or non-string name', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, claims: { name: 'preferred_username' } }));
    expect(expectFailure(await v.verify(await sign({}, { key: rsa })))).toBe('name claim "preferred_username" is missing or not a string');
    expect(expectFailure(await v.verify(await sign({ preferred_username: ['a'] }, { key: rsa })))).toBe(
      'name claim "preferred_username" is missing or not a string',
    );
    expect(expectFailure(await v.verify(await sign({ preferred_username: '' }, { key: rsa })))).toMatch(/missing or not a string/);
    expect(expectSuccess(await v.verify(await sign({ preferred_username: 'al' }, { key: rsa }))).identity.name).toBe('al');
  });

  it('rejects an unknown kind without echoing it', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, claims: { kind: 'warden_kind' } }));
    const reason = expectFailure(await v.verify(await sign({ warden_kind: 'superuser' }, { key: rsa })));
    expect(reason).toBe('kind claim "warden_kind" is not human, service or agent');
    expect(reason).not.toContain('superuser');
  });

  it('rejects malformed groups', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, claims: { groups: 'groups' } }));
    expect(expectFailure(await v.verify(await sign({ groups: { admin: true } }, { key: rsa })))).toMatch(/^groups claim "groups" is not a list/);
    expect(expectFailure(await v.verify(await sign({ groups: ['ok', 7] }, { key: rsa })))).toMatch(/^groups claim "groups" contains/);
  });

  it('enforces the identities allow-list', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, identities: ['alice', 'trainer'] }));
    expect((await v.verify(await sign({}, { key: rsa, subject: 'alice' }))).ok).toBe(true);
    expect(expectFailure(await v.verify(await sign({}, { key: rsa, subject: 'mallory' })))).toBe(
      'identity "mallory" is not allowed to use OIDC tokens',
    );
  });
});

describe('RFC 8693 act (delegation)', () => {
  it('authenticates the actor on behalf of the subject', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, claims: { kind: 'warden_kind', groups: 'groups' } }));
    const token = await sign(
      { warden_kind: 'human', groups: ['finance'], act: { sub: 'trainer', groups: ['ml'] } },
      { key: rsa, subject: 'alice' },
    );
    const r = expectSuccess(await v.verify(token));
    // "agent trainer on behalf of alice": the actor's own groups, never the subject's.
    expect(r.identity).toEqual({ name: 'trainer', kind: 'agent', groups: ['ml'] });
    expect(r.actor).toBe('trainer');
    expect(r.onBehalfOf).toBe('alice');
  });

  it('maps the actor with claims.name and claims.kind when the act object has them', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, claims: { name: 'preferred_username', kind: 'warden_kind' } }));
    const token = await sign(
      { preferred_username: 'alice', act: { sub: 'client-1234', preferred_username: 'nightly-etl', warden_kind: 'service' } },
      { key: rsa, subject: 'u-0001' },
    );
    const r = expectSuccess(await v.verify(token));
    expect(r.identity).toEqual({ name: 'nightly-etl', kind: 'service', groups: [] });
    expect(r.onBehalfOf).toBe('alice');
  });

  it('uses the outermost actor of a nested chain', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile }));
    const token = await sign({ act: { sub: 'trainer', act: { sub: 'orchestrator' } } }, { key: rsa, subject: 'alice' });
    const r = expectSuccess(await v.verify(token));
    expect(r.identity.name).toBe('trainer');
    expect(r.onBehalfOf).toBe('alice');
  });

  it('applies the allow-list to the actor', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile, identities: ['alice'] }));
    const token = await sign({ act: { sub: 'trainer' } }, { key: rsa, subject: 'alice' });
    expect(expectFailure(await v.verify(token))).toBe('identity "trainer" is not allowed to use OIDC tokens');
  });

  it('rejects a malformed act claim', async () => {
    const v = new OidcVerifier(settings({ jwks: jwksFile }));
    expect(expectFailure(await v.verify(await sign({ act: 'trainer' }, { key: rsa })))).toBe('act claim is not an object');
    expect(expectFailure(await v.verify(await sign({ act: { iss: 'x' } }, { key: rsa })))).toBe('act claim\'s "sub" is missing or not a string');
  });
});

// ---------------------------------------------------------------------------------------------

describe('OidcVerifier with a JWKS URL', () => {
  let server: Server;
  let requests = 0;
  let body = '';
  let status = 200;
  let url: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests++;
      if (req.url !== '/.well-known/jwks.json') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? body : 'oops');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });

  afterAll(async () => {
    await new Promise<void>((done) => server.close(() => done()));
  });

  beforeEach(() => {
    requests = 0;
    status = 200;
    body = jwks(rsa, ec);
  });

  it('fetches the JWKS once for many verifications', async () => {
    const v = new OidcVerifier(settings({ jwks: url }));
    const token = await sign({}, { key: rsa });
    const results = await Promise.all(Array.from({ length: 10 }, () => v.verify(token)));
    for (let i = 0; i < 10; i++) results.push(await v.verify(await sign({}, { key: i % 2 ? rsa : ec })));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(requests).toBe(1);
  });

  it('refetches after key rotation, at most once per cooldown', async () => {
    let clock = Date.now();
    const v = new OidcVerifier(settings({ jwks: url }), { now: () => new Date(clock) });
    expect((await v.verify(await sign({}, { key: rsa }))).ok).toBe(true);
    expect(requests).toBe(1);

    // The IdP rotates to rsa-2. Right after the first fetch, an unknown kid does not refetch.
    body = jwks(rsa, rsa2);
    const rotated = await sign({}, { key: rsa2 });
    expect(expectFailure(await v.verify(rotated))).toBe('unknown signing key');
    expect(requests).toBe(1);

    clock += 31_000;
    expect((await v.verify(rotated)).ok).toBe(true);
    expect(requests).toBe(2);

    // A flood of tokens with a bogus kid cannot make Warden hammer the IdP.
    const bogus = await sign({}, { key: rsa, kid: 'nope' });
    for (let i = 0; i < 5; i++) expect(expectFailure(await v.verify(bogus))).toBe('unknown signing key');
    expect(requests).toBe(2);
    clock += 31_000;
    for (let i = 0; i < 5; i++) expect(expectFailure(await v.verify(bogus))).toBe('unknown signing key');
    expect(requests).toBe(3);
  });

  it('refreshes the cache after refreshMs, keeping the old keys if the refresh fails', async () => {
    let clock = Date.now();
    const v = new OidcVerifier(settings({ jwks: url }), { now: () => new Date(clock), refreshMs: 60_000 });
    const token = await sign({}, { key: rsa, exp: Math.floor(clock / 1000) + 7200 });
    expect((await v.verify(token)).ok).toBe(true);
    clock += 59_000;
    expect((await v.verify(token)).ok).toBe(true);
    expect(requests).toBe(1);
    clock += 2_000;
    expect((await v.verify(token)).ok).toBe(true);
    expect(requests).toBe(2);

    status = 503;
    clock += 61_000;
    expect((await v.verify(token)).ok).toBe(true); // stale keys still used
    expect(requests).toBe(3);
    expect((await v.verify(token)).ok).toBe(true); // and no immediate retry
    expect(requests).toBe(3);
  });

  it('drops a key the IdP removed once the cache is refreshed', async () => {
    let clock = Date.now();
    const v = new OidcVerifier(settings({ jwks: url }), { now: () => new Date(clock), refreshMs: 60_000 });
    const token = await sign({}, { key: ec, exp: Math.floor(clock / 1000) + 7200 });
    expect((await v.verify(token)).ok).toBe(true);
    body = jwks(rsa);
    clock += 61_000;
    expect(expectFailure(await v.verify(token))).toBe('unknown signing key');
    expect(requests).toBe(2);
  });

  it('reports an HTTP error as JWKS unavailable', async () => {
    status = 500;
    const v = new OidcVerifier(settings({ jwks: url }));
    const reason = expectFailure(await v.verify(await sign({}, { key: rsa })));
    expect(reason).toMatch(/^JWKS unavailable: HTTP 500/);
    expect(requests).toBe(1);
  });

  it('reports invalid JWKS content as JWKS unavailable', async () => {
    body = '<html>login page</html>';
    const v = new OidcVerifier(settings({ jwks: url }));
    expect(expectFailure(await v.verify(await sign({}, { key: rsa })))).toMatch(/^JWKS unavailable: invalid JSON/);
  });

  it('keeps the query string (a possible credential) out of reasons', async () => {
    status = 500;
    const v = new OidcVerifier(settings({ jwks: `${url}?token=s3cret` }));
    const reason = expectFailure(await v.verify(await sign({}, { key: rsa })));
    expect(reason).toMatch(/^JWKS unavailable/);
    expect(reason).not.toContain('s3cret');
  });

  it('reports a server that is down as JWKS unavailable', async () => {
    const down = createServer();
    await new Promise<void>((done) => down.listen(0, '127.0.0.1', done));
    const port = (down.address() as AddressInfo).port;
    await new Promise<void>((done) => down.close(() => done()));
    const v = new OidcVerifier(settings({ jwks: `http://127.0.0.1:${port}/jwks.json` }));
    const reason = expectFailure(await v.verify(await sign({}, { key: rsa })));
    expect(reason).toMatch(/^JWKS unavailable: /);
    expect(reason).toContain(`127.0.0.1:${port}`);
  });

  it('uses an injected fetch', async () => {
    const seen: string[] = [];
    const fakeFetch: typeof fetch = async (input) => {
      seen.push(String(input));
      return new Response(jwks(ec), { status: 200, headers: { 'content-type': 'application/json' } });
    };
    const v = new OidcVerifier(settings({ jwks: 'https://idp.example.com/keys' }), { fetch: fakeFetch });
    expect((await v.verify(await sign({}, { key: ec }))).ok).toBe(true);
    expect((await v.verify(await sign({}, { key: ec }))).ok).toBe(true);
    expect(seen).toEqual(['https://idp.example.com/keys']);
    expect(requests).toBe(0);
  });
});
