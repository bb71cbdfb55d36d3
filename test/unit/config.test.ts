import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import { parseDuration, parsePostgresUrl, parseSize } from '../../src/config/schema.js';

// The product side's public configuration interface, beside the project's root (as in CI).
const EXAMPLE = join(import.meta.dirname, '..', '..', '..', 'shared', 'spec', 'warden.example.yaml');
/**
 * Top-level sections of the spec's example that this version does not implement yet (open
 * issues). They are cut from the copy the tests load, and a test below checks that Warden
 * refuses them with a clear error rather than ignoring them. None today.
 */
const NOT_YET: string[] = [];

/** The example without the sections in NOT_YET (each a top-level key with its indented block). */
function withoutPending(yaml: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const line of yaml.split('\n')) {
    const top = /^([A-Za-z_]+):/.exec(line);
    if (top) skipping = NOT_YET.includes(top[1]!);
    else if (line.trim() !== '' && !/^\s/.test(line)) skipping = false;
    if (!skipping) out.push(line);
  }
  return out.join('\n');
}
const EXAMPLE_ENV = {
  APP_DB_PASSWORD: 'app-secret-Zq9',
  ALICE_PASSWORD: 'alice-secret-Xw1',
  DANA_PASSWORD: 'dana-secret-Yv2',
  TRAINER_PASSWORD: 'trainer-secret-Uu3',
};

let dir: string;
let examplePath: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'warden-config-test-'));
  mkdirSync(join(dir, 'certs'));
  writeFileSync(join(dir, 'certs', 'server.crt'), 'dummy cert\n');
  writeFileSync(join(dir, 'certs', 'server.key'), 'dummy key\n');
  examplePath = join(dir, 'warden.yaml');
  writeFileSync(examplePath, withoutPending(readFileSync(EXAMPLE, 'utf8')));
  copyFileSync(EXAMPLE, join(dir, 'full.yaml'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A minimal valid document plus extra YAML lines. */
function minimal(extra = ''): string {
  return `version: 1
databases:
  app:
    upstream: postgres://svc:pw@db.internal:5433/appdb
${extra}`;
}

/** Parses text expecting a ConfigError; returns it. */
function configError(text: string, env: NodeJS.ProcessEnv = {}, source?: string): ConfigError {
  const file = source ?? join(dir, 'case.yaml');
  try {
    parseConfig(text, file, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.message).not.toMatch(/[\r\n]/);
    expect(e.file).toBe(file);
    expect(e.message.startsWith(`${file}:`)).toBe(true);
    return e;
  }
  throw new Error('expected a ConfigError, but the configuration loaded');
}

function scramVerifier(password: string, iterations = 4096): string {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

describe('the example configuration', () => {
  it('sections of the spec not implemented yet are refused with a clear error, not ignored', () => {
    for (const key of NOT_YET) {
      expect(() => loadConfig(join(dir, 'full.yaml'), EXAMPLE_ENV)).toThrow(new RegExp(`: ${key}: unknown key`));
    }
  });

  it('loads in full, limits included; a limit that asks for approval without approvers asks the rules\' approvers', () => {
    const cfg = loadConfig(join(dir, 'full.yaml'), EXAMPLE_ENV);
    expect(cfg.limits.map((l) => l.name)).toEqual(['agent-volume', 'agent-heavy-reads']);
    expect(cfg.limits[0]).toMatchObject({ maxRows: 1000, maxBytes: 20 * 1024 * 1024, rowsPerHour: 50000, statementsPerMinute: 600, onExceed: 'halt' });
    expect(cfg.limits[1]).toMatchObject({ maxEstimatedRows: 10000, firstTouch: 'approve', onExceed: 'approve', approvers: { groups: ['dba'], count: 1 } });
    expect(cfg.limits[1]!.match).toEqual({ kind: ['agent'], sensitive: ['*'] });
  });

  it('a limit that asks for approval with no approvers anywhere is refused, naming the key', () => {
    const text = `version: 1
databases: { app: { upstream: "postgres://u:p@127.0.0.1/app" } }
limits:
  - { name: l, match: { kind: [agent] }, max_estimated_rows: 10, on_exceed: approve }
`;
    expect(() => parseConfig(text, '/x/w.yaml', {})).toThrow(/limits\[0\]\.approvers: required when on_exceed or first_touch is approve and no rule names approvers/);
    expect(() => parseConfig(text.replace('max_estimated_rows: 10, on_exceed: approve', 'max_rows: 5, on_exceed: approve'), '/x/w.yaml', {})).toThrow(/approve applies to max_estimated_rows/);
  });

  it('loads and normalizes', () => {
    const cfg = loadConfig(examplePath, EXAMPLE_ENV);
    expect(cfg.version).toBe(1);
    expect(cfg.source).toBe(examplePath);
    expect(cfg.hash).toBe(createHash('sha256').update(readFileSync(examplePath)).digest('hex'));

    expect(cfg.listen).toEqual({
      host: '127.0.0.1',
      port: 6432,
      maxMessageSize: 1073741824,
      tls: { cert: join(dir, 'certs/server.crt'), key: join(dir, 'certs/server.key'), require: false },
    });
    expect(cfg.admin).toEqual({ host: '127.0.0.1', port: 7070, auditors: [], operators: [] });

    expect(Object.keys(cfg.databases)).toEqual(['app']);
    expect(cfg.databases.app).toEqual({
      name: 'app',
      upstream: {
        host: '127.0.0.1',
        port: 5432,
        user: 'warden_svc',
        password: 'app-secret-Zq9',
        database: 'app',
        redactedUrl: 'postgres://warden_svc:***@127.0.0.1:5432/app',
      },
      environment: 'production',
      tls: 'disable',
    });

    expect(cfg.identities.map((i) => [i.name, i.kind, i.groups, i.password])).toEqual([
      ['alice', 'human', ['analysts'], 'alice-secret-Xw1'],
      ['dana', 'human', ['dba'], 'dana-secret-Yv2'],
      ['trainer', 'agent', ['ml-pipelines'], 'trainer-secret-Uu3'],
    ]);

    expect(cfg.sensitive?.columns['billing.*.card_number']).toBe('credit_card');
    expect(cfg.sensitive?.columns['public.customers.ssn']).toBe('ssn');
    expect(cfg.sensitive?.detect).toEqual(['email', 'credit_card', 'ssn']);
    expect(cfg.sensitive?.maskers).toEqual({ ssn: 'partial', credit_card: 'partial' });

    expect(cfg.rules.map((r) => [r.name, r.action])).toEqual([
      ['no-destructive-ddl', 'deny'],
      ['agents-read-only', 'deny'],
      ['billing-writes-need-approval', 'approve'],
      ['mask-pii-except-dba', 'mask'],
    ]);
    expect(cfg.rules[0].reason).toBe('Destructive DDL is not run through Warden');
    expect(cfg.rules[1].match).toEqual({ kind: ['agent'], statement: ['write', 'ddl'] });
    expect(cfg.rules[2].match).toEqual({ statement: ['write'], tables: ['billing.*'] });
    expect(cfg.rules[2].approvers).toEqual({ groups: ['dba'], count: 1 });
    expect(cfg.rules[3].match).toEqual({ not: { groups: ['dba'] } });
    expect(cfg.default).toBe('allow');

    expect(cfg.approvals).toEqual({ mode: 'hold', timeoutMs: 600_000, webhook: 'http://127.0.0.1:9999/hook' });
    expect(cfg.state).toEqual({ store: { kind: 'sqlite', location: join(dir, 'warden-state.db') } });
    expect(cfg.audit).toEqual({ store: { kind: 'sqlite', location: join(dir, 'warden-audit.db') }, onFailure: 'block', durability: 'fsync', checkpointEvery: 1000, checkpointIntervalMs: 60_000, stream: [] });
  });

  it('fails without its environment variables, naming the first missing one and its key', () => {
    const e = (() => {
      try {
        loadConfig(examplePath, { ALICE_PASSWORD: 'a', DANA_PASSWORD: 'd', TRAINER_PASSWORD: 't' });
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('loaded');
    })();
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toBe(`${examplePath}: databases.app.upstream: environment variable APP_DB_PASSWORD is not set`);
    expect(e.key).toBe('databases.app.upstream');
  });
});

describe('defaults', () => {
  it('fills every default for a minimal file', () => {
    const cfg = parseConfig(minimal(), join(dir, 'min.yaml'), {});
    expect(cfg.listen).toEqual({ host: '127.0.0.1', port: 6432, maxMessageSize: 1073741824 });
    expect(cfg.admin).toBeUndefined();
    expect(cfg.databases.app.upstream).toEqual({
      host: 'db.internal',
      port: 5433,
      user: 'svc',
      password: 'pw',
      database: 'appdb',
      redactedUrl: 'postgres://svc:***@db.internal:5433/appdb',
    });
    expect(cfg.databases.app.tls).toBe('disable');
    expect(cfg.identities).toEqual([]);
    expect(cfg.rules).toEqual([]);
    expect(cfg.default).toBe('allow');
    expect(cfg.sensitive).toEqual({ columns: {}, detect: [], maskers: {} });
    expect(cfg.approvals).toEqual({ mode: 'hold', timeoutMs: 600_000 });
    expect(cfg.state).toBeUndefined();
    expect(cfg.audit).toBeUndefined();
  });

  it('fills section-level defaults', () => {
    const cfg = parseConfig(
      minimal(`admin: {}
identities:
  - name: bob
    password: x
rules:
  - name: r
    match: {}
    action: approve
    approvers: { groups: [dba] }
audit:
  store: jsonl:logs/audit.jsonl
`),
      join(dir, 'sub', 'w.yaml'),
      {},
    );
    expect(cfg.admin).toEqual({ host: '127.0.0.1', port: 7070, auditors: [], operators: [] });
    expect(cfg.identities[0]).toEqual({ name: 'bob', kind: 'human', groups: [], password: 'x' });
    expect(cfg.rules[0].approvers).toEqual({ groups: ['dba'], count: 1 });
    expect(cfg.audit).toEqual({ store: { kind: 'jsonl', location: join(dir, 'sub', 'logs', 'audit.jsonl') }, onFailure: 'block', durability: 'fsync', checkpointEvery: 1000, checkpointIntervalMs: 60_000, stream: [] });
  });
});

describe('normalization', () => {
  it('parses upstream URLs: postgresql://, IPv6, percent-decoding, database defaulting to the user', () => {
    const cfg = parseConfig(
      `version: 1
databases:
  a: { upstream: "postgresql://us%40er:p%3Aw%2Fd@[::1]:6000" }
  b: { upstream: "postgres://only@localhost/" }
`,
      join(dir, 'u.yaml'),
      {},
    );
    expect(cfg.databases.a.upstream).toEqual({
      host: '::1',
      port: 6000,
      user: 'us@er',
      password: 'p:w/d',
      database: 'us@er',
      redactedUrl: 'postgresql://us%40er:***@[::1]:6000/us%40er',
    });
    expect(cfg.databases.b.upstream).toEqual({
      host: 'localhost',
      port: 5432,
      user: 'only',
      database: 'only',
      redactedUrl: 'postgres://only@localhost:5432/only',
    });
  });

  it('converts sizes, durations, stores and match lists', () => {
    const cfg = parseConfig(
      minimal(`listen:
  max_message_size: 64MB
approvals: { mode: reject, timeout: 1h30m }
state: { store: "postgres://st:stpw@pg:5432/state" }
audit: { store: "sqlite:/var/lib/warden/audit.db", on_failure: continue }
rules:
  - name: r1
    match:
      statement: DELETE
      identity: alice
      environment: production
      client: [10.0.0.0/8, "::1", 192.168.1.7]
      intent: { ticket: true, reason: "backfill*" }
      time: { days: [mon-fri], hours: "9:00-18:30", tz: europe/paris }
      any:
        - { sensitive: ssn }
        - { columns: "public.*.email" }
    action: deny
default: deny
`),
      join(dir, 'n.yaml'),
      {},
    );
    expect(cfg.listen.maxMessageSize).toBe(64 * 1024 * 1024);
    expect(cfg.approvals).toEqual({ mode: 'reject', timeoutMs: 5_400_000 });
    expect(cfg.state?.store).toEqual({ kind: 'postgres', location: 'postgres://st:stpw@pg:5432/state' });
    expect(cfg.audit).toEqual({ store: { kind: 'sqlite', location: '/var/lib/warden/audit.db' }, onFailure: 'continue', durability: 'fsync', checkpointEvery: 1000, checkpointIntervalMs: 60_000, stream: [] });
    expect(cfg.default).toBe('deny');
    expect(cfg.rules[0].match).toEqual({
      statement: ['delete'],
      identity: ['alice'],
      environment: ['production'],
      client: ['10.0.0.0/8', '::1', '192.168.1.7'],
      intent: { ticket: true, reason: 'backfill*' },
      time: { days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: '09:00-18:30', tz: 'Europe/Paris' },
      any: [{ sensitive: ['ssn'] }, { columns: ['public.*.email'] }],
    });
  });

  it('expands wrapping day ranges and defaults the time zone to UTC', () => {
    const cfg = parseConfig(
      minimal(`rules:
  - { name: night, match: { time: { days: [fri-mon, Wednesday], hours: "22:00-06:00" } }, action: deny }
`),
      join(dir, 't.yaml'),
      {},
    );
    expect(cfg.rules[0].match.time).toEqual({ days: ['mon', 'wed', 'fri', 'sat', 'sun'], hours: '22:00-06:00', tz: 'UTC' });
  });

  it('accepts a valid SCRAM verifier', () => {
    const verifier = scramVerifier('s3cret');
    const cfg = parseConfig(minimal(`identities:\n  - { name: svc, kind: service, scram: "${verifier}" }\n`), join(dir, 's.yaml'), {});
    expect(cfg.identities[0]).toEqual({ name: 'svc', kind: 'service', groups: [], scram: verifier });
  });

  it('resolves a database CA file against the config directory', () => {
    writeFileSync(join(dir, 'ca.pem'), 'dummy ca\n');
    const cfg = parseConfig(
      `version: 1\ndatabases:\n  app: { upstream: "postgres://u@h/d", tls: verify-full, ca: ./ca.pem }\n`,
      join(dir, 'ca.yaml'),
      {},
    );
    expect(cfg.databases.app.ca).toBe(join(dir, 'ca.pem'));
    expect(cfg.databases.app.tls).toBe('verify-full');
  });

  it('hashes the raw text, before substitution', () => {
    const text = minimal(`identities:\n  - { name: a, password: "\${PW}" }\n`);
    const one = parseConfig(text, join(dir, 'h.yaml'), { PW: 'one' });
    const two = parseConfig(text, join(dir, 'h.yaml'), { PW: 'two' });
    expect(one.hash).toBe(createHash('sha256').update(text, 'utf8').digest('hex'));
    expect(two.hash).toBe(one.hash);
    expect(one.identities[0].password).toBe('one');
  });
});

describe('environment substitution', () => {
  it('substitutes in nested values, lists and map values', () => {
    const cfg = parseConfig(
      `version: 1
listen:
  host: \${HOST}
  port: \${PORT}
databases:
  app:
    upstream: postgres://svc:pw@\${DB_HOST}:5432/app
    environment: \${ENV_LABEL}
sensitive:
  maskers: { ssn: "\${SSN_MASKER}" }
rules:
  - name: r
    match: { not: { any: [ { groups: ["\${ADMIN_GROUP}", x] } ] } }
    action: deny
    reason: "contact \${TEAM} (\${TEAM})"
`,
      join(dir, 'env.yaml'),
      { HOST: '0.0.0.0', PORT: '7000', DB_HOST: 'pg.example', ENV_LABEL: 'staging', SSN_MASKER: 'hash', ADMIN_GROUP: 'admins', TEAM: 'dba' },
    );
    expect(cfg.listen.host).toBe('0.0.0.0');
    expect(cfg.listen.port).toBe(7000);
    expect(cfg.databases.app.upstream.host).toBe('pg.example');
    expect(cfg.databases.app.environment).toBe('staging');
    expect(cfg.sensitive?.maskers.ssn).toBe('hash');
    expect(cfg.rules[0].match).toEqual({ not: { any: [{ groups: ['admins', 'x'] }] } });
    expect(cfg.rules[0].reason).toBe('contact dba (dba)');
  });

  it('keeps YAML-special characters from the environment literal', () => {
    const tricky = `a: b # c {d} [e], "f" 'g' \n*h &i`;
    const cfg = parseConfig(minimal(`identities:\n  - name: a\n    password: \${PW}\n`), join(dir, 'y.yaml'), { PW: tricky });
    expect(cfg.identities[0].password).toBe(tricky);
  });

  it('percent-encodes a variable in the user-info part of a URL, but not a whole URL', () => {
    const pw = 'p@ss/w#rd:%?x';
    const cfg = parseConfig(
      `version: 1
databases:
  a: { upstream: "postgres://svc:\${PW}@h:5432/a" }
  b: { upstream: "\${URL}" }
state: { store: "postgres://st:\${PW}@h/state" }
`,
      join(dir, 'pe.yaml'),
      { PW: pw, URL: 'postgres://u2:p%40@h2:1234/b' },
    );
    expect(cfg.databases.a.upstream.password).toBe(pw);
    expect(cfg.databases.a.upstream.redactedUrl).toBe('postgres://svc:***@h:5432/a');
    expect(cfg.databases.b.upstream).toMatchObject({ user: 'u2', password: 'p@', host: 'h2', port: 1234, database: 'b' });
    expect(parsePostgresUrl(cfg.state!.store.location)).toMatchObject({ ok: true, value: { password: pw } });
  });

  it('treats $${ as a literal ${', () => {
    const cfg = parseConfig(
      minimal(`rules:\n  - { name: r, match: {}, action: deny, reason: "costs $\${AMOUNT} and \${X}" }\n`),
      join(dir, 'esc.yaml'),
      { X: 'y' },
    );
    expect(cfg.rules[0].reason).toBe('costs ${AMOUNT} and y');
  });

  it('reports a missing variable with the key where it appears', () => {
    const e = configError(minimal(`identities:\n  - { name: a, password: x }\n  - { name: b, password: "\${B_PW}" }\n`));
    expect(e.message).toBe(`${e.file}: identities[1].password: environment variable B_PW is not set`);
    expect(e.key).toBe('identities[1].password');
  });

  it('reports a malformed reference', () => {
    const e = configError(minimal(`rules:\n  - { name: r, match: {}, action: deny, reason: "x \${not valid}" }\n`));
    expect(e.key).toBe('rules[0].reason');
    expect(e.message).toContain('malformed variable reference');
  });
});

describe('errors', () => {
  const cases: { name: string; text: string; key: string; message: string | RegExp; env?: NodeJS.ProcessEnv }[] = [
    {
      name: 'unknown key at the top level',
      text: minimal('listn: {}\n'),
      key: 'listn',
      message: /^unknown key \(expected one of version, listen, admin, databases, identities, sensitive, rules, default, limits, approvals, state, audit, oidc, report\)$/,
    },
    {
      name: 'unknown key nested',
      text: minimal('listen: { host: 0.0.0.0, prot: 7000 }\n'),
      key: 'listen.prot',
      message: 'unknown key (expected one of host, port, tls, max_message_size, max_connections, drain_timeout)',
    },
    {
      name: 'unknown key deep in a match',
      text: minimal('rules:\n  - { name: r, match: { not: { grups: [a] } }, action: deny }\n'),
      key: 'rules[0].match.not.grups',
      message: /^unknown key \(expected one of statement, identity, kind, groups,/,
    },
    {
      name: 'unknown key in a database',
      text: minimal('    sslmode: require\n'),
      key: 'databases.app.sslmode',
      message: 'unknown key (expected one of upstream, environment, tls, ca, trusted_functions)',
    },
    { name: 'missing env var', text: 'version: 1\ndatabases:\n  app:\n    upstream: postgres://u:${APP_DB_PASSWORD}@h/d\n', key: 'databases.app.upstream', message: 'environment variable APP_DB_PASSWORD is not set' },
    { name: 'bad URL scheme', text: 'version: 1\ndatabases:\n  app: { upstream: "mysql://u:pw@h/d" }\n', key: 'databases.app.upstream', message: 'upstream URL must be a URL starting with postgres:// or postgresql://' },
    { name: 'URL without user', text: 'version: 1\ndatabases:\n  app: { upstream: "postgres://h/d" }\n', key: 'databases.app.upstream', message: /^upstream URL has no user name/ },
    { name: 'URL with a bad port', text: 'version: 1\ndatabases:\n  app: { upstream: "postgres://u:pw@h:99999/d" }\n', key: 'databases.app.upstream', message: 'upstream URL port must be between 1 and 65535' },
    { name: 'URL with an unencoded # in the password', text: 'version: 1\ndatabases:\n  app: { upstream: "postgres://u:p#w@h/d" }\n', key: 'databases.app.upstream', message: /^upstream URL has a user name or password containing \/ # or \? that must be percent-encoded/ },
    { name: 'URL with query parameters', text: 'version: 1\ndatabases:\n  app: { upstream: "postgres://u:pw@h/d?sslmode=require" }\n', key: 'databases.app.upstream', message: /^upstream URL query parameters and fragments are not supported/ },
    { name: 'port out of range', text: minimal('listen: { port: 70000 }\n'), key: 'listen.port', message: 'must be at most 65535' },
    { name: 'negative port', text: minimal('admin: { port: -1 }\n'), key: 'admin.port', message: 'must be at least 0' },
    { name: 'port not a number', text: minimal('listen: { port: abc }\n'), key: 'listen.port', message: 'expected a number, got a string' },
    { name: 'port not an integer', text: minimal('listen: { port: 64.5 }\n'), key: 'listen.port', message: 'must be an integer' },
    { name: 'bad version', text: 'version: 2\ndatabases: {}\n', key: 'version', message: 'unsupported version 2 (this Warden reads version 1)' },
    { name: 'missing version', text: 'databases:\n  app: { upstream: "postgres://u@h/d" }\n', key: 'version', message: 'required (this Warden reads version 1)' },
    { name: 'missing databases', text: 'version: 1\n', key: 'databases', message: 'required' },
    { name: 'no databases', text: 'version: 1\ndatabases: {}\n', key: 'databases', message: 'at least one database is required' },
    { name: 'bad tls mode', text: minimal('    tls: maybe\n'), key: 'databases.app.tls', message: 'expected one of disable, require, verify-full, got "maybe"' },
    { name: 'ca with tls disabled', text: minimal('    ca: ./ca.pem\n'), key: 'databases.app.ca', message: /^has no effect with tls: disable/ },
    {
      name: 'duplicate identity',
      text: minimal('identities:\n  - { name: alice, password: a }\n  - { name: bob, password: b }\n  - { name: alice, password: c }\n'),
      key: 'identities[2].name',
      message: 'duplicate identity name "alice" (already used by identities[0])',
    },
    { name: 'identity without credentials', text: minimal('identities:\n  - { name: alice }\n'), key: 'identities[0]', message: 'needs a password or a scram verifier' },
    { name: 'identity with both credentials', text: minimal(`identities:\n  - { name: alice, password: a, scram: "${scramVerifier('a')}" }\n`), key: 'identities[0].scram', message: /mutually exclusive/ },
    { name: 'bad scram verifier', text: minimal('identities:\n  - { name: alice, scram: "SCRAM-SHA-256$4096:abc$def" }\n'), key: 'identities[0].scram', message: /^not a valid SCRAM-SHA-256 verifier/ },
    { name: 'bad identity kind', text: minimal('identities:\n  - { name: alice, kind: robot, password: a }\n'), key: 'identities[0].kind', message: 'expected one of human, service, agent, got "robot"' },
    { name: 'bad duration', text: minimal('approvals: { timeout: 10 minutes }\n'), key: 'approvals.timeout', message: /^expected a duration such as/ },
    { name: 'zero duration', text: minimal('approvals: { timeout: 0s }\n'), key: 'approvals.timeout', message: 'must be a positive duration' },
    { name: 'bad size', text: minimal('listen: { max_message_size: 12XB }\n'), key: 'listen.max_message_size', message: /^expected a size in bytes/ },
    { name: 'size above the protocol limit', text: minimal('listen: { max_message_size: 2GB }\n'), key: 'listen.max_message_size', message: /^must be at most 2147483647 bytes/ },
    {
      name: 'bad time zone',
      text: minimal('rules:\n  - { name: r, match: { time: { hours: "09:00-18:00", tz: Mars/Olympus } }, action: deny }\n'),
      key: 'rules[0].match.time.tz',
      message: /^"Mars\/Olympus" is not a known time zone/,
    },
    { name: 'bad hours', text: minimal('rules:\n  - { name: r, match: { time: { hours: "9-5" } }, action: deny }\n'), key: 'rules[0].match.time.hours', message: /is not a time range HH:MM-HH:MM/ },
    { name: 'bad weekday', text: minimal('rules:\n  - { name: r, match: { time: { days: [mon, funday] } }, action: deny }\n'), key: 'rules[0].match.time.days[1]', message: /^"funday" is not a weekday/ },
    {
      name: 'bad CIDR',
      text: minimal('rules:\n  - { name: r, match: { client: [10.0.0.0/8, 300.1.2.3/24] }, action: deny }\n'),
      key: 'rules[0].match.client[1]',
      message: /^"300\.1\.2\.3\/24" is not an IP address or CIDR range/,
    },
    { name: 'CIDR prefix too long', text: minimal('rules:\n  - { name: r, match: { client: "10.0.0.0/33" }, action: deny }\n'), key: 'rules[0].match.client', message: '"10.0.0.0/33": the prefix length must be 0-32' },
    {
      name: 'bad statement class',
      text: minimal('rules:\n  - { name: r, match: { statement: [select, dropp] }, action: deny }\n'),
      key: 'rules[0].match.statement[1]',
      message: /^unknown statement class "dropp" \(expected one of select, insert,.* opaque, comment, lock, maintenance.*\)$/,
    },
    { name: 'bad statement class (single string)', text: minimal('rules:\n  - { name: r, match: { statement: writes }, action: deny }\n'), key: 'rules[0].match.statement', message: /^unknown statement class "writes"/ },
    { name: 'empty match list', text: minimal('rules:\n  - { name: r, match: { groups: [] }, action: deny }\n'), key: 'rules[0].match.groups', message: 'must not be empty' },
    { name: 'approve without approvers', text: minimal('rules:\n  - { name: r, match: {}, action: approve }\n'), key: 'rules[0].approvers', message: /^required when action is approve/ },
    { name: 'approvers on a deny rule', text: minimal('rules:\n  - { name: r, match: {}, action: deny, approvers: { groups: [dba] } }\n'), key: 'rules[0].approvers', message: /^only allowed when action is approve/ },
    { name: 'bad action', text: minimal('rules:\n  - { name: r, match: {}, action: block }\n'), key: 'rules[0].action', message: 'expected one of allow, deny, mask, approve, got "block"' },
    { name: 'rule without match', text: minimal('rules:\n  - { name: r, action: deny }\n'), key: 'rules[0].match', message: 'required' },
    { name: 'duplicate rule', text: minimal('rules:\n  - { name: r, match: {}, action: deny }\n  - { name: r, match: {}, action: allow }\n'), key: 'rules[1].name', message: 'duplicate rule name "r" (already used by rules[0])' },
    { name: 'bad sensitive pattern', text: minimal('sensitive:\n  columns:\n    "customers.email": email\n'), key: 'sensitive.columns["customers.email"]', message: /^the key must be a schema.table.column pattern/ },
    { name: 'bad masker', text: minimal('sensitive:\n  maskers: { ssn: scramble }\n'), key: 'sensitive.maskers.ssn', message: 'expected one of fake, partial, hash, redact, null, got "scramble"' },
    { name: 'bad default', text: minimal('default: maybe\n'), key: 'default', message: 'expected one of allow, deny, got "maybe"' },
    { name: 'bad webhook', text: minimal('approvals: { webhook: "ftp://x/y" }\n'), key: 'approvals.webhook', message: 'must be an http:// or https:// URL' },
    { name: 'bad state store', text: minimal('state: { store: "jsonl:./s.jsonl" }\n'), key: 'state.store', message: 'expected sqlite:PATH or postgres://...' },
    { name: 'bad audit failure mode', text: minimal('audit: { store: "jsonl:./a.jsonl", on_failure: ignore }\n'), key: 'audit.on_failure', message: 'expected one of block, continue, got "ignore"' },
    { name: 'empty section', text: minimal('listen:\n'), key: 'listen', message: 'expected a mapping, got an empty value' },
  ];

  for (const c of cases) {
    it(`${c.name}: one line naming the file and ${c.key}`, () => {
      const e = configError(c.text, c.env ?? {});
      expect(e.key).toBe(c.key);
      if (typeof c.message === 'string') {
        expect(e.message).toBe(`${e.file}: ${c.key}: ${c.message}`);
      } else {
        expect(e.message.startsWith(`${e.file}: ${c.key}: `)).toBe(true);
        expect(e.problem).toMatch(c.message);
      }
    });
  }

  it('missing TLS cert file: names the key and the resolved path', () => {
    const file = join(dir, 'nocert', 'warden.yaml');
    const e = configError(minimal('listen:\n  tls: { cert: ./certs/missing.crt, key: ./certs/missing.key }\n'), {}, file);
    expect(e.message).toBe(`${file}: listen.tls.cert: file not found: ${join(dir, 'nocert', 'certs', 'missing.crt')}`);
  });

  it('missing TLS key file while the cert exists', () => {
    const e = configError(minimal(`listen:\n  tls: { cert: ./certs/server.crt, key: ./certs/nope.key, require: true }\n`));
    expect(e.key).toBe('listen.tls.key');
    expect(e.message).toContain(join(dir, 'certs', 'nope.key'));
  });

  it('TLS cert path that is a directory', () => {
    const e = configError(minimal(`listen:\n  tls: { cert: ./certs, key: ./certs/server.key }\n`));
    expect(e.message).toBe(`${e.file}: listen.tls.cert: not a regular file: ${join(dir, 'certs')}`);
  });

  it('YAML syntax error: one line with file, line and column', () => {
    const e = configError('version: 1\ndatabases:\n  app: { upstream: "postgres://u@h/d"\nidentities: []\n');
    expect(e.message).toMatch(new RegExp(`^${e.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: YAML syntax error: \\S`));
    expect(e.line).toBeGreaterThan(0);
    expect(e.column).toBeGreaterThan(0);
  });

  it('YAML syntax error: position of a bad indentation', () => {
    const e = configError('version: 1\nlisten:\n  host: a\n   port: 1\n');
    expect(e.message.startsWith(`${e.file}:3:`)).toBe(true);
    expect(e.message).toContain('YAML syntax error');
  });

  it('duplicate YAML keys', () => {
    const e = configError('version: 1\nversion: 1\n');
    expect(e.message).toMatch(/:2:1: YAML syntax error: Map keys must be unique$/);
  });

  it('an empty file and a non-mapping file', () => {
    expect(configError('').message).toMatch(/: the file is empty/);
    expect(configError('- a\n- b\n').message).toMatch(/: expected a mapping at the top level, got a list$/);
  });

  it('reports the first problem in document order', () => {
    const e = configError(`version: 1
listen: { port: 70000 }
databases:
  app: { upstream: "postgres://u:\${NOPE}@h/d", tls: bogus }
zz: 1
`);
    expect(e.key).toBe('listen.port');
    const e2 = configError(`version: 1
databases:
  app: { upstream: "postgres://u:\${NOPE}@h/d", tls: bogus }
listen: { port: 70000 }
`);
    expect(e2.message).toBe(`${e2.file}: databases.app.upstream: environment variable NOPE is not set`);
  });

  it('loadConfig on a missing file', () => {
    const missing = join(dir, 'does-not-exist.yaml');
    expect(() => loadConfig(missing, {})).toThrow(ConfigError);
    expect(() => loadConfig(missing, {})).toThrow(`${missing}: cannot read the configuration file: no such file`);
  });
});

describe('secrets never appear in error messages', () => {
  const SECRET = 'Sup3r-S3cret-Value';
  const env = { PW: SECRET, TOKEN: SECRET };

  const cases: { name: string; text: string }[] = [
    { name: 'unparseable URL with the password', text: `version: 1\ndatabases:\n  app: { upstream: "postgres://u:${SECRET}#@h/d" }\n` },
    { name: 'URL with a bad port and a password from env', text: 'version: 1\ndatabases:\n  app: { upstream: "postgres://u:${PW}@h:0/d" }\n' },
    { name: 'URL with a bad scheme', text: `version: 1\ndatabases:\n  app: { upstream: "mysql://u:${SECRET}@h/d" }\n` },
    { name: 'whole URL from env, invalid', text: 'version: 1\ndatabases:\n  app: { upstream: "${PW}" }\n' },
    { name: 'password of the wrong type', text: minimal(`identities:\n  - { name: a, password: [${SECRET}] }\n`) },
    { name: 'bad scram verifier', text: minimal(`identities:\n  - { name: a, scram: "SCRAM-SHA-256$4096:${SECRET}" }\n`) },
    { name: 'both password and scram', text: minimal(`identities:\n  - { name: a, password: "\${PW}", scram: "${scramVerifier(SECRET)}" }\n`) },
    { name: 'webhook with a token', text: minimal(`approvals: { webhook: "gopher://hooks/${SECRET}" }\n`) },
    { name: 'state store with a password', text: minimal('state: { store: "postgres://u:${PW}@h:99999/s" }\n') },
    { name: 'unrelated error with secrets loaded', text: minimal(`identities:\n  - { name: a, password: "\${PW}" }\nlisten: { port: -1 }\n`) },
    { name: 'YAML syntax error on a secret line', text: `version: 1\nidentities:\n  - name: a\n    password: "${SECRET}\n` },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const e = configError(c.text, env);
      expect(e.message).not.toContain(SECRET);
      expect(e.message).not.toContain(encodeURIComponent(SECRET));
    });
  }
});

describe('value parsers', () => {
  it('parseDuration', () => {
    expect(parseDuration('500ms')).toEqual({ ok: true, value: 500 });
    expect(parseDuration('30s')).toEqual({ ok: true, value: 30_000 });
    expect(parseDuration('10m')).toEqual({ ok: true, value: 600_000 });
    expect(parseDuration('1h')).toEqual({ ok: true, value: 3_600_000 });
    expect(parseDuration('1d')).toEqual({ ok: true, value: 86_400_000 });
    expect(parseDuration(90)).toEqual({ ok: true, value: 90_000 });
    expect(parseDuration(0.25)).toEqual({ ok: true, value: 250 });
    expect(parseDuration('45')).toEqual({ ok: true, value: 45_000 });
    expect(parseDuration('1.5h')).toEqual({ ok: true, value: 5_400_000 });
    expect(parseDuration('10 min').ok).toBe(false);
    expect(parseDuration('-5s').ok).toBe(false);
    expect(parseDuration('30d').ok).toBe(false);
    expect(parseDuration(true).ok).toBe(false);
  });

  it('parseSize', () => {
    expect(parseSize(1024)).toEqual({ ok: true, value: 1024 });
    expect(parseSize('64MB')).toEqual({ ok: true, value: 67_108_864 });
    expect(parseSize('1GB')).toEqual({ ok: true, value: 1_073_741_824 });
    expect(parseSize('1GiB')).toEqual({ ok: true, value: 1_073_741_824 });
    expect(parseSize('512kB')).toEqual({ ok: true, value: 524_288 });
    expect(parseSize('100 B')).toEqual({ ok: true, value: 100 });
    expect(parseSize('1.5GB').ok).toBe(false);
    expect(parseSize(0).ok).toBe(false);
    expect(parseSize('3GB').ok).toBe(false);
  });
});
