/**
 * src/sql/secrets.ts: which constants of a statement are secrets, and the text with each of them
 * replaced by '<redacted>' — in every quoting form PostgreSQL accepts — while the rest of the
 * statement stays as written.
 */
import fs from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { initSqlParser, parseStatements } from '../../src/sql/parser.js';
import { analyzeSql } from '../../src/sql/index.js';
import {
  conninfoKeys,
  isSecretConnectionString,
  isSecretName,
  mayCarrySecret,
  redactJsonSecrets,
  redactMessage,
  redactParseError,
  redactSecrets,
  REDACTED,
  WITHHELD_SECRET,
} from '../../src/sql/secrets.js';
import { createStatementAuditor } from '../../src/governance/statement-audit.js';
import { secretStatementFingerprint, statementFingerprint } from '../../src/governance/approvals.js';
import { silentLogger } from '../../src/log/logger.js';
import type { AuditLog } from '../../src/audit/log.js';
import type { WardenConfig } from '../../src/config/types.js';
import type { SessionInfo, StatementSource } from '../../src/contract/statement-hooks.js';

beforeAll(async () => {
  await initSqlParser();
});

/** Redacts `sql` and checks that no secret is left, the kept parts are, and the result still parses. */
function redacted(sql: string, secrets: readonly string[], kept: readonly string[] = []): string {
  const r = redactSecrets(sql);
  expect(r, sql).not.toBeNull();
  expect(r!.how).toBe('redacted');
  expect(r!.maskParams).toBe(true);
  for (const s of secrets) expect(r!.text, `${s} in ${r!.text}`).not.toContain(s);
  for (const k of kept) expect(r!.text, `${k} kept`).toContain(k);
  expect(r!.text).toContain('<redacted>');
  expect(parseStatements(r!.text).ok, r!.text).toBe(true);
  return r!.text;
}

describe('role passwords', () => {
  it.each([
    ["CREATE ROLE app_user LOGIN PASSWORD 'Pw-role-1' VALID UNTIL '2030-01-01'", "CREATE ROLE app_user LOGIN PASSWORD '<redacted>' VALID UNTIL '2030-01-01'"],
    ["create user \"Mixed Case\" with encrypted password 'Pw-role-2'", 'create user "Mixed Case" with encrypted password \'<redacted>\''],
    ["ALTER USER bob PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$U3RvcmVk:U2VydmVy'", "ALTER USER bob PASSWORD '<redacted>'"],
    ["AlTeR rOlE bob WITH PaSsWoRd 'Pw-role-3' CONNECTION LIMIT 3", "AlTeR rOlE bob WITH PaSsWoRd '<redacted>' CONNECTION LIMIT 3"],
    ['ALTER ROLE bob PASSWORD $$Pw-role-4$$', "ALTER ROLE bob PASSWORD '<redacted>'"],
    ['ALTER ROLE bob PASSWORD $tag$Pw-$$-role-5$tag$', "ALTER ROLE bob PASSWORD '<redacted>'"],
    ["ALTER ROLE bob PASSWORD E'Pw\\x2drole\\x2d6'", "ALTER ROLE bob PASSWORD '<redacted>'"],
    ["ALTER ROLE bob PASSWORD U&'Pw\\002drole-7'", "ALTER ROLE bob PASSWORD '<redacted>'"],
    ["ALTER ROLE bob PASSWORD U&'Pw!002drole-8' UESCAPE '!'", "ALTER ROLE bob PASSWORD '<redacted>'"],
    ["ALTER ROLE bob PASSWORD 'Pw-''quoted''-9'", "ALTER ROLE bob PASSWORD '<redacted>'"],
    ["ALTER ROLE bob PASSWORD 'Pw-role-10'\n  '-continued'", "ALTER ROLE bob PASSWORD '<redacted>'"],
    ["ALTER ROLE bob /* set it */ PASSWORD -- here\n 'Pw-role-11' /* done */", "ALTER ROLE bob /* set it */ PASSWORD -- here\n '<redacted>' /* done */"],
    ["CREATE GROUP g WITH PASSWORD 'Pw-role-12'", "CREATE GROUP g WITH PASSWORD '<redacted>'"],
    ["ALTER ROLE \"bob\" PASSWORD 'Pw-ünï-13'", "ALTER ROLE \"bob\" PASSWORD '<redacted>'"],
  ])('%s', (sql, want) => {
    const text = redacted(sql, [sql.match(/Pw.*?\d+|SCRAM-SHA-256\$[^']*/)![0]]);
    expect(text).toBe(want);
  });

  it('keeps PASSWORD NULL, VALID UNTIL and statements without a password as they are', () => {
    expect(redactSecrets('ALTER ROLE bob PASSWORD NULL')).toBeNull();
    expect(redactSecrets("ALTER ROLE bob VALID UNTIL 'infinity'")).toBeNull();
    expect(redactSecrets("CREATE ROLE reader NOLOGIN")).toBeNull();
    expect(redactSecrets('SELECT id FROM users WHERE password_hash = $1')).toBeNull();
    expect(redactSecrets("SELECT 'forgot your password?'")).toBeNull();
  });

  it('redacts only the statement that carries one in a multi-statement string', () => {
    const text = redacted("SELECT 'a'; ALTER ROLE bob PASSWORD 'Pw-multi-1'; SELECT 'host=x'; CREATE ROLE c", ['Pw-multi-1'], ["SELECT 'a'", "SELECT 'host=x'", 'CREATE ROLE c']);
    expect(text).toBe("SELECT 'a'; ALTER ROLE bob PASSWORD '<redacted>'; SELECT 'host=x'; CREATE ROLE c");
  });
});

describe('options, subscriptions, settings', () => {
  it('user mappings, servers and foreign tables: password-like option values', () => {
    expect(redacted("CREATE USER MAPPING FOR alice SERVER remote OPTIONS (user 'bob', password 'Pw-um-1')", ['Pw-um-1'], ["user 'bob'"])).toBe(
      "CREATE USER MAPPING FOR alice SERVER remote OPTIONS (user 'bob', password '<redacted>')",
    );
    redacted("ALTER USER MAPPING FOR PUBLIC SERVER remote OPTIONS (SET password 'Pw-um-2', ADD \"sslpassword\" $$Pw-um-3$$, DROP passfile)", ['Pw-um-2', 'Pw-um-3'], ['DROP passfile']);
    redacted("CREATE SERVER s FOREIGN DATA WRAPPER odbc_fdw OPTIONS (odbc_DRIVER 'x', odbc_PWD 'Pw-srv-1', host 'h')", ['Pw-srv-1'], ["host 'h'"]);
    redacted("ALTER SERVER s OPTIONS (ADD api_key 'Pw-srv-2', SET client_secret 'Pw-srv-3')", ['Pw-srv-2', 'Pw-srv-3']);
    redacted("CREATE FOREIGN TABLE ft (a int) SERVER s OPTIONS (table_name 't', access_token 'Pw-ft-1')", ['Pw-ft-1'], ["table_name 't'"]);
    redacted("IMPORT FOREIGN SCHEMA x FROM SERVER s INTO public OPTIONS (password 'Pw-ifs-1')", ['Pw-ifs-1']);
    redacted("ALTER USER MAPPING FOR alice SERVER s OPTIONS (SET U&\"p\\0061ssword\" 'Pw-um-4')", ['Pw-um-4']);
    expect(redactSecrets("CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'h', dbname 'd', port '5432')")).toBeNull();
    expect(redactSecrets("ALTER USER MAPPING FOR alice SERVER s OPTIONS (ADD password_required 'false')")).toBeNull();
  });

  it('subscriptions: every CONNECTION string', () => {
    expect(redacted("CREATE SUBSCRIPTION sub CONNECTION 'host=h dbname=d password=Pw-sub-1' PUBLICATION pub WITH (enabled = false)", ['Pw-sub-1'], ['PUBLICATION pub'])).toBe(
      "CREATE SUBSCRIPTION sub CONNECTION '<redacted>' PUBLICATION pub WITH (enabled = false)",
    );
    redacted("ALTER SUBSCRIPTION sub CONNECTION E'host=h password=Pw\\x2dsub-2'", ['Pw\\x2dsub-2', 'sub-2']);
    // A subscription named like the keyword, and a connection string without a password: still redacted.
    expect(redacted("CREATE SUBSCRIPTION connection CONNECTION 'host=h passfile=/x' PUBLICATION p", ['passfile=/x'])).toBe(
      "CREATE SUBSCRIPTION connection CONNECTION '<redacted>' PUBLICATION p",
    );
  });

  it('settings with credential-like names, anywhere they are set', () => {
    redacted("ALTER DATABASE app SET app.jwt_secret TO 'Pw-set-1'", ['Pw-set-1'], ['app.jwt_secret']);
    redacted("ALTER ROLE api SET pgrst.jwt_secret = 'Pw-set-2'", ['Pw-set-2']);
    redacted("SET myapp.api_key = 'Pw-set-3'", ['Pw-set-3']);
    redacted("SELECT set_config('app.token', 'Pw-set-4', false)", ['Pw-set-4'], ["'app.token'", 'false']);
    redacted("ALTER SYSTEM SET primary_conninfo = 'host=h user=r password=Pw-set-5'", ['Pw-set-5']);
    expect(redactSecrets("SET password_encryption = 'scram-sha-256'")).toBeNull();
    expect(redactSecrets("SET search_path = app, public")).toBeNull();
  });
});

describe('connection strings and dblink', () => {
  it('every argument of dblink_connect, the connection string of dblink / dblink_exec', () => {
    expect(redacted("SELECT dblink_connect('remote', 'host=h dbname=d user=u password=Pw-dbl-1')", ['Pw-dbl-1'])).toBe("SELECT dblink_connect('<redacted>', '<redacted>')");
    redacted("SELECT public.dblink_connect_u('host=h ' || 'password=' || 'Pw-dbl-2')", ['Pw-dbl-2']);
    expect(redacted("SELECT * FROM dblink('host=h password=Pw-dbl-3', 'SELECT id FROM t') AS r(id int)", ['Pw-dbl-3'], ["'SELECT id FROM t'"])).toBe(
      "SELECT * FROM dblink('<redacted>', 'SELECT id FROM t') AS r(id int)",
    );
    redacted("SELECT dblink_exec('dbname=d password=Pw-dbl-4', 'UPDATE t SET a = 1')", ['Pw-dbl-4'], ['UPDATE t SET a = 1']);
    // The SQL sent through dblink is redacted by the same rules.
    expect(redacted("SELECT dblink_exec('remote', 'ALTER ROLE x PASSWORD ''Pw-dbl-5''')", ['Pw-dbl-5'], ["'remote'"])).toBe(
      "SELECT dblink_exec('remote', 'ALTER ROLE x PASSWORD ''<redacted>''')",
    );
  });

  it('bind parameters of a dblink connection are masked', () => {
    const r = redactSecrets('SELECT dblink_connect($1)');
    expect(r?.maskParams).toBe(true);
    expect(r?.text).toBe('SELECT dblink_connect($1)');
  });

  it('any string constant that is a conninfo or URI with a password', () => {
    redacted("INSERT INTO targets VALUES ('postgresql://u:Pw-uri-1@h:5432/db')", ['Pw-uri-1'], ['INSERT INTO targets']);
    redacted("SELECT 'postgres://h/db?sslmode=require&p%61ssword=Pw-uri-2'", ['Pw-uri-2']);
    redacted("SELECT 'mysql://root:Pw-uri-3@db'", ['Pw-uri-3']);
    redacted("UPDATE t SET c = 'host = h  password = ''Pw-ci-1'''", ['Pw-ci-1']);
    redacted("SELECT E'host=h sslpassword=Pw\\x2dci-2'", ['ci-2']);
    expect(redactSecrets("SELECT 'postgresql://u@h/db'")).toBeNull();
    expect(redactSecrets("SELECT 'host=h dbname=d'")).toBeNull();
  });

  it('nested code: DO and function bodies, dynamic SQL', () => {
    const text = redacted(
      "DO $$ BEGIN EXECUTE 'ALTER ROLE x PASSWORD ''Pw-do-1'''; PERFORM dblink_connect('c', 'host=h password=Pw-do-2'); RAISE NOTICE 'done'; END $$",
      ['Pw-do-1', 'Pw-do-2'],
      ["RAISE NOTICE 'done'"],
    );
    expect(text).toBe("DO $$ BEGIN EXECUTE 'ALTER ROLE x PASSWORD ''<redacted>'''; PERFORM dblink_connect('<redacted>', '<redacted>'); RAISE NOTICE 'done'; END $$");
    expect(redacted("CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $b$ SELECT dblink_connect('host=x password=Pw-fn-1') $b$", ['Pw-fn-1'])).toBe(
      "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $b$ SELECT dblink_connect('<redacted>') $b$",
    );
    redacted("CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS 'DECLARE v_password text := ''Pw-fn-2''; BEGIN END'", ['Pw-fn-2']);
    expect(redactSecrets("CREATE FUNCTION h() RETURNS int LANGUAGE sql AS $$ SELECT count(*) FROM users WHERE password IS NULL $$")).toBeNull();
    // Shell commands: an environment assignment and a URI inside other text.
    redacted("COPY t FROM PROGRAM 'PGPASSWORD=Pw-prog-1 psql -h h -c \"copy x to stdout\"'", ['Pw-prog-1'], ['psql -h h']);
    expect(redacted("COPY t FROM PROGRAM 'pg_dump postgresql://u:Pw-prog-2@h/db'", ['Pw-prog-2'])).toBe("COPY t FROM PROGRAM 'pg_dump postgresql://u:<redacted>@h/db'");
  });
});

describe('unparsable text', () => {
  it('is withheld whole when it may carry a secret', () => {
    for (const sql of ["ALTER ROLE bob PASSWORD 'Pw-bad-1", 'ALTER ROLE bob WITH PASSWORD Pw_bad_2', "CREATE SUBSCRIPTION s CONNECTION 'password=Pw-bad-3' PUBLICATION", "ALTER ROLE bob UNENCRYPTED PASSWORD 'Pw-bad-4'"]) {
      const r = redactSecrets(sql);
      expect(r, sql).toEqual({ text: WITHHELD_SECRET, how: 'withheld', maskParams: true, found: ['unparsable'] });
    }
  });

  it('is kept when it cannot carry one', () => {
    expect(redactSecrets('SELEC 1')).toBeNull();
  });

  it('the parse error is cut before the token it names', () => {
    for (const sql of ["ALTER ROLE bob PASSWORD 'Pw-err-1", 'ALTER ROLE bob WITH PASSWORD Pw_err_2']) {
      const a = analyzeSql(sql, { searchPath: ['public'] });
      expect(a.ok).toBe(false);
      const msg = a.ok ? '' : a.error;
      expect(msg).toMatch(/Pw.err/);
      expect(redactParseError(msg)).not.toMatch(/Pw.err/);
      expect(redactParseError(`denied: Warden could not parse the statement (${msg}) and rule x may apply`)).not.toMatch(/Pw.err/);
    }
  });
});

describe('messages about a statement', () => {
  it('PostgreSQL quoting a secret back is cut; other quoted parts stay', () => {
    const sql = "CREATE SUBSCRIPTION s CONNECTION 'host=h password: Pw-msg-1' PUBLICATION \"pub\"";
    const r = redactSecrets(sql);
    expect(redactMessage('invalid connection string syntax: missing "=" after "Pw-msg-1" in connection info string', sql, r)).toBe(
      'invalid connection string syntax: missing "=" after <redacted> in connection info string',
    );
    expect(redactMessage('publication "pub" does not exist', sql, r)).toBe('publication "pub" does not exist');
    const cast = "SELECT 'postgresql://u:Pw-msg-2@h'::int";
    expect(redactMessage('invalid input syntax for type integer: "postgresql://u:Pw-msg-2@h"', cast, redactSecrets(cast))).not.toContain('Pw-msg-2');
    expect(redactMessage('anything "x"', 'SELECT 1', null)).toBe('anything "x"');
    const bad = "ALTER ROLE bob PASSWORD 'Pw-msg-3";
    expect(redactMessage(`unterminated quoted string at or near "'Pw-msg-3" (at character 25)`, bad, redactSecrets(bad))).not.toContain('Pw-msg-3');
  });
});

describe('approval fingerprints of statements with secrets', () => {
  it('are stable (reject mode finds the approved request again) and not the cheap SHA-256', async () => {
    const sql = "ALTER ROLE bob PASSWORD 'Pw-fp-1'";
    const a = await secretStatementFingerprint('app', sql, []);
    expect(await secretStatementFingerprint('app', sql, [])).toBe(a);
    expect(a).toMatch(/^scrypt:[0-9a-f]{64}$/);
    expect(await secretStatementFingerprint('app', "ALTER ROLE bob PASSWORD 'Pw-fp-2'", [])).not.toBe(a);
    expect(await secretStatementFingerprint('other', sql, [])).not.toBe(a);
    expect(a).not.toContain(statementFingerprint('app', sql, []));
  });
});

describe('the statement corpora', () => {
  it('no statement PostgreSQL parses is withheld; every redacted text still parses', () => {
    const sqls: string[] = [];
    for (const f of ['statements.yaml', 'masking-bypass.yaml']) {
      const walk = (x: unknown): void => {
        if (Array.isArray(x)) x.forEach(walk);
        else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) (k === 'sql' && typeof v === 'string' ? sqls.push(v) : walk(v));
      };
      walk(YAML.parse(fs.readFileSync(new URL(`../corpus/${f}`, import.meta.url), 'utf8')));
    }
    expect(sqls.length).toBeGreaterThan(500);
    const redacted: string[] = [];
    for (const sql of sqls) {
      if (!parseStatements(sql).ok) continue;
      const r = redactSecrets(sql);
      if (!r) continue;
      expect(r.how, sql).toBe('redacted');
      expect(parseStatements(r.text).ok, r.text).toBe(true);
      redacted.push(r.text);
    }
    // Only the corpus' dblink calls carry a connection string.
    expect(redacted.every((t) => /dblink/.test(t))).toBe(true);
  });
});

describe('helpers and cost', () => {
  it('names, conninfo, the pre-check', () => {
    for (const n of ['password', 'sslpassword', 'PassWord', 'passfile', 'odbc_PWD', 'jwt_secret', 'access_token', 'api_key', 'apikey', 'credentials']) expect(isSecretName(n), n).toBe(true);
    for (const n of ['user', 'host', 'dbname', 'password_required', 'password_encryption', 'sslkey', 'primary_key']) expect(isSecretName(n), n).toBe(false);
    expect(conninfoKeys("host=h  port = 5432 password='a b\\' c' dbname=d")).toEqual(['host', 'port', 'password', 'dbname']);
    expect(conninfoKeys('BEGIN PERFORM 1; END')).toBeUndefined();
    expect(isSecretConnectionString('host=h password=x')).toBe(true);
    expect(isSecretConnectionString('BEGIN x := 1; password=2; END')).toBe(false);
    expect(mayCarrySecret('SELECT abalance FROM pgbench_accounts WHERE aid = 42')).toBe(false);
    expect(mayCarrySecret("SELECT * FROM orders WHERE status = 'paid' AND id = $1")).toBe(false);
  });

  it('memoizes per analysis object, for the same text only', () => {
    const sql = "ALTER ROLE bob PASSWORD 'Pw-memo-1'";
    const a = analyzeSql(sql, { searchPath: ['public'] });
    const first = redactSecrets(sql, a);
    expect(redactSecrets(sql, a)).toBe(first);
    // Another text with the same analysis object (a memo hit by shape): decided on its own text.
    const other = redactSecrets("ALTER ROLE bob PASSWORD 'Pw-memo-2'", a);
    expect(other?.text).toBe("ALTER ROLE bob PASSWORD '<redacted>'");
    expect(other).not.toBe(first);
  });

  it('costs next to nothing for statements without any of these constructs (no parse)', () => {
    const texts = Array.from({ length: 2000 }, (_, i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${i}`);
    const a = analyzeSql(texts[0]!, { searchPath: ['public'] });
    const time = (f: (t: string) => unknown): number => {
      for (const t of texts) f(t); // warm up
      const t0 = process.hrtime.bigint();
      for (let k = 0; k < 5; k++) for (const t of texts) f(t);
      return Number(process.hrtime.bigint() - t0) / (5 * texts.length);
    };
    const redact = time((t) => redactSecrets(t, a));
    const parse = time((t) => parseStatements(t));
    console.log(`redactSecrets on a statement without secrets: ${redact.toFixed(0)} ns; a parse of it: ${parse.toFixed(0)} ns`);
    // Timings on a shared machine are loose: the point is that no parse happens.
    expect(redact).toBeLessThan(parse / 3);
  });
});

describe('catalog definitions (schema.change)', () => {
  it('function bodies, view definitions, options and expressions', () => {
    const def = {
      kind: 'function',
      definition: "CREATE OR REPLACE FUNCTION public.f()\n RETURNS text\n LANGUAGE sql\nAS $function$ SELECT dblink_connect('host=h password=Pw-def-1') $function$\n",
      options: ['table_name=t', 'access_token=Pw-def-2', 'conn=host=h password=Pw-def-3'],
      view_definition: " SELECT 'postgresql://u:Pw-def-4@h/db'::text AS target;",
      columns: [{ name: 'c', default: "'mysql://root:Pw-def-5@db'::text" }],
      owner: 'alice',
    };
    const out = redactJsonSecrets(def);
    const json = JSON.stringify(out);
    expect(json).not.toMatch(/Pw-def/);
    expect(out.options).toEqual(['table_name=t', 'access_token=<redacted>', 'conn=<redacted>']);
    expect(out.definition).toContain("$function$ SELECT dblink_connect('<redacted>') $function$");
    expect(out.view_definition).toBe(" SELECT '<redacted>'::text AS target;");
    expect(out.columns[0]!.default).toBe("'<redacted>'::text");
    expect(out.owner).toBe('alice');
  });

  it('returns the same object when nothing is redacted', () => {
    const def = { kind: 'table', columns: [{ name: 'password_hash', type: 'text' }], options: ['fillfactor=70'] };
    expect(redactJsonSecrets(def)).toBe(def);
    expect(redactJsonSecrets(null)).toBeNull();
  });
});

describe('the statement auditor records the redacted text', () => {
  const session = {
    id: 's1',
    identity: { name: 'alice', kind: 'human', groups: [] },
    auth: { method: 'password' },
    database: { name: 'app', environment: 'test' },
    wardenSettings: new Map(),
    startupParams: new Map(),
    txStatus: 'I',
  } as unknown as SessionInfo;

  /** Record data as an object, whether the auditor hands over an object or pre-encoded canonical JSON (`{ text }`). */
  const plain = (d: unknown): Record<string, unknown> => {
    const o = d as Record<string, unknown>;
    return typeof o['text'] === 'string' && !('sql' in o) ? (JSON.parse(o['text']) as Record<string, unknown>) : o;
  };

  function recordsOf(stmt: StatementSource, forward: boolean) {
    const out: { type: string; data: Record<string, unknown> }[] = [];
    const audit = {
      onFailure: 'block',
      record: (type: string, data: unknown) => void out.push({ type, data: plain(data) }),
      writeAhead: (type: string, data: unknown) => {
        out.push({ type, data: plain(data) });
        return Promise.resolve(1);
      },
      // The synchronous path (the sqlite store's journal), as the real log takes it when it can.
      writeNow: (type: string, data: unknown) => {
        out.push({ type, data: plain(data) });
        const done = Promise.resolve();
        return { seq: 1, written: done, durable: done };
      },
    } as unknown as AuditLog;
    const auditor = createStatementAuditor({ audit, config: {} as WardenConfig, log: silentLogger() });
    const analysis = analyzeSql(stmt.sql, { searchPath: ['public'] });
    const verdict = forward ? { action: 'forward' as const } : { action: 'error' as const, error: { code: '42601', message: analysis.ok ? 'refused' : analysis.error } };
    return Promise.resolve(auditor.statement(session, stmt, analysis, null, verdict)).then(() => out);
  }

  it('statement.begin: the password is redacted, the bind parameters masked', async () => {
    const recs = await recordsOf({ protocol: 'extended', sql: "SELECT dblink_connect('c', $1), 'postgresql://u:Pw-aud-1@h'", statementName: '', params: [Buffer.from('host=h password=Pw-aud-2')], paramFormats: [0], paramTypes: [] } as unknown as StatementSource, true);
    const json = JSON.stringify(recs);
    expect(json).not.toContain('Pw-aud');
    expect(recs[0]!.data['sql']).toBe(`SELECT dblink_connect(${REDACTED}, $1), ${REDACTED}`);
    expect(recs[0]!.data['params']).toEqual(['<masked>']);
  });

  it('statement.refused of an unparsable text: withheld, and its error cut', async () => {
    const recs = await recordsOf({ protocol: 'simple', sql: "ALTER ROLE bob PASSWORD 'Pw-aud-3" }, false);
    const json = JSON.stringify(recs);
    expect(json).not.toContain('Pw-aud');
    expect(recs[0]!.type).toBe('statement.refused');
    expect(recs[0]!.data['sql']).toBe(WITHHELD_SECRET);
    expect(String(recs[0]!.data['parse_error'])).toContain('unterminated quoted string');
  });
});
