/** The `warden` CLI as a user runs it: exit codes, one-line errors, --json, logs without secrets. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { runCli, startWardenProcess, writeTempConfig } from '../helpers/warden-process.js';
import { baseYaml, PASSWORDS, SVC_PASSWORD, startCluster } from '../helpers/warden-env.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';

const minimal = (extra = '') => `version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  app:
    upstream: postgres://svc:\${APP_DB_PASSWORD}@127.0.0.1:5432/app
identities:
  - name: alice
    password: \${ALICE_PASSWORD}
${extra}`;

const ENV = { APP_DB_PASSWORD: 'top-secret-db-pw', ALICE_PASSWORD: 'alice-secret-pw' };

describe('start --port / --admin-port', () => {
  it('refuse a bad port, and an admin port when the config has no admin section, with exit code 2', async () => {
    const file = writeTempConfig(minimal());
    const bad = await runCli(['start', '--config', file, '--port', 'http'], ENV);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--port.*a port is an integer from 0 to 65535/);
    const noAdmin = await runCli(['start', '--config', file, '--admin-port', '7071'], ENV);
    expect(noAdmin.code).toBe(2);
    expect(noAdmin.err).toMatch(/--admin-port: .* has no admin section/);
  });
});

describe('configuration errors', () => {
  const cases: [string, string, RegExp][] = [
    ['unknown top-level key', minimal('colour: blue'), /: colour: unknown key/],
    ['unknown nested key', minimal().replace('port: 0', 'prot: 0'), /: listen\.prot: unknown key/],
    ['missing env var', minimal().replace('${ALICE_PASSWORD}', '${NOT_SET_ANYWHERE}'), /identities\[0\]\.password: .*NOT_SET_ANYWHERE/],
    ['bad url', minimal().replace('postgres://svc:${APP_DB_PASSWORD}@127.0.0.1:5432/app', 'http://nope'), /databases\.app\.upstream: /],
    ['bad port', minimal().replace('port: 0', 'port: 99999'), /listen\.port: /],
  ];
  for (const [name, yaml, expected] of cases) {
    it(`${name}: one line naming file and key, exit code 2, before listening`, async () => {
      const file = writeTempConfig(yaml);
      const r = await runCli(['start', '--config', file], ENV);
      expect(r.code).toBe(2);
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(file);
      expect(lines[0]).toMatch(expected);
      expect(r.err).not.toContain(ENV.APP_DB_PASSWORD);
      expect(r.err).not.toContain(ENV.ALICE_PASSWORD);
    });
  }

  it('a missing config file is a clear error with exit code 2', async () => {
    const r = await runCli(['start', '--config', '/nonexistent/warden.yaml']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/\/nonexistent\/warden\.yaml: configuration file not found/);
  });

  it('no --config and no ./warden.yaml explains what to do', async () => {
    const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'warden-empty-'));
    const r = await runCli(['config', 'check'], {}, dir);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/warden\.yaml does not exist/);
  });

  it('an audit store that cannot be opened refuses to start (nothing would be recorded)', async () => {
    const file = writeTempConfig(minimal('audit:\n  store: jsonl:/nonexistent-dir-for-warden/audit.jsonl\n'));
    const r = await runCli(['start', '--config', file], ENV);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/audit: .*nonexistent-dir-for-warden/);
  });

  it('an audit signing key that is not Ed25519 refuses to start', async () => {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'warden-key-'));
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    fs.writeFileSync(path.join(dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const file = writeTempConfig(minimal(`audit:\n  store: jsonl:${dir}/a.jsonl\n  signing_key: ${dir}/k.pem\n`));
    const r = await runCli(['start', '--config', file], ENV);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/signing_key: .*k\.pem is a rsa key; an Ed25519 key is required/);
  });
});

describe('init', () => {
  it('writes a commented starter config that checks out, and never overwrites or embeds a password', async () => {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'warden-init-'));
    const file = path.join(dir, 'warden.yaml');
    const r = await runCli(['init', '--output', file, '--database', 'shop', '--environment', 'staging']);
    expect(r.code, r.err).toBe(0);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toMatch(/^# Warden configuration/);
    expect(text).toContain('  shop:');
    const env = { APP_DB_PASSWORD: 'x', ALICE_PASSWORD: 'a', DANA_PASSWORD: 'd', WARDEN_MASK_KEY: '0123456789abcdef0' };
    const check = await runCli(['config', 'check', '--config', file, '--json'], env);
    expect(check.code, check.err).toBe(0);
    const again = await runCli(['init', '--output', file]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/exists; pass --force/);
    const secret = await runCli(['init', '--output', path.join(dir, 'x.yaml'), '--upstream', 'postgres://u:hunter2@db/app']);
    expect(secret.code).toBe(2);
    expect(fs.existsSync(path.join(dir, 'x.yaml'))).toBe(false);
  });
});

describe('list and show', () => {
  it('identities list/show and databases list, text and --json, never showing secrets', async () => {
    const file = writeTempConfig(minimal());
    const list = await runCli(['identities', 'list', '--config', file, '--json'], ENV);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.out)).toEqual([{ name: 'alice', kind: 'human', groups: [], auth: 'password' }]);
    const show = await runCli(['identity', 'show', 'alice', '--config', file], ENV);
    expect(show.out).toContain('kind: human');
    const missing = await runCli(['identity', 'show', 'zed', '--config', file], ENV);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('no identity named "zed"');
    const dbs = await runCli(['databases', 'list', '--config', file, '--json'], ENV);
    expect(JSON.parse(dbs.out)[0]).toMatchObject({ name: 'app', upstream: 'postgres://svc:***@127.0.0.1:5432/app' });
    for (const r of [list, show, dbs]) expect(r.out + r.err).not.toContain(ENV.APP_DB_PASSWORD);
  });
});

describe('a running warden', () => {
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = await startCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('logs JSON lines with a session id and no secrets; SIGTERM stops it with exit 0', async () => {
    const yaml = baseYaml(cluster.port).replace('port: 0', 'port: __PORT__');
    const w = await startWardenProcess(yaml, {}, 'debug');
    try {
      const c = new pg.Client({ host: '127.0.0.1', port: w.port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
      await c.connect();
      await c.query("select $1::text as v", ['parameter-value-never-logged']);
      await c.end();
      const bad = new pg.Client({ host: '127.0.0.1', port: w.port, user: 'alice', password: 'wrong-password-xyz', database: 'app' });
      await expect(bad.connect()).rejects.toMatchObject({ code: '28P01' });
    } finally {
      expect(await w.stop()).toBe(0);
    }
    const lines = w.stderr().split('\n').filter((l) => l.startsWith('{'));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      const j = JSON.parse(l) as Record<string, unknown>;
      expect(j.level).toBeTypeOf('string');
      if (j.msg === 'connection refused' || j.msg === 'session started') expect(j.session).toMatch(/^[0-9a-f]{12}$/);
    }
    const all = w.stderr();
    for (const secret of [PASSWORDS.alice, SVC_PASSWORD, 'wrong-password-xyz', 'parameter-value-never-logged']) expect(all).not.toContain(secret);
  });
});

describe('policy explain and policy test', () => {
  const yaml = minimal(`rules:
  - name: no-destructive-ddl
    match: { statement: [drop, truncate] }
    action: deny
    reason: Destructive DDL is not run through Warden
  - name: writes-need-ticket
    match: { statement: [write], not: { intent: true } }
    action: deny
    reason: writes need a ticket
`);

  it('explain shows the analysis, the intent and the decision (text and --json)', async () => {
    const file = writeTempConfig(yaml);
    const t = await runCli(['policy', 'explain', '--config', file, '--as', 'alice', 'select 1; drop table orders'], ENV);
    expect(t.code).toBe(0);
    expect(t.out).toContain('Decision: DENY');
    expect(t.out).toContain('no-destructive-ddl');
    const j = await runCli(['policy', 'explain', '--config', file, '--as', 'alice', '--json', "/* ticket='OPS-12',reason='backfill%20fix' */ update t set x = 1"], ENV);
    const parsed = JSON.parse(j.out) as { intent: Record<string, string>; decision: { action: string } };
    expect(parsed.intent).toEqual({ ticket: 'OPS-12', reason: 'backfill fix' });
    expect(parsed.decision.action).toBe('allow');
    const noTicket = await runCli(['policy', 'explain', '--config', file, '--as', 'alice', '--json', 'update t set x = 1'], ENV);
    expect(JSON.parse(noTicket.out).decision.action).toBe('deny');
    const withOpt = await runCli(['policy', 'explain', '--config', file, '--as', 'alice', '--intent', 'warden.ticket=OPS-1', '--json', 'update t set x = 1'], ENV);
    expect(JSON.parse(withOpt.out).decision.action).toBe('allow');
    const unknown = await runCli(['policy', 'explain', '--config', file, '--as', 'mallory', 'select 1'], ENV);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no identity named "mallory"');
  });

  it('policy test exits 0 when every case holds and 1 on a mismatch', async () => {
    const file = writeTempConfig(yaml);
    const ok = writeTempConfig(`cases:
  - { identity: alice, sql: "DROP TABLE orders", expect: deny, rule: no-destructive-ddl }
  - { identity: alice, sql: "SELECT 1", expect: allow }
  - { identity: alice, sql: "UPDATE t SET x = 1", intent: { ticket: OPS-1 }, expect: allow }
`);
    const good = await runCli(['policy', 'test', ok, '--config', file], ENV);
    expect(good.code, good.err).toBe(0);
    expect(good.out).toContain('3 passed, 0 failed');
    const bad = writeTempConfig(`cases:
  - { identity: alice, sql: "DROP TABLE orders", expect: allow }
`);
    const failed = await runCli(['policy', 'test', bad, '--config', file], ENV);
    expect(failed.code).toBe(1);
    expect(failed.out).toContain('FAIL');
    expect(failed.out).toContain('0 passed, 1 failed');
  });
});

describe('identity hash-password', () => {
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = await startCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('prints a verifier that logs in through Warden; the password never comes from argv', async () => {
    const r = await runCli(['identity', 'hash-password'], { WARDEN_PASSWORD: 'verifier-pw-1' });
    expect(r.code).toBe(0);
    const verifier = r.out.trim();
    expect(verifier).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    const yaml = baseYaml(cluster.port).replace('port: 0', 'port: __PORT__') + `  - name: verified\n    kind: service\n    scram: "${verifier}"\n`;
    const w = await startWardenProcess(yaml);
    try {
      const c = new pg.Client({ host: '127.0.0.1', port: w.port, user: 'verified', password: 'verifier-pw-1', database: 'app' });
      await c.connect();
      expect((await c.query("select current_setting('warden.identity') as id")).rows[0].id).toBe('verified');
      await c.end();
      const bad = new pg.Client({ host: '127.0.0.1', port: w.port, user: 'verified', password: 'nope', database: 'app' });
      await expect(bad.connect()).rejects.toMatchObject({ code: '28P01' });
    } finally {
      await w.stop();
    }
  });
});
