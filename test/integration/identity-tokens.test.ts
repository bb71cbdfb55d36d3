/**
 * Identities beyond passwords: short-lived tokens (issue with the CLI, log in
 * with SCRAM, expire and revoke mid-session, on-behalf-of propagated) and OIDC
 * logins (a JWT as the password, over TLS only; `act` claims).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as jose from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, PASSWORDS, startCluster } from '../helpers/warden-env.js';
import { runCli } from '../helpers/warden-process.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { loadConfig } from '../../src/config/load.js';
import { startWarden, type Warden } from '../../src/app.js';
import { silentLogger } from '../../src/log/logger.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-tokens-'));
let cluster: PgCluster;
let certs: TestCerts;
let warden: Warden;
let configFile: string;
const ISSUER = 'https://idp.test/';
let signer: Parameters<jose.SignJWT['sign']>[0];

beforeAll(async () => {
  cluster = await startCluster();
  certs = await makeTestCerts();
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
  signer = privateKey;
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
  configFile = path.join(dir, 'warden.yaml');
  fs.writeFileSync(
    configFile,
    baseYaml(
      cluster.port,
      `state: { store: "sqlite:${path.join(dir, 'state.db')}" }
audit: { store: "sqlite:${path.join(dir, 'audit.db')}", instance: tokens-test }
oidc:
  issuer: ${ISSUER}
  audience: warden
  jwks: ./jwks.json
  claims: { name: preferred_username, groups: groups, kind: kind }
`,
    ).replace('listen: { host: 127.0.0.1, port: 0 }', `listen: { host: 127.0.0.1, port: 0, tls: { cert: ${certs.serverCert}, key: ${certs.serverKey} } }`),
  );
  warden = await startWarden({ config: loadConfig(configFile), log: silentLogger() });
});
afterAll(async () => {
  await warden?.close();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function issue(...args: string[]): Promise<{ id: string; token: string }> {
  const r = await runCli(['token', 'issue', '--config', configFile, ...args]);
  expect(r.code, r.err).toBe(0);
  const lines = r.out.trim().split('\n');
  const token = lines[lines.length - 1];
  expect(token).toMatch(/^wdt_[a-z2-7]{32}$/);
  const id = /token (tok_\w+)/.exec(r.err)![1];
  return { id, token };
}

const client = (user: string, password: string, ssl = false): pg.Client =>
  new pg.Client({ host: '127.0.0.1', port: warden.port, user, password, database: 'app', ssl: ssl ? { rejectUnauthorized: false } : false });

describe('tokens', () => {
  it('a token logs in as its identity with SCRAM (no TLS needed), the password still works, a wrong token does not', async () => {
    const { token } = await issue('--identity', 'alice', '--ttl', '1h');
    const c = client('alice', token);
    await c.connect();
    expect((await c.query("SELECT current_setting('warden.identity') AS who")).rows[0].who).toBe('alice');
    await c.end();
    const p = client('alice', PASSWORDS.alice);
    await p.connect();
    await p.end();
    const bad = client('alice', 'wdt_' + 'a'.repeat(32));
    await expect(bad.connect()).rejects.toMatchObject({ code: '28P01' });
    // Another identity cannot use it.
    await expect(client('bob', token).connect()).rejects.toMatchObject({ code: '28P01' });
    // Listing shows it without the secret or its verifier.
    const list = await runCli(['token', 'list', '--config', configFile, '--json']);
    expect(list.out).not.toContain(token);
    expect(list.out).not.toContain('SCRAM-SHA-256');
  });

  it('on-behalf-of is propagated upstream and recorded', async () => {
    const { token, id } = await issue('--identity', 'agent', '--ttl', '10m', '--on-behalf-of', 'alice');
    const c = client('agent', token);
    await c.connect();
    expect((await c.query("SELECT current_setting('warden.on_behalf_of') AS obo")).rows[0].obo).toBe('alice');
    await c.end();
    await new Promise((r) => setTimeout(r, 100));
    const store = await openSqliteStore(path.join(dir, 'audit.db'), { readOnly: true });
    const starts: unknown[] = [];
    for await (const r of store.query({ types: ['session.start'], identity: 'agent' })) starts.push(r.data);
    const issued: unknown[] = [];
    for await (const r of store.query({ types: ['token.issued'] })) issued.push(r.data);
    await store.close();
    expect(starts.at(-1)).toMatchObject({ auth: 'token', token: id, on_behalf_of: 'alice' });
    expect(issued).toContainEqual(expect.objectContaining({ token: id, identity: 'agent', on_behalf_of: 'alice' }));
  });

  it('an expired token ends its session at the next statement; a revoked one too', async () => {
    const short = await issue('--identity', 'alice', '--ttl', '2s');
    const c = client('alice', short.token);
    c.on('error', () => undefined);
    await c.connect();
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await new Promise((r) => setTimeout(r, 2_200));
    await expect(c.query('SELECT 2')).rejects.toMatchObject({ code: '28000', message: expect.stringMatching(/expired/) });
    await expect(client('alice', short.token).connect()).rejects.toMatchObject({ code: '28P01' });

    const long = await issue('--identity', 'alice', '--ttl', '1h');
    const d = client('alice', long.token);
    d.on('error', () => undefined);
    await d.connect();
    expect((await d.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    const rev = await runCli(['token', 'revoke', long.id, '--config', configFile]);
    expect(rev.code, rev.err).toBe(0);
    await new Promise((r) => setTimeout(r, 2_500));
    await expect(d.query('SELECT 2')).rejects.toMatchObject({ code: '28000', message: expect.stringMatching(/revoked/) });
    await expect(client('alice', long.token).connect()).rejects.toMatchObject({ code: '28P01' });
    const again = await runCli(['token', 'revoke', long.id, '--config', configFile]);
    expect(again.code).toBe(1);
  }, 20_000);
});

describe('OIDC', () => {
  const jwt = async (claims: Record<string, unknown>, o: { exp?: string; aud?: string; iss?: string } = {}): Promise<string> =>
    new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(o.iss ?? ISSUER)
      .setAudience(o.aud ?? 'warden')
      .setIssuedAt()
      .setExpirationTime(o.exp ?? '10m')
      .sign(signer);

  it('a JWT logs in over TLS as the identity its claims name, with its groups', async () => {
    const token = await jwt({ sub: 'u-1', preferred_username: 'carol', groups: ['analysts', 'oncall'], kind: 'human' });
    const c = client('carol', token, true);
    await c.connect();
    const r = await c.query("SELECT current_setting('warden.identity') AS who, current_setting('warden.groups') AS g");
    expect(r.rows[0]).toEqual({ who: 'carol', g: 'analysts,oncall' });
    await c.end();
  });

  it('an act claim: the agent logs in acting for the user, and both are seen', async () => {
    const token = await jwt({ sub: 'u-2', preferred_username: 'alice-sso', act: { sub: 'trainer-bot', kind: 'agent' } });
    const c = client('trainer-bot', token, true);
    await c.connect();
    const r = await c.query("SELECT current_setting('warden.identity') AS who, current_setting('warden.kind') AS kind, current_setting('warden.on_behalf_of') AS obo");
    expect(r.rows[0]).toEqual({ who: 'trainer-bot', kind: 'agent', obo: 'alice-sso' });
    await c.end();
  });

  it('refuses expired, wrong-audience, wrong-issuer and mismatched tokens; without TLS it says to use sslmode=require', async () => {
    for (const [token, user] of [
      [await jwt({ preferred_username: 'carol' }, { exp: '-1m' }), 'carol'],
      [await jwt({ preferred_username: 'carol' }, { aud: 'other' }), 'carol'],
      [await jwt({ preferred_username: 'carol' }, { iss: 'https://evil.test/' }), 'carol'],
      [await jwt({ preferred_username: 'carol' }), 'dave'],
      [`${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"preferred_username":"carol"}').toString('base64url')}.`, 'carol'],
    ] as const) {
      await expect(client(user, token, true).connect()).rejects.toMatchObject({ code: '28P01' });
    }
    const plain = client('carol', await jwt({ preferred_username: 'carol' }));
    const err = (await plain.connect().catch((e: pg.DatabaseError) => e)) as pg.DatabaseError;
    expect(err.code).toBe('28P01');
    expect(err.hint).toMatch(/sslmode=require/);
    // A configured identity still logs in with its password over TLS.
    const alice = client('alice', PASSWORDS.alice, true);
    await alice.connect();
    await alice.end();
  });
});
