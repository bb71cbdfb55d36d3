import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  SCRAM_AUTH_FAILED,
  ScramClientExchange,
  ScramServerExchange,
  certificateSignatureOid,
  formatScramVerifier,
  makeScramVerifier,
  md5PasswordResponse,
  mockScramVerifier,
  parseScramVerifier,
  saslprep,
  tlsServerEndPointHash,
  type ChannelBinding,
  type ScramVerifier,
} from '../../src/auth/index.js';

// ---------------------------------------------------------------------------
// node-postgres' SCRAM client, used as an independent implementation.
interface PgSession {
  mechanism: string;
  response: string;
}
interface PgStream {
  getPeerCertificate(): { raw: Buffer };
}
interface PgSasl {
  startSession(mechanisms: string[], stream?: PgStream): PgSession;
  continueSession(session: PgSession, password: string, serverData: string, stream?: PgStream): Promise<void>;
  finalizeSession(session: PgSession, serverData: string): void;
}
const require = createRequire(import.meta.url);
const pgSasl = require('pg/lib/crypto/sasl.js') as PgSasl;
const pgCert = require('pg/lib/crypto/cert-signatures.js') as {
  signatureAlgorithmHashFromCertificate(der: Buffer): string;
};

type Outcome = { ok: true } | { ok: false; error: string };

/** Run pg's client against our server. */
async function pgLogin(server: ScramServerExchange, password: string, stream?: PgStream): Promise<Outcome> {
  const session = pgSasl.startSession(server.mechanisms(), stream);
  const first = server.handleClientFirst(session.mechanism, Buffer.from(session.response, 'utf8'));
  if (!first.ok) return first;
  await pgSasl.continueSession(session, password, first.serverFirst.toString('utf8'), stream);
  const final = server.handleClientFinal(Buffer.from(session.response, 'utf8'));
  if (!final.ok) return final;
  pgSasl.finalizeSession(session, final.serverFinal.toString('utf8')); // throws on a bad server signature
  return { ok: true };
}

/** Run our client against our server; `offered` lets a test play a MITM that strips PLUS. */
function login(server: ScramServerExchange, client: ScramClientExchange, offered = server.mechanisms()): Outcome {
  const { mechanism, data } = client.clientFirst(offered);
  const first = server.handleClientFirst(mechanism, data);
  if (!first.ok) return first;
  const final = server.handleClientFinal(client.handleServerFirst(first.serverFirst));
  if (!final.ok) return final;
  client.handleServerFinal(final.serverFinal);
  return { ok: true };
}

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

// ---------------------------------------------------------------------------
// Certificates for channel binding, generated with the openssl CLI.
let certDir = '';
const certs: Record<string, Buffer> = {};

function makeCert(name: string, key: string, digest: string | null): void {
  const out = join(certDir, `${name}.der`);
  const args = ['req', '-x509', '-key', key, '-out', out, '-outform', 'DER', '-subj', `/CN=${name}`, '-days', '1'];
  if (digest) args.push(`-${digest}`);
  execFileSync('openssl', args, { stdio: 'pipe' });
  certs[name] = readFileSync(out);
}

function opensslFingerprint(name: string, digest: string): Buffer {
  const out = execFileSync('openssl', ['x509', '-inform', 'DER', '-in', join(certDir, `${name}.der`), '-noout', '-fingerprint', `-${digest}`]);
  const hex = out.toString().trim().split('=')[1];
  return Buffer.from(hex.replace(/:/g, ''), 'hex');
}

beforeAll(() => {
  certDir = mkdtempSync(join(tmpdir(), 'warden-auth-'));
  const rsa = join(certDir, 'rsa.pem');
  const ec = join(certDir, 'ec.pem');
  const ed = join(certDir, 'ed.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', rsa], { stdio: 'pipe' });
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ec], { stdio: 'pipe' });
  execFileSync('openssl', ['genpkey', '-algorithm', 'ED25519', '-out', ed], { stdio: 'pipe' });
  makeCert('rsa-sha256', rsa, 'sha256');
  makeCert('rsa-sha384', rsa, 'sha384');
  makeCert('rsa-sha512', rsa, 'sha512');
  makeCert('ec-sha256', ec, 'sha256');
  makeCert('ec-sha384', ec, 'sha384');
  makeCert('ec-sha512', ec, 'sha512');
  makeCert('ec-sha1', ec, 'sha1');
  makeCert('ed25519', ed, null);
});

afterAll(() => {
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

afterEach(() => {
  vi.restoreAllMocks();
});

function binding(name: string): ChannelBinding {
  return { type: 'tls-server-end-point', data: tlsServerEndPointHash(certs[name]) };
}

// ---------------------------------------------------------------------------
describe('SASLprep and verifiers match PostgreSQL', () => {
  it('applies RFC 4013 mapping + NFKC', () => {
    expect(saslprep('I\u00ADX')).toBe('IX'); // RFC 4013 §3 examples
    expect(saslprep('user')).toBe('user');
    expect(saslprep('\u00AA')).toBe('a');
    expect(saslprep('\u2168')).toBe('IX');
    expect(saslprep('a\u00A0b')).toBe('a b');
    expect(saslprep('\u0627\u0031')).toBeNull(); // bidi violation
  });

  it('keeps pure ASCII untouched, like PostgreSQL (even control characters)', () => {
    expect(saslprep('\u0007')).toBe('\u0007');
    expect(saslprep('')).toBe('');
  });

  // Captured from PostgreSQL 15 (`CREATE ROLE pNN PASSWORD E'...'`, then
  // pg_authid.rolpassword) run in single-user mode. `prepped` is what SASLprep
  // gives; null means PostgreSQL fell back to the raw password bytes.
  const PG_VERIFIERS: Array<[string, string, string | null, string]> = [
    ['p01', 'pencil', 'pencil', 'SCRAM-SHA-256$4096:T68V7P3UnPzQ45tCIItksg==$pzkZCTk6iRcTG3v+QvtLWfV/OsV5vCUmjduaXITVQfg=:GhhRloehDUFGV4wQD9Yp3+ph8jbreXVn2B+MKfEZ+wo='],
    ['p02', 'I\u00ADX', 'IX', 'SCRAM-SHA-256$4096:qpjB54zdYBbA1LVNn7iDQA==$02mnBCN6rYLYFc4LenqxDPQ+F5C0oFY0WES65U7TOUA=:v8NBDeVdhKo5Dknlld1As1CDXKPExhR6bzP6KKrAybk='],
    ['p03', '\u2168', 'IX', 'SCRAM-SHA-256$4096:Qbtl+kJ+dOIaWiB61o0gOg==$jzgmYDSxuoQRtbS/dSqRf0EDqX6xtnyG0dFHO6HpA/w=:uxTwZ4HNhtnhUjuQ//jk0vYlBC8+T4OaKeJkyfy5xsk='],
    ['p04', '\u00AA', 'a', 'SCRAM-SHA-256$4096:XE3efU/U69qd6l2iThgGGQ==$s4j4K+Ew3PnaqPAeVZC4GeBN0wf+hzo+Nd80Tgc/lYU=:h+fiDVwDZ8QO+ZHJppYMgSWyf64CvPI5q63LOPYnxWw='],
    ['p05', 'a\u00A0b', 'a b', 'SCRAM-SHA-256$4096:9lV+HPaOO6bmm3CUmrWYmQ==$pHM9pEE8cjFmRAs7vi3QpzuedKuJJhNkDbvHKDhIxc8=:rG1DqyF+qTHWamaP+88EB145JaemX8mdnbQVVtwbBbs='],
    ['p06', '\u0007', '\u0007', 'SCRAM-SHA-256$4096:mAaOrKULHHHXA0xS8RMemw==$mlTN3rrHi8usKTbDJpfaEII64e1Srz06peFhjP1f2YQ=:M4gwYmE6t+H6x5qmCiUK14KjOIkH5D1FvjN2ePhfn9o='],
    ['p07', 'a\u0007\u2168', null, 'SCRAM-SHA-256$4096:Vi8ova+56J8Rr5vH9iqGsg==$cC3btsEfbBCzJUIAC2CFhmVqUgyoJ8SGCTeJksD7Epk=:mTEmjLvo3Uce/nMlfrhDHK4OfL4aCiZViVndcOTZxdY='],
    ['p08', '\u0627\u0031', null, 'SCRAM-SHA-256$4096:iBMEDOZ72tdzLJx5uly9WA==$nybW6fJdLejOkiTUQ7xK3+4CNOKgmF+GJLeWp8q2cF8=:N1/tMWp7LukdTg1jZCWkVkhJ7iZdbjo8Eum85BRLK6k='],
    ['p09', '\u0627a\u0627', null, 'SCRAM-SHA-256$4096:+OePxBQS1eTFbZyzXQy+xA==$hjKvyGlY61WVq+4hA76BpQjviWPe4lddBdI/YRFuvhA=:h2obNiIYm63H7TgZaSQgUQREs8I3FzRElnD4YcP3AHM='],
    ['p10', '\u0627\u2168\u0628', null, 'SCRAM-SHA-256$4096:CGw1CRuuHbgVrDb6s6zDmA==$ldDJnTaTjAgdZV2pIBw0QuccXY0n6AWaUeb/KXB4UMI=:GpvIPo1fBUookUBsmE938Cqv8RZbKlQD6nuHBXZo0J0='],
    ['p11', '\u0627\u0628', '\u0627\u0628', 'SCRAM-SHA-256$4096:AQC8wmeIXr5yl85G7fCRaA==$DHqxXwiLNBxVp3+0sb/3RgHzrf64GzdKnWsBiIbeWwU=:dkZ4KfQv58EFYkHabdW3LIKaULbRASgjL7f/kVq2XqY='],
    ['p12', '\u0221\u2168', null, 'SCRAM-SHA-256$4096:ftgoUXS/Ial4nU9a8MnRaA==$8PvFoDf1zk+P7ePqi7dMuOtAB4rmDVDa7nMrJTZLsuU=:4/MSEXhVZ8vdqahdoRKl4W6XqrE1jxluykc5i3NG/jY='],
    ['p13', '\uFF50\uFF41\uFF53\uFF53', 'pass', 'SCRAM-SHA-256$4096:0wVkSoPJ4b9kjJqP/UgtDQ==$CDXm5NEkFyIVSkJ2w5slMB1e1dPdq3EbNygOFP+d80Q=:Nm1wWLlliIy/Dhr2hzGZ7nfke+to/FTMsuhcN0g5wkM='],
    ['p14', '\u00AD', null, 'SCRAM-SHA-256$4096:boXpA+LJ14i9LA7MNmqdvA==$9+Uisr27VRprfteC/eBqb1o9EWnZ5sVBhn1hxDOZP/M=:q47abN4XuKn/rcISQk9+1kS14RaA9zKdTeVDxQ3W/58='],
    ['p15', 'e\u0301', '\u00E9', 'SCRAM-SHA-256$4096:9PWPcP3bKDn2ITK/XcIO7w==$LG0bfqYUbkJwCXG2QPuYRxFOY2J4KLFnU8aYoExUh1A=:7qqdT76vO+PsjnuNSsbVlWWdya/24tSfTvpUXJn2iKY='],
    ['p16', '\uFB01', 'fi', 'SCRAM-SHA-256$4096:hrrCpTMmkf7j+3bpkxpj3Q==$om6vi9PwLYqFBFtM0VmvzqCBAzSQAeBXFRrPDqdOPfI=:z2TRXtSNC+1pKd0JH2SegUSSSNQvjOEK5fkz89+17ho='],
    ['p17', '\u{1F600}\u2168', null, 'SCRAM-SHA-256$4096://H6CpioMwy4r4UmitEPhg==$5kUgwlhiMZCI5nywKL5GPmJhGY9GB1kCfuBhrHyqiXs=:M4V9u+KDkFP8LqFKyrqym6K4cHFr8XPOEQSifcLqZUs='],
    ['p18', 'x\u200By', 'x y', 'SCRAM-SHA-256$4096:EGVIbX8DwAZTlc7fEKA/pw==$qkMx6cTbS5f7b2OzXWh9VXhohzNOVKjHxuB3jGsPkzw=:Rz9xCo69QC+nUaDQJRX9IqvWCf+rYtPvn4XeJFsii2A='],
    ['p19', '\uE000\u2168', null, 'SCRAM-SHA-256$4096:ww4MIGNhX/RRq1Fqo1Kq5A==$PQq2d7gauvIf0xYX/M7CSnp8tEtxDW9iHydb7VzCXNY=:1RZhc/mRqILgGk4PjPSWyL7oooTkzu2NjN9lGvcMwyY='],
    ['p20', '\u0627\u0660\u0628', '\u0627\u0660\u0628', 'SCRAM-SHA-256$4096:8dPI5eWHi9E2IRS/i28YNw==$aGLAEJbGT8RzIt4dHl2cNKr+MfwUVrRcU+LkIz+mRBw=:okUAKm8d9jT8MfQ/wMQ1ZUMwiXG23TsPfBopAMGYJLM='],
    ['p21', '\u05D0\uFB01\u05D1', null, 'SCRAM-SHA-256$4096:CX2PGk7TM7+PJKy08nNR5g==$fVeUEX1Msy7Ts5dP/tVrUtISx5n29TjUz4ng5ohTLJk=:4tpC4Wm9Usp95vTBwi4buFSuqYiZDuTZZ0Y7w9UgrTA='],
    ['p22', '\u2168\u0340', null, 'SCRAM-SHA-256$4096:+8A4cHm/H7oYcQPL1nDFPQ==$T8lQueME0BBoO6/ZnMkdh+FbPINHVmCc9rxVAzfKmiE=:UUiekUrL36EtQbE0gG4iuOB4CV2QnieU98cFDen+XUU='],
    ['p23', '\u1806\u2168', 'IX', 'SCRAM-SHA-256$4096:jw11lBKYHsMtRP/X05PU6w==$29fp1LIqZkGCaVNfDCTUdCQNybul0aBi/4N46hjOVeQ=:UhCIMTA6Axdgz1feEDTksrEri3LZzFThaIGcA9vVS28='],
    ['p24', '\u2168\u3000x', 'IX x', 'SCRAM-SHA-256$4096:q9PjOMNiUuK8cypx0V8Ovw==$aYKrQVc2yaMrcCC7TMs1xq98vxcf0vyn8N99C6PvCiI=:YeJQx16474BQbSKnAW9C/Porv/LNxdrfHEV/ogGfRAQ='],
    ['p25', '\u2168\u2028', null, 'SCRAM-SHA-256$4096:iQDbWQacoO8XaDCywpkg1w==$P1bojC+HyT76rE7wLB9Coo0/ufAXVkTipoXUypwLmJ4=:+TrZ83reIFimzdJ+vD+zxWfosQnEmXNQlLEN1ka7jkY='],
    ['p26', '\u2168\uFFFD', null, 'SCRAM-SHA-256$4096:h5wsLGk/iPOZS6WDV2Kxhw==$KCG/XVAFmZe1ME/fW60AiBDOO6/NbfSxfIg/R+GGBWU=:s6EZjhvCVhWzFpBbnK+dtaLMKeVyS+rFLYMN1+7VAAo='],
    ['p27', '\u2168\u00A8', 'IX \u0308', 'SCRAM-SHA-256$4096:ccwG0F1dBJemTJmQ73ypFQ==$+PsJzF/ok5MytHVi9w5JAr6zRKKU68neOivSuZmJSuo=:drmjpfAkV/ACzfTBbBY7WKHLUKXdpAInXy8iB9Rxzo8='],
    ['p28', '\u0BCC\u2168', '\u0BCCIX', 'SCRAM-SHA-256$4096:4Nfg76f5TklVEa8t5PUnVg==$Zngo837Ggvx4Aqojb0McN3Hm519rFxgLC0jsWjYSJ78=:VsOwl9wlAijnl7biZa9fseBYTk9xw6FD88kKvDv7g8M='],
  ];

  it.each(PG_VERIFIERS)('%s: makeScramVerifier is byte-identical to PostgreSQL', (_role, password, prepped, stored) => {
    expect(saslprep(password)).toBe(prepped);
    const parsed = parseScramVerifier(stored);
    expect(parsed).not.toBeNull();
    const { salt, iterations } = parsed as ScramVerifier;
    expect(formatScramVerifier(makeScramVerifier(password, { salt, iterations }))).toBe(stored);
  });

  it('parse/format round-trips and rejects malformed verifiers', () => {
    const stored = PG_VERIFIERS[0][3];
    const v = parseScramVerifier(stored) as ScramVerifier;
    expect(v.iterations).toBe(4096);
    expect(v.salt.length).toBe(16);
    expect(v.storedKey.length).toBe(32);
    expect(v.serverKey.length).toBe(32);
    expect(formatScramVerifier(v)).toBe(stored);
    const bad = [
      '',
      'md5d5f32d2e4b4b4d5ab2f0c6a5b5c6e8a1',
      stored.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'),
      stored.replace('$4096:', '$0:'),
      stored.replace('$4096:', '$-1:'),
      stored.replace('$4096:', '$abc:'),
      stored.replace('$4096:', '$99999999999:'),
      stored.replace('T68V7P3UnPzQ45tCIItksg==', ''),
      stored.replace('T68V7P3UnPzQ45tCIItksg==', 'T68V7P3UnPzQ45tCIItks*=='),
      stored.replace('T68V7P3UnPzQ45tCIItksg==', 'T68V7P3UnPzQ45tCIItksh=='), // non-canonical base64
      stored.replace('GhhRloehDUFGV4wQD9Yp3+ph8jbreXVn2B+MKfEZ+wo=', 'AAAA'), // short ServerKey
      stored.replace(':GhhR', ';GhhR'),
      `${stored}:extra`,
      ` ${stored}`,
    ];
    for (const s of bad) expect(parseScramVerifier(s), s).toBeNull();
  });

  it('makeScramVerifier defaults to 4096 iterations and a fresh 16-byte salt', () => {
    const a = makeScramVerifier('pw');
    const b2 = makeScramVerifier('pw');
    expect(a.iterations).toBe(4096);
    expect(a.salt.length).toBe(16);
    expect(a.salt.equals(b2.salt)).toBe(false);
    expect(parseScramVerifier(formatScramVerifier(a))).toEqual({ ...a });
    expect(() => makeScramVerifier('pw', { iterations: 0 })).toThrow(RangeError);
    expect(() => makeScramVerifier('pw', { iterations: 1.5 })).toThrow(RangeError);
    expect(() => makeScramVerifier('pw', { salt: Buffer.alloc(0) })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------
describe('mock verifier for unknown users', () => {
  const secret = Buffer.from('0123456789abcdef0123456789abcdef');

  it('is deterministic per user, different across users and secrets, shaped like a real one', () => {
    const a1 = mockScramVerifier('alice', secret);
    const a2 = mockScramVerifier('alice', secret);
    const bob = mockScramVerifier('bob', secret);
    const other = mockScramVerifier('alice', Buffer.from('another secret'));
    expect(formatScramVerifier(a1)).toBe(formatScramVerifier(a2));
    expect(a1.salt.equals(bob.salt)).toBe(false);
    expect(a1.storedKey.equals(bob.storedKey)).toBe(false);
    expect(a1.salt.equals(other.salt)).toBe(false);
    expect(a1.salt).toEqual(crypto.createHmac('sha256', secret).update('alice').digest().subarray(0, 16));
    const real = makeScramVerifier('x');
    expect(a1.iterations).toBe(real.iterations);
    expect(a1.salt.length).toBe(real.salt.length);
    expect(parseScramVerifier(formatScramVerifier(a1))).not.toBeNull();
  });

  it('an unknown user fails exactly like a wrong password (same messages)', () => {
    const nonceBytes = (): Buffer => Buffer.alloc(18, 7);
    const known = new ScramServerExchange({ verifier: makeScramVerifier('right'), nonceBytes });
    const unknown = new ScramServerExchange({ verifier: mockScramVerifier('ghost', secret), nonceBytes });
    const clientNonce = (): Buffer => Buffer.alloc(18, 9);
    const r1 = login(known, new ScramClientExchange({ password: 'wrong', nonceBytes: clientNonce }));
    const r2 = login(unknown, new ScramClientExchange({ password: 'wrong', nonceBytes: clientNonce }));
    expect(r1).toEqual({ ok: false, error: SCRAM_AUTH_FAILED });
    expect(r2).toEqual(r1);
    // Same server-first shape: r=<same length>,s=<24 base64 chars>,i=4096
    const shape = (s: ScramServerExchange): string => {
      const first = s.handleClientFirst('SCRAM-SHA-256', b('n,,n=,r=abc'));
      return first.ok ? first.serverFirst.toString().replace(/[A-Za-z0-9+/=]/g, 'x') : 'fail';
    };
    expect(shape(new ScramServerExchange({ verifier: mockScramVerifier('ghost', secret) }))).toBe(
      shape(new ScramServerExchange({ verifier: makeScramVerifier('right') })),
    );
  });

  it('a mock verifier never authenticates, even with matching keys', () => {
    const mock = mockScramVerifier('ghost', secret);
    const forged: ScramVerifier = { ...makeScramVerifier('guess', { salt: mock.salt }), doomed: true };
    const server = new ScramServerExchange({ verifier: forged });
    expect(login(server, new ScramClientExchange({ password: 'guess' }))).toEqual({ ok: false, error: SCRAM_AUTH_FAILED });
  });
});

// ---------------------------------------------------------------------------
describe('SCRAM client', () => {
  // RFC 7677 §3
  const RFC = {
    clientNonce: 'rOprNGfwEbeRWgbNEkqO',
    clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
    serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  };
  const rfcClient = (): ScramClientExchange =>
    new ScramClientExchange({ password: 'pencil', username: 'user', nonceBytes: () => Buffer.from(RFC.clientNonce, 'base64') });

  it('reproduces the RFC 7677 test vector', () => {
    const c = rfcClient();
    const first = c.clientFirst(['SCRAM-SHA-256']);
    expect(first.mechanism).toBe('SCRAM-SHA-256');
    expect(first.data.toString()).toBe(RFC.clientFirst);
    expect(c.handleServerFirst(b(RFC.serverFirst)).toString()).toBe(RFC.clientFinal);
    expect(() => c.handleServerFinal(b(RFC.serverFinal))).not.toThrow();
  });

  it('rejects a wrong server signature (MITM) and server errors', () => {
    const c = rfcClient();
    c.clientFirst(['SCRAM-SHA-256']);
    c.handleServerFirst(b(RFC.serverFirst));
    expect(() => c.handleServerFinal(b('v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='))).toThrow(/signature mismatch/);
    const c2 = rfcClient();
    c2.clientFirst(['SCRAM-SHA-256']);
    c2.handleServerFirst(b(RFC.serverFirst));
    expect(() => c2.handleServerFinal(b('e=invalid-proof'))).toThrow(/invalid-proof/);
  });

  it.each([
    ['iteration count 0', RFC.serverFirst.replace('i=4096', 'i=0'), /iteration count/],
    ['negative iteration count', RFC.serverFirst.replace('i=4096', 'i=-1'), /iteration count/],
    ['non-numeric iteration count', RFC.serverFirst.replace('i=4096', 'i=4k'), /iteration count/],
    ['huge iteration count', RFC.serverFirst.replace('i=4096', 'i=999999999'), /exceeds/],
    ['nonce not extending ours', RFC.serverFirst.replace('r=rOpr', 'r=XOpr'), /nonce/],
    ['nonce equal to ours', RFC.serverFirst.replace('%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0', ''), /nonce/],
    ['missing salt', 'r=rOprNGfwEbeRWgbNEkqO%hvYD,i=4096', /malformed/],
    ['bad salt', RFC.serverFirst.replace('s=W22Z', 's=*22Z'), /salt/],
    ['mandatory extension', `m=ext,${RFC.serverFirst}`, /extension/],
    ['garbage', '\u0001\u0002garbage', /malformed/],
  ])('handleServerFirst rejects %s', (_name, serverFirst, message) => {
    const c = rfcClient();
    c.clientFirst(['SCRAM-SHA-256']);
    expect(() => c.handleServerFirst(b(serverFirst))).toThrow(message);
  });

  it('rejects invalid UTF-8 / empty input and out-of-order calls', () => {
    const c = rfcClient();
    expect(() => c.handleServerFirst(b(RFC.serverFirst))).toThrow(/out of order/);
    const c2 = rfcClient();
    c2.clientFirst(['SCRAM-SHA-256']);
    expect(() => c2.handleServerFirst(Buffer.from([0xff, 0xfe]))).toThrow(/malformed/);
    const c3 = rfcClient();
    c3.clientFirst(['SCRAM-SHA-256']);
    expect(() => c3.handleServerFirst(Buffer.alloc(0))).toThrow(/malformed/);
  });

  it('chooses PLUS only when offered and channel binding is available', () => {
    const cb: ChannelBinding = { type: 'tls-server-end-point', data: Buffer.alloc(32, 1) };
    const both = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'];
    const plus = new ScramClientExchange({ password: 'x', channelBinding: cb }).clientFirst(both);
    expect(plus.mechanism).toBe('SCRAM-SHA-256-PLUS');
    expect(plus.data.toString()).toMatch(/^p=tls-server-end-point,,n=,r=/);
    const noCb = new ScramClientExchange({ password: 'x' }).clientFirst(both);
    expect(noCb.mechanism).toBe('SCRAM-SHA-256');
    expect(noCb.data.toString()).toMatch(/^n,,n=,r=/);
    const notOffered = new ScramClientExchange({ password: 'x', channelBinding: cb }).clientFirst(['SCRAM-SHA-256']);
    expect(notOffered.data.toString()).toMatch(/^y,,/);
    expect(() =>
      new ScramClientExchange({ password: 'x', channelBinding: cb, requireChannelBinding: true }).clientFirst(['SCRAM-SHA-256']),
    ).toThrow(/required/);
    expect(() => new ScramClientExchange({ password: 'x' }).clientFirst(['SCRAM-SHA-1'])).toThrow(/no supported/);
  });
});

// ---------------------------------------------------------------------------
describe('SCRAM server', () => {
  const verifier = makeScramVerifier('s3cret', { iterations: 4096 });

  it('offers PLUS only with channel binding data', () => {
    expect(new ScramServerExchange({ verifier }).mechanisms()).toEqual(['SCRAM-SHA-256']);
    expect(new ScramServerExchange({ verifier, channelBinding: binding('ec-sha256') }).mechanisms()).toEqual([
      'SCRAM-SHA-256-PLUS',
      'SCRAM-SHA-256',
    ]);
  });

  it('accepts node-postgres with the right password', async () => {
    await expect(pgLogin(new ScramServerExchange({ verifier }), 's3cret')).resolves.toEqual({ ok: true });
  });

  it('accepts node-postgres with a SASLprep-normalized password', async () => {
    const v = makeScramVerifier('\u2168 pass');
    await expect(pgLogin(new ScramServerExchange({ verifier: v }), 'IX pass')).resolves.toEqual({ ok: true });
  });

  it('rejects node-postgres with a wrong password', async () => {
    await expect(pgLogin(new ScramServerExchange({ verifier }), 'wrong')).resolves.toEqual({
      ok: false,
      error: SCRAM_AUTH_FAILED,
    });
  });

  it.each(['rsa-sha256', 'rsa-sha384', 'rsa-sha512', 'ec-sha384', 'ec-sha512', 'ec-sha1'])(
    'accepts node-postgres over SCRAM-SHA-256-PLUS (%s certificate)',
    async (name) => {
      const stream: PgStream = { getPeerCertificate: () => ({ raw: certs[name] }) };
      const server = new ScramServerExchange({ verifier, channelBinding: binding(name) });
      await expect(pgLogin(server, 's3cret', stream)).resolves.toEqual({ ok: true });
    },
  );

  it('rejects node-postgres over PLUS when the certificate differs (wrong binding data)', async () => {
    const stream: PgStream = { getPeerCertificate: () => ({ raw: certs['ec-sha256'] }) };
    const server = new ScramServerExchange({ verifier, channelBinding: binding('ec-sha384') });
    const result = await pgLogin(server, 's3cret', stream);
    expect(result).toEqual({ ok: false, error: 'SCRAM channel binding check failed' });
  });

  it('accepts node-postgres "y,," (TLS client) when PLUS is not offered', async () => {
    const stream: PgStream = { getPeerCertificate: () => ({ raw: certs['ec-sha256'] }) };
    await expect(pgLogin(new ScramServerExchange({ verifier }), 's3cret', stream)).resolves.toEqual({ ok: true });
  });

  it('works with our own client, with and without channel binding', () => {
    expect(login(new ScramServerExchange({ verifier }), new ScramClientExchange({ password: 's3cret' }))).toEqual({ ok: true });
    const cb = binding('rsa-sha256');
    const server = new ScramServerExchange({ verifier, channelBinding: cb });
    const client = new ScramClientExchange({ password: 's3cret', channelBinding: cb, requireChannelBinding: true });
    expect(login(server, client)).toEqual({ ok: true });
    expect(login(new ScramServerExchange({ verifier }), new ScramClientExchange({ password: 'nope' }))).toEqual({
      ok: false,
      error: SCRAM_AUTH_FAILED,
    });
  });

  it('our client detects a server that does not know the verifier', () => {
    // A MITM that learned the salt/iterations but not ServerKey.
    const fake: ScramVerifier = { ...verifier, serverKey: Buffer.alloc(32) };
    const client = new ScramClientExchange({ password: 's3cret' });
    expect(() => login(new ScramServerExchange({ verifier: fake }), client)).toThrow(/signature mismatch/);
  });

  it('fails a downgrade: client sends "y,," while we offered PLUS', () => {
    const cb = binding('ec-sha256');
    const server = new ScramServerExchange({ verifier, channelBinding: cb });
    const client = new ScramClientExchange({ password: 's3cret', channelBinding: cb });
    // A MITM stripped SCRAM-SHA-256-PLUS from the list the client saw.
    const result = login(server, client, ['SCRAM-SHA-256']);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error).toMatch(/downgrade/);
  });

  it('fails when the client binds to a different certificate', () => {
    const server = new ScramServerExchange({ verifier, channelBinding: binding('ec-sha256') });
    const client = new ScramClientExchange({ password: 's3cret', channelBinding: binding('ec-sha512') });
    expect(login(server, client)).toEqual({ ok: false, error: 'SCRAM channel binding check failed' });
  });

  it.each([
    ['p= with plain mechanism', 'SCRAM-SHA-256', 'p=tls-server-end-point,,n=,r=abc', true],
    ['n,, with PLUS mechanism', 'SCRAM-SHA-256-PLUS', 'n,,n=,r=abc', true],
    ['y,, with PLUS mechanism', 'SCRAM-SHA-256-PLUS', 'y,,n=,r=abc', true],
    ['unsupported binding type', 'SCRAM-SHA-256-PLUS', 'p=tls-unique,,n=,r=abc', true],
    ['PLUS when not offered', 'SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=,r=abc', false],
    ['unknown mechanism', 'SCRAM-SHA-1', 'n,,n=,r=abc', false],
    ['authzid', 'SCRAM-SHA-256', 'n,a=admin,n=,r=abc', false],
    ['empty authzid', 'SCRAM-SHA-256', 'n,a=,n=,r=abc', false],
    ['mandatory extension', 'SCRAM-SHA-256', 'n,,m=ext,n=,r=abc', false],
    ['missing username', 'SCRAM-SHA-256', 'n,,r=abc', false],
    ['missing nonce', 'SCRAM-SHA-256', 'n,,n=user', false],
    ['empty nonce', 'SCRAM-SHA-256', 'n,,n=user,r=', false],
    ['non-printable nonce', 'SCRAM-SHA-256', 'n,,n=user,r=a\u00e9', false],
    ['bad flag', 'SCRAM-SHA-256', 'x,,n=,r=abc', false],
    ['no gs2 header', 'SCRAM-SHA-256', 'n=,r=abc', false],
    ['truncated gs2 header', 'SCRAM-SHA-256', 'n', false],
    ['attribute without value', 'SCRAM-SHA-256', 'n,,n,r=abc', false],
    ['embedded NUL', 'SCRAM-SHA-256', 'n,,n=,r=abc\u0000', false],
    ['empty message', 'SCRAM-SHA-256', '', false],
  ])('rejects client-first: %s', (_name, mechanism, message, withBinding) => {
    const server = new ScramServerExchange({ verifier, channelBinding: withBinding ? binding('ec-sha256') : undefined });
    const result = server.handleClientFirst(mechanism, b(message));
    expect(result.ok).toBe(false);
    // and the exchange is dead afterwards
    expect(server.handleClientFinal(b('c=biws,r=abc,p=AAAA')).ok).toBe(false);
  });

  it('ignores the username and optional extensions in client-first', () => {
    const server = new ScramServerExchange({ verifier });
    const r = server.handleClientFirst('SCRAM-SHA-256', b('n,,n=someone=2Celse,r=abc,x=ext'));
    expect(r.ok && r.serverFirst.toString()).toMatch(/^r=abc[A-Za-z0-9+/=]{24},s=[A-Za-z0-9+/=]{24},i=4096$/);
  });

  describe('client-final validation', () => {
    const start = (): { server: ScramServerExchange; nonce: string } => {
      const server = new ScramServerExchange({ verifier, nonceBytes: () => Buffer.alloc(18, 1) });
      const first = server.handleClientFirst('SCRAM-SHA-256', b('n,,n=,r=clientnonce'));
      if (!first.ok) throw new Error(first.error);
      return { server, nonce: /r=([^,]+)/.exec(first.serverFirst.toString())?.[1] ?? '' };
    };
    const proof = Buffer.alloc(32, 5).toString('base64');

    it.each([
      ['wrong nonce', (n: string) => `c=biws,r=${n}x,p=${proof}`, /nonce/],
      ['client nonce only', () => `c=biws,r=clientnonce,p=${proof}`, /nonce/],
      ['wrong binding flag (y,, after n,,)', (n: string) => `c=eSws,r=${n},p=${proof}`, /channel binding/],
      ['binding data where none was negotiated', (n: string) => `c=${Buffer.from('n,,abc').toString('base64')},r=${n},p=${proof}`, /channel binding/],
      ['missing c', (n: string) => `r=${n},p=${proof}`, /malformed/],
      ['missing r', () => `c=biws,p=${proof}`, /malformed/],
      ['missing p', (n: string) => `c=biws,r=${n}`, /malformed/],
      ['attribute after p', (n: string) => `c=biws,r=${n},p=${proof},x=1`, /malformed/],
      ['two proofs', (n: string) => `c=biws,r=${n},p=${proof},p=${proof}`, /malformed/],
      ['short proof', (n: string) => `c=biws,r=${n},p=AAAA`, /proof/],
      ['non-base64 proof', (n: string) => `c=biws,r=${n},p=${proof.replace(/^./, '*')}`, /proof/],
      ['wrong proof', (n: string) => `c=biws,r=${n},p=${proof}`, /password authentication failed/],
      ['wrong proof with extension', (n: string) => `c=biws,r=${n},x=y,p=${proof}`, /password authentication failed/],
    ])('rejects %s', (_name, build, message) => {
      const { server, nonce } = start();
      const result = server.handleClientFinal(b(build(nonce)));
      expect(result.ok).toBe(false);
      expect(!result.ok && result.error).toMatch(message);
    });

    it('rejects messages out of order', () => {
      const fresh = new ScramServerExchange({ verifier });
      expect(fresh.handleClientFinal(b(`c=biws,r=x,p=${proof}`)).ok).toBe(false);
      const { server } = start();
      expect(server.handleClientFirst('SCRAM-SHA-256', b('n,,n=,r=abc')).ok).toBe(false);
    });
  });

  it('never throws on random bytes, at any step', () => {
    const seeded = crypto.createHash('sha256');
    let counter = 0;
    const rand = (n: number): Buffer => {
      const out = Buffer.alloc(n);
      for (let i = 0; i < n; i += 32) {
        seeded.copy().update(String(counter++)).digest().copy(out, i);
      }
      return out;
    };
    for (let i = 0; i < 300; i++) {
      const s1 = new ScramServerExchange({ verifier });
      const mech = i % 3 === 0 ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256';
      const junk = rand(1 + (i % 97));
      expect(() => s1.handleClientFirst(mech, junk)).not.toThrow();
      expect(s1.handleClientFirst(mech, junk).ok).toBe(false);

      const s2 = new ScramServerExchange({ verifier });
      expect(s2.handleClientFirst('SCRAM-SHA-256', b('n,,n=,r=abc')).ok).toBe(true);
      const tail = i % 2 === 0 ? junk : b(`c=biws,r=${junk.toString('latin1')},p=${junk.toString('base64')}`);
      let result: { ok: boolean } = { ok: true };
      expect(() => {
        result = s2.handleClientFinal(tail);
      }).not.toThrow();
      expect(result.ok).toBe(false);
    }
    // Not even with non-Buffer garbage from a confused caller.
    const s3 = new ScramServerExchange({ verifier });
    expect(s3.handleClientFirst('SCRAM-SHA-256', 'n,,n=,r=abc' as unknown as Buffer).ok).toBe(false);
  });

  it('compares the proof with crypto.timingSafeEqual against StoredKey', () => {
    const spy = vi.spyOn(crypto, 'timingSafeEqual');
    expect(login(new ScramServerExchange({ verifier }), new ScramClientExchange({ password: 'wrong' })).ok).toBe(false);
    expect(spy).toHaveBeenCalledTimes(1);
    const [, expected] = spy.mock.calls[0];
    expect(Buffer.from(expected as Uint8Array).equals(verifier.storedKey)).toBe(true);
    spy.mockClear();
    expect(login(new ScramServerExchange({ verifier }), new ScramClientExchange({ password: 's3cret' })).ok).toBe(true);
    expect(spy).toHaveBeenCalledTimes(2); // server: proof; client: server signature
  });
});

// ---------------------------------------------------------------------------
describe('tls-server-end-point', () => {
  it.each([
    ['rsa-sha256', '1.2.840.113549.1.1.11', 'sha256', 'SHA-256'],
    ['rsa-sha384', '1.2.840.113549.1.1.12', 'sha384', 'SHA-384'],
    ['rsa-sha512', '1.2.840.113549.1.1.13', 'sha512', 'SHA-512'],
    ['ec-sha256', '1.2.840.10045.4.3.2', 'sha256', 'SHA-256'],
    ['ec-sha384', '1.2.840.10045.4.3.3', 'sha384', 'SHA-384'],
    ['ec-sha512', '1.2.840.10045.4.3.4', 'sha512', 'SHA-512'],
    ['ec-sha1', '1.2.840.10045.4.1', 'sha256', 'SHA-1'],
  ])('%s: hashes the DER with the signature hash (md5/sha1 -> sha256)', (name, oid, digest, pgName) => {
    const der = certs[name];
    expect(certificateSignatureOid(der)).toBe(oid);
    expect(pgCert.signatureAlgorithmHashFromCertificate(der)).toBe(pgName);
    const hash = tlsServerEndPointHash(der);
    expect(hash).toEqual(opensslFingerprint(name, digest));
    expect(hash).toEqual(crypto.createHash(digest).update(der).digest());
  });

  it('rejects certificates without a single signature hash and non-certificates', () => {
    expect(() => tlsServerEndPointHash(certs['ed25519'])).toThrow(/unsupported certificate signature algorithm 1\.3\.101\.112/);
    expect(() => tlsServerEndPointHash(Buffer.from('not a certificate'))).toThrow();
    expect(() => tlsServerEndPointHash(certs['ec-sha256'].subarray(0, 100))).toThrow();
  });
});

// ---------------------------------------------------------------------------
describe('md5 password response', () => {
  it('matches an independent computation (postgres / secret / [1,2,3,4])', () => {
    const salt = Buffer.from([1, 2, 3, 4]);
    const inner = crypto.createHash('md5').update('secretpostgres').digest('hex');
    const outer = crypto.createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
    const response = md5PasswordResponse('postgres', 'secret', salt);
    expect(response.toString('ascii')).toBe(`md5${outer}`);
    expect(response.length).toBe(35); // no trailing NUL: the wire encoder adds it
    expect(response.includes(0)).toBe(false);
    expect(() => md5PasswordResponse('postgres', 'secret', Buffer.from([1, 2, 3]))).toThrow(RangeError);
  });
});
