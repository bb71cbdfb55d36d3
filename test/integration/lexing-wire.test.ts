/**
 * Warden reads every text as PostgreSQL will: client_encoding and
 * standard_conforming_strings cannot make one statement to Warden two to
 * PostgreSQL. Real psql (through bash, so the exact bytes reach it) and raw
 * protocol sessions; the protected table is checked after every attempt.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEnv, baseYaml, PASSWORDS, type TestEnv } from '../helpers/warden-env.js';
import { run, type RunResult } from '../helpers/psql.js';
import { Wire } from '../helpers/raw-wire.js';
import { errorsOf, extendedMessages, queryMessage, rawLogin, untilReady } from '../helpers/raw-session.js';

const RULES = `rules:
  - name: protect-victim
    match: { statement: [write, drop, truncate, ddl], tables: ["public.victim"] }
    action: deny
    reason: victim is protected
default: allow
`;

let env: TestEnv;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-lexing-'));

beforeAll(async () => {
  env = await startEnv({ yaml: (p) => baseYaml(p, RULES) });
  await env.cluster.query(
    `set role warden_svc;
     create table victim (id int);
     insert into victim values (1), (2), (3);
     create table notes (id serial, body text);`,
    'app',
  );
});

afterAll(async () => {
  await env?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const w of Wire.opened) w.destroy();
  Wire.opened.clear();
  // Nothing of victim may ever change.
  const r = await env.cluster.query('select count(*)::int as n from victim', 'app');
  expect(r.rows[0].n).toBe(3);
});

const bytes = (...parts: (string | number[])[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

let n = 0;
/** psql -c with exactly these bytes as the command (psql sends a -c string as one Query). */
async function psqlBytes(sql: Buffer | Buffer[], extraEnv: Record<string, string> = {}, port = env.warden.port, password = PASSWORDS.alice): Promise<RunResult> {
  const list = Array.isArray(sql) ? sql : [sql];
  const files = list.map((b) => {
    const f = path.join(dir, `q${n++}.sql`);
    fs.writeFileSync(f, b);
    return f;
  });
  const cs = files.map((_, i) => `-c "$(cat "\${F${i}}")"`).join(' ');
  const fileEnv = Object.fromEntries(files.map((f, i) => [`F${i}`, f]));
  return run('bash', ['-c', `psql -X -h 127.0.0.1 -p ${port} -U alice -d app ${cs}`], {
    ...process.env,
    PGPASSWORD: password,
    PGCONNECT_TIMEOUT: '10',
    ...fileEnv,
    ...extraEnv,
  });
}

const evil = (lead: number[], tail = 'DELETE FROM victim'): Buffer => bytes("SELECT E'", lead, [0x5c], `'; ${tail}; -- '`);

describe('multi-byte client encodings', () => {
  it.each([
    ['BIG5', [0xa4]],
    ['SJIS', [0x95]],
    ['GBK', [0x81]],
  ])('%s: a DELETE hidden behind a character whose second byte is a backslash is seen and refused', async (enc, lead) => {
    // Directly, PostgreSQL really reads two statements (a transaction that rolls back shows it).
    const direct = await run('bash', ['-c', `psql -X -h 127.0.0.1 -p ${env.cluster.port} -U warden_svc -d app -c "BEGIN" -c "$(cat "$F")" -c "SELECT count(*) FROM victim" -c "ROLLBACK"`], {
      ...process.env,
      PGPASSWORD: 'svc-Secret-9f8e',
      PGCLIENTENCODING: enc,
      F: (() => {
        const f = path.join(dir, `direct-${enc}.sql`);
        fs.writeFileSync(f, evil(lead));
        return f;
      })(),
    });
    expect(direct.out).toMatch(/DELETE 3/);

    const r = await psqlBytes(evil(lead), { PGCLIENTENCODING: enc });
    expect(r.err).toContain('denied by rule "protect-victim"');
    const drop = await psqlBytes(evil(lead, 'DROP TABLE victim'), { PGCLIENTENCODING: enc });
    expect(drop.err).toContain('denied by rule "protect-victim"');
  });

  it('legitimate text in a legacy encoding is read and stored as PostgreSQL reads it', async () => {
    const latin1 = await psqlBytes(bytes("INSERT INTO notes (body) VALUES ('caf", [0xe9], "') RETURNING body"), { PGCLIENTENCODING: 'LATIN1' });
    expect(latin1.err).toBe('');
    const big5 = await psqlBytes(bytes("INSERT INTO notes (body) VALUES ('", [0xa4, 0x5c], "') RETURNING length(body)"), { PGCLIENTENCODING: 'BIG5' });
    expect(big5.err).toBe('');
    expect(big5.out).toMatch(/\n\s+1\n/);
    const r = await env.cluster.query("select body from notes where body like 'caf%'", 'app');
    expect(r.rows[0].body).toBe('café');
  });

  it('extended protocol: a single statement hiding a DELETE in BIG5 is read as BIG5 and its Bind refused', async () => {
    const { wire, error } = await rawLogin(env.warden.port, 'alice', PASSWORDS.alice, { client_encoding: 'BIG5' });
    expect(error).toBeUndefined();
    // Read as UTF-8, everything from E' to the last quote is one string: WITH x AS (SELECT '...') SELECT 1.
    wire.write(extendedMessages(bytes("WITH x AS (SELECT E'", [0xa4, 0x5c], "' AS c), d AS (DELETE FROM victim RETURNING 1) SELECT c FROM x -- ') SELECT 1")));
    const errs = errorsOf(await untilReady(wire));
    expect(errs[0]?.C).toBe('42501');
    expect(errs[0]?.M).toContain('protect-victim');
    // The session goes on.
    wire.write(queryMessage('SELECT 1'));
    expect(errorsOf(await untilReady(wire))).toEqual([]);
  });

  it('non-ASCII text in an encoding Warden cannot decode is refused with the reason; ASCII still works', async () => {
    const { wire, error } = await rawLogin(env.warden.port, 'alice', PASSWORDS.alice, { client_encoding: 'JOHAB' });
    expect(error).toBeUndefined();
    wire.write(queryMessage(bytes("SELECT '", [0x88, 0x61], "'")));
    const errs = errorsOf(await untilReady(wire));
    expect(errs[0]).toMatchObject({ C: '0A000' });
    expect(errs[0]?.M).toContain('JOHAB');
    wire.write(queryMessage('SELECT 1'));
    expect(errorsOf(await untilReady(wire))).toEqual([]);
  });
});

describe('standard_conforming_strings off', () => {
  const scsEvil = Buffer.from("SELECT 'a\\' , ' ; DELETE FROM victim; -- '", 'latin1');

  it('as a startup option: a text with a backslash is refused, others run', async () => {
    const r = await psqlBytes(scsEvil, { PGOPTIONS: '-c standard_conforming_strings=off' });
    expect(r.err).toContain('standard_conforming_strings');
    const ok = await psqlBytes(Buffer.from("SELECT 'plain' AS v"), { PGOPTIONS: '-c standard_conforming_strings=off' });
    expect(ok.err).toBe('');
    expect(ok.out).toContain('plain');
  });

  it.each([
    ['SET', 'SET standard_conforming_strings = off'],
    ['set_config', "SELECT set_config('standard_conforming_strings', 'off', false)"],
    ['SET in a transaction', 'BEGIN; SET standard_conforming_strings = off'],
  ])('by %s in the session', async (_, set) => {
    const r = await psqlBytes([Buffer.from(set), scsEvil]);
    expect(r.err).toMatch(/standard_conforming_strings/);
  });

  it('pipelined right behind the SET that turns it off', async () => {
    const { wire } = await rawLogin(env.warden.port, 'alice', PASSWORDS.alice);
    wire.write(Buffer.concat([queryMessage('SET standard_conforming_strings = off'), queryMessage(scsEvil)]));
    expect(errorsOf(await untilReady(wire))).toEqual([]);
    const errs = errorsOf(await untilReady(wire));
    expect(errs[0]?.C).toBe('0A000');
  });
});

describe('client_encoding changed in the session', () => {
  it('SET client_encoding then the attack, in separate statements: read in the new encoding', async () => {
    const r = await psqlBytes([Buffer.from("SET client_encoding = 'BIG5'"), evil([0xa4])]);
    expect(r.err).toContain('denied by rule "protect-victim"');
  });

  it('SET NAMES, pipelined in one write with the attack: refused while the change is in flight', async () => {
    const { wire } = await rawLogin(env.warden.port, 'alice', PASSWORDS.alice);
    wire.write(Buffer.concat([queryMessage("SET NAMES 'SJIS'"), queryMessage(evil([0x95]))]));
    expect(errorsOf(await untilReady(wire))).toEqual([]);
    const errs = errorsOf(await untilReady(wire));
    expect(['0A000', '42501']).toContain(errs[0]?.C);
  });

  it('inside a transaction that may roll back: non-ASCII texts wait for the transaction to end', async () => {
    const { wire } = await rawLogin(env.warden.port, 'alice', PASSWORDS.alice);
    wire.write(queryMessage("BEGIN; SET client_encoding = 'BIG5'"));
    expect(errorsOf(await untilReady(wire))).toEqual([]);
    wire.write(queryMessage(evil([0xa4])));
    expect(errorsOf(await untilReady(wire))[0]?.C).toBe('0A000');
    wire.write(queryMessage('ROLLBACK'));
    await untilReady(wire);
    // Rolled back to UTF8: a UTF-8 text with non-ASCII characters runs again.
    wire.write(queryMessage("SELECT 'café'"));
    expect(errorsOf(await untilReady(wire))).toEqual([]);
  });

  it('a DO block that changes it, pipelined with the attack: refused while the change is in flight', async () => {
    const { wire } = await rawLogin(env.warden.port, 'alice', PASSWORDS.alice);
    wire.write(
      Buffer.concat([
        queryMessage("DO $$ BEGIN PERFORM set_config('client_' || 'encoding', 'BIG5', false); END $$"),
        queryMessage(evil([0xa4])),
      ]),
    );
    expect(errorsOf(await untilReady(wire))).toEqual([]);
    expect(['0A000', '42501']).toContain(errorsOf(await untilReady(wire))[0]?.C);
  });
});
