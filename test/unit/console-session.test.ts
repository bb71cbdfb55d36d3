/**
 * The console's session, cookie and CSRF rules on the admin listener itself (no PostgreSQL):
 * login through the admin authenticator, the cookie as an API credential, the CSRF token and
 * Origin checks, idle expiry, the TLS cookie (`Secure`, `__Host-`), the stats stream and its end
 * at logout, and Basic requests from another origin.
 */
import https from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildAdmin } from '../../src/admin/server.js';
import { createAdminAuthenticator } from '../../src/admin/auth.js';
import { parseConfig } from '../../src/config/load.js';
import type { WardenConfig } from '../../src/config/types.js';
import { ConsoleSessions } from '../../src/console/sessions.js';
import { consoleGroups } from '../../src/console/access.js';
import { makeTestCerts } from '../helpers/certs.js';

const YAML = (extra = ''): string => `version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  app: { upstream: "postgres://u:p@127.0.0.1:1/app" }
identities:
  - { name: olga, kind: human, groups: [ops], password: olga-pw }
  - { name: ivan, kind: human, groups: [interns], password: ivan-pw }
  - { name: dora, kind: human, groups: [dba], password: dora-pw }
admin: { host: 127.0.0.1, port: 0, operators: [ops]${extra} }
rules:
  - { name: r, match: { tables: ["t.*"] }, action: approve, approvers: { groups: [dba], count: 1 } }
`;

const SOURCES = { sessions: () => 0, statements: () => ({ decided: 0, refused: 0 }), analysisCache: () => ({ hits: 0, misses: 0, size: 0 }) };

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function build(config: WardenConfig, tls?: { cert: Buffer; key: Buffer }): FastifyInstance {
  app = buildAdmin(SOURCES, { auth: createAdminAuthenticator(config.identities), config: () => config }, tls);
  return app;
}

async function login(a: FastifyInstance, name: string, password: string, origin = 'http://localhost:80'): Promise<{ status: number; cookie?: string; setCookie?: string; csrf?: string; body: Record<string, unknown> }> {
  const r = await a.inject({ method: 'POST', url: '/console/api/login', headers: { host: 'localhost:80', origin, 'content-type': 'application/json' }, payload: { name, password } });
  const setCookie = r.headers['set-cookie'] as string | undefined;
  const body = r.json() as Record<string, unknown>;
  return { status: r.statusCode, setCookie, cookie: setCookie?.split(';')[0], csrf: body.csrf as string | undefined, body };
}

describe('console sessions', () => {
  it('default console groups: operators, auditors and the approver groups', () => {
    const c = parseConfig(YAML(), '/tmp/w.yaml', {});
    expect(consoleGroups(c)).toEqual(['ops', 'dba']);
    expect(consoleGroups(parseConfig(YAML(', console: { groups: [ops] }'), '/tmp/w.yaml', {}))).toEqual(['ops']);
    expect(() => parseConfig(YAML(', console: { groups: ops }'), '/tmp/w.yaml', {})).toThrow(/admin\.console\.groups/);
    expect(() => parseConfig(YAML(', console: { idle_timeout: soon }'), '/tmp/w.yaml', {})).toThrow(/idle_timeout/);
  });

  it('login sets an opaque HttpOnly SameSite=Strict cookie that the API accepts; CSRF and Origin guard state changes', async () => {
    const a = build(parseConfig(YAML(), '/tmp/w.yaml', {}));
    expect((await login(a, 'olga', 'wrong')).status).toBe(401);
    const refused = await login(a, 'ivan', 'ivan-pw');
    expect(refused.status).toBe(403);
    expect(refused.setCookie).toBeUndefined();
    const ok = await login(a, 'olga', 'olga-pw');
    expect(ok.status).toBe(200);
    expect(ok.setCookie).toMatch(/^warden_console=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict$/);
    const who = await a.inject({ method: 'GET', url: '/api/v1/whoami', headers: { cookie: ok.cookie! } });
    expect(who.json()).toMatchObject({ name: 'olga' });
    expect(who.headers['cache-control']).toBe('no-store');
    const post = (headers: Record<string, string>) => a.inject({ method: 'POST', url: '/api/v1/policy/explain', headers: { host: 'localhost:80', cookie: ok.cookie!, 'content-type': 'application/json', ...headers }, payload: {} });
    expect((await post({ origin: 'http://localhost:80' })).json().error).toMatch(/CSRF check failed/);
    expect((await post({ origin: 'http://localhost:80', 'x-warden-csrf': 'x'.repeat(43) })).json().error).toMatch(/CSRF check failed/);
    expect((await post({ 'x-warden-csrf': ok.csrf! })).json().error).toMatch(/no Origin header/);
    expect((await post({ 'x-warden-csrf': ok.csrf!, origin: 'http://evil.example' })).json().error).toMatch(/cross-origin request refused/);
    expect((await post({ 'x-warden-csrf': ok.csrf!, origin: 'http://localhost:80', 'sec-fetch-site': 'cross-site' })).json().error).toMatch(/cross-site request refused/);
    // Through: the route itself answers (no SQL given).
    const through = await post({ 'x-warden-csrf': ok.csrf!, origin: 'http://localhost:80' });
    expect(through.statusCode).toBe(400);
    expect(through.json().error).toMatch(/^sql: required/);
    // Logout ends it.
    const out = await a.inject({ method: 'POST', url: '/console/api/logout', headers: { host: 'localhost:80', origin: 'http://localhost:80', cookie: ok.cookie!, 'x-warden-csrf': ok.csrf! } });
    expect(out.headers['set-cookie']).toMatch(/^warden_console=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict$/);
    expect((await a.inject({ method: 'GET', url: '/api/v1/whoami', headers: { cookie: ok.cookie! } })).statusCode).toBe(401);
  });

  it('a Basic-authenticated state change from another origin is refused (a browser may have cached the credentials)', async () => {
    const a = build(parseConfig(YAML(), '/tmp/w.yaml', {}));
    const basic = `Basic ${Buffer.from('olga:olga-pw').toString('base64')}`;
    const r = await a.inject({ method: 'POST', url: '/api/v1/policy/explain', headers: { host: 'localhost:80', authorization: basic, origin: 'http://evil.example', 'content-type': 'text/plain' }, payload: 'x' });
    expect(r.statusCode).toBe(403);
    expect(r.json().error).toMatch(/cross-origin request refused/);
    // The CLI sends no Origin: unchanged.
    expect((await a.inject({ method: 'GET', url: '/api/v1/whoami', headers: { authorization: basic } })).statusCode).toBe(200);
    // The console's read routes are for the console's groups, operators and auditors.
    const ivan = `Basic ${Buffer.from('ivan:ivan-pw').toString('base64')}`;
    for (const url of ['/api/v1/stats', '/api/v1/policy']) {
      const r = await a.inject({ method: 'GET', url, headers: { authorization: ivan } });
      expect(r.statusCode, url).toBe(403);
      expect(r.json().error).toMatch(/admin\.console\.groups, admin\.operators or admin\.auditors/);
      expect((await a.inject({ method: 'GET', url, headers: { authorization: basic } })).statusCode, url).toBe(200);
    }
    // The policy view carries no secret.
    const policy = JSON.stringify((await a.inject({ method: 'GET', url: '/api/v1/policy', headers: { authorization: basic } })).json());
    expect(policy).not.toMatch(/olga-pw|:p@|password|scram/i);
  });

  it('the page is served with a strict CSP; asset names cannot leave the folder', async () => {
    const a = build(parseConfig(YAML(), '/tmp/w.yaml', {}));
    const page = await a.inject({ method: 'GET', url: '/console/' });
    expect([200, 503]).toContain(page.statusCode);
    expect(page.headers['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'.*frame-ancestors 'none'/);
    expect(page.headers['x-frame-options']).toBe('DENY');
    for (const u of ['/console/assets/..%2Fpackage.json', '/console/assets/.env', '/console/assets/app.ts']) expect((await a.inject({ method: 'GET', url: u })).statusCode).toBe(404);
  });

  it('over TLS the cookie is Secure and __Host- prefixed', async () => {
    const certs = await makeTestCerts();
    const fs = await import('node:fs');
    const a = build(parseConfig(YAML(), '/tmp/w.yaml', {}), { cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) });
    const ok = await login(a, 'olga', 'olga-pw', 'https://localhost:80');
    expect(ok.setCookie).toMatch(/^__Host-warden_console=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict; Secure$/);
    // The plain-HTTP name is not accepted over TLS.
    expect((await a.inject({ method: 'GET', url: '/api/v1/whoami', headers: { cookie: ok.cookie!.replace('__Host-', '') } })).statusCode).toBe(401);
    expect((await a.inject({ method: 'GET', url: '/api/v1/whoami', headers: { cookie: ok.cookie! } })).statusCode).toBe(200);
    void https;
  });

  it('behind a TLS-terminating proxy: admin.console.origin is the origin checked, and the cookie is Secure', async () => {
    const a = build(parseConfig(YAML(', console: { origin: "https://warden.example.com" }'), '/tmp/w.yaml', {}));
    expect((await login(a, 'olga', 'olga-pw')).status).toBe(403); // http://localhost:80 is not the configured origin
    const ok = await login(a, 'olga', 'olga-pw', 'https://warden.example.com');
    expect(ok.setCookie).toMatch(/^__Host-warden_console=[A-Za-z0-9_-]{43}; .*; Secure$/);
    const r = await a.inject({ method: 'POST', url: '/api/v1/policy/explain', headers: { host: 'localhost:80', origin: 'https://warden.example.com', cookie: ok.cookie!, 'x-warden-csrf': ok.csrf!, 'content-type': 'application/json' }, payload: {} });
    expect(r.statusCode).toBe(400);
    expect(() => parseConfig(YAML(', console: { origin: "https://x.example/path" }'), '/tmp/w.yaml', {})).toThrow(/admin\.console\.origin/);
  });

  it('OIDC: a token from the issuer logs in over HTTPS (groups from its claims); no token over HTTP, no delegated token, no foreign group', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const jose = await import('jose');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-console-oidc-'));
    const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
    fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
    const token = (claims: Record<string, unknown>, expS = 600): Promise<string> =>
      new jose.SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://idp.test/').setAudience('warden').setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + expS).sign(privateKey);
    const yaml = `${YAML()}oidc:\n  issuer: https://idp.test/\n  audience: warden\n  jwks: ${path.join(dir, 'jwks.json')}\n  claims: { name: preferred_username, groups: groups }\n`;
    const certs = await makeTestCerts();
    const tokenLogin = async (a: FastifyInstance, t: string, origin: string) =>
      a.inject({ method: 'POST', url: '/console/api/login', headers: { host: 'localhost:80', origin, 'content-type': 'application/json' }, payload: { token: t } });
    const good = await token({ sub: 'u1', preferred_username: 'sso-sam', groups: ['ops'] });
    // Over plain HTTP a bearer token is refused.
    const plain = build(parseConfig(yaml, '/tmp/w.yaml', {}));
    expect((await tokenLogin(plain, good, 'http://localhost:80')).json().error).toMatch(/needs the console over HTTPS/);
    await plain.close();
    const a = build(parseConfig(yaml, '/tmp/w.yaml', {}), { cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) });
    const opts = await a.inject({ method: 'GET', url: '/console/api/login-options' });
    expect(opts.json()).toEqual({ password: true, oidc: { issuer: 'https://idp.test/', available: true } });
    const ok = await tokenLogin(a, good, 'https://localhost:80');
    expect(ok.statusCode).toBe(200);
    const cookie = (ok.headers['set-cookie'] as string).split(';')[0]!;
    expect(ok.headers['set-cookie']).toMatch(/^__Host-warden_console=.*; Max-Age=(5\d\d|600); HttpOnly; SameSite=Strict; Secure$/); // ends with the token
    const me = await a.inject({ method: 'GET', url: '/console/api/session', headers: { cookie } });
    expect(me.json()).toMatchObject({ identity: 'sso-sam', groups: ['ops'], can: { operate: true, audit: false } });
    expect((await a.inject({ method: 'GET', url: '/api/v1/whoami', headers: { cookie } })).json()).toMatchObject({ name: 'sso-sam', groups: ['ops'] });
    // Not a console group; a delegated token; a token from another key.
    expect((await tokenLogin(a, await token({ sub: 'u2', preferred_username: 'sso-ivy', groups: ['interns'] }), 'https://localhost:80')).statusCode).toBe(403);
    const act = await tokenLogin(a, await token({ sub: 'u3', preferred_username: 'sso-bot', groups: ['ops'], act: { sub: 'bot' } }), 'https://localhost:80');
    expect(act.statusCode).toBe(403);
    expect(act.json().error).toMatch(/delegated token .* may not log in to the console/);
    const other = await jose.generateKeyPair('ES256');
    const forged = await new jose.SignJWT({ preferred_username: 'sso-sam', groups: ['ops'] }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://idp.test/').setAudience('warden').setExpirationTime('10m').sign(other.privateKey);
    const bad = await tokenLogin(a, forged, 'https://localhost:80');
    expect(bad.statusCode).toBe(401);
    expect(bad.json().error).toMatch(/^OIDC token refused/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('idle and absolute expiry', () => {
    let now = 1_000_000;
    const s = new ConsoleSessions({ idleTimeoutMs: 1000, maxAgeMs: 5000, now: () => now });
    const { token } = s.create('olga');
    now += 900;
    expect(s.get(token)?.identity).toBe('olga');
    now += 900;
    expect(s.get(token)?.identity).toBe('olga');
    now += 1000;
    expect(s.get(token)).toBeUndefined();
    const b = s.create('olga');
    for (let i = 0; i < 6; i++) {
      now += 900;
      if (i < 5) expect(s.get(b.token)).toBeDefined();
    }
    expect(s.get(b.token)).toBeUndefined();
    expect(s.get('not-a-token')).toBeUndefined();
  });

  it('the stats stream sends an event every interval and ends at logout', async () => {
    const a = build(parseConfig(YAML(), '/tmp/w.yaml', {}));
    await a.listen({ host: '127.0.0.1', port: 0 });
    const port = (a.server.address() as { port: number }).port;
    const base = `http://127.0.0.1:${port}`;
    const res = await fetch(`${base}/console/api/login`, { method: 'POST', headers: { origin: base, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'olga', password: 'olga-pw' }) });
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    const { csrf } = (await res.json()) as { csrf: string };
    const stream = await fetch(`${base}/api/v1/stats/stream?interval=1`, { headers: { cookie } });
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = stream.body!.getReader();
    let text = '';
    const dec = new TextDecoder();
    while ((text.match(/event: stats/g) ?? []).length < 2) text += dec.decode((await reader.read()).value);
    const first = JSON.parse(/data: (.*)\n/.exec(text)![1]!) as { totals: Record<string, number>; per_second: Record<string, number>; sessions: number; top: unknown };
    expect(Object.keys(first.totals)).toEqual(['allowed', 'masked', 'refused', 'held', 'halted']);
    expect(first.top).toBeNull(); // no audit log here
    // At most 8 streams per identity: the 8th is taken, the 9th refused, and a closed one is given back.
    const more = await Promise.all(Array.from({ length: 7 }, () => fetch(`${base}/api/v1/stats/stream`, { headers: { cookie } })));
    expect(more.map((r) => r.status)).toEqual(Array(7).fill(200));
    expect((await fetch(`${base}/api/v1/stats/stream`, { headers: { cookie } })).status).toBe(429);
    await more[0]!.body!.cancel();
    await expect.poll(async () => {
      const r = await fetch(`${base}/api/v1/stats/stream`, { headers: { cookie } });
      if (r.status === 200) more[0] = r;
      return r.status;
    }).toBe(200);
    await fetch(`${base}/console/api/logout`, { method: 'POST', headers: { origin: base, cookie, 'x-warden-csrf': csrf } });
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      text += dec.decode(r.value);
    }
    expect(text).toMatch(/event: ended/);
  });
});
