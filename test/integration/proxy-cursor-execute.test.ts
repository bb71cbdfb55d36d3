/**
 * Every protocol Execute goes through a decision: an Execute of a portal
 * Warden did not see bound (a SQL cursor, a WITH HOLD cursor, a name reused
 * after its transaction ended) is decided as the equivalent FETCH — masked
 * like a FETCH — or refused; never real values of a masked column. A driver
 * fetching in chunks (JDBC's fetch size) keeps working.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { Wire, type Msg } from '../helpers/raw-wire.js';
import { B, C, D, E, P, Q, S, errorsOf, login, readyN, rowsOf } from '../helpers/raw-batch.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import type { AuditStore } from '../../src/audit/store.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cursor-exec-'));
const dbFile = path.join(dir, 'audit.db');
const keyFile = path.join(dir, 'signing.pem');
fs.writeFileSync(keyFile, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));

const RULES = `sensitive:
  columns:
    public.customers.email: email
    public.customers.ssn: ssn
  key: cursor-test-key-0123456789abcdef
rules:
  - name: mask-pii
    match: {}
    action: mask
audit:
  store: sqlite:${dbFile}
  instance: cursor-test
  signing_key: ${keyFile}
`;

const REAL = ['ann@example.com', 'bo@example.com', 'cy@example.com', 'di@example.com', '123-45-6789', '987-65-4321', '111-22-3333', '222-33-4444'];

let env: TestEnv;
let reader: AuditStore;

beforeAll(async () => {
  env = await startEnv({ yaml: (p) => baseYaml(p, RULES) });
  await direct(env.cluster, 'CREATE TABLE customers (id int PRIMARY KEY, email text, ssn text)');
  await direct(
    env.cluster,
    "INSERT INTO customers VALUES (1, 'ann@example.com', '123-45-6789'), (2, 'bo@example.com', '987-65-4321'), (3, 'cy@example.com', '111-22-3333'), (4, 'di@example.com', '222-33-4444')",
  );
  await direct(env.cluster, 'ALTER TABLE customers OWNER TO warden_svc');
  reader = await openSqliteStore(dbFile, { readOnly: true });
}, 60_000);

afterEach(() => {
  for (const w of Wire.opened) w.destroy();
  Wire.opened.clear();
});

afterAll(async () => {
  await reader?.close();
  await env?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const alice = (): Promise<Wire> => login(env.warden.port, 'alice', PASSWORDS.alice);

/** Send, and read up to `n` ReadyForQuery messages. */
async function send(w: Wire, parts: Buffer[], n: number): Promise<Msg[]> {
  w.write(Buffer.concat(parts));
  return readyN(w, n);
}

/** No real value of a sensitive column in any DataRow. */
function expectNoRealValues(msgs: Msg[]): void {
  for (const row of rowsOf(msgs)) for (const v of row) expect(REAL).not.toContain(v);
}

async function auditSqls(): Promise<string[]> {
  await new Promise((r) => setTimeout(r, 300));
  const out: string[] = [];
  for await (const r of reader.query({ types: ['statement.begin'] })) out.push(String((r.data as { sql?: string }).sql));
  return out;
}

describe('Execute of a portal Warden did not bind', () => {
  it("a SQL cursor: Execute('c', 0) + Sync is decided as FETCH ALL FROM c and masked", async () => {
    const w = await alice();
    const msgs = await send(w, [Q('BEGIN'), Q('DECLARE c CURSOR FOR SELECT email, ssn FROM customers ORDER BY id'), E('c', 0), S()], 3);
    expect(errorsOf(msgs)).toEqual([]);
    expect(rowsOf(msgs)).toHaveLength(4);
    expectNoRealValues(msgs);
    expect(await auditSqls()).toContain('FETCH FORWARD ALL FROM "c"');
  });

  it('a SQL cursor with max rows: FETCH FORWARD n, masked, and again', async () => {
    const w = await alice();
    const msgs = await send(w, [Q('BEGIN'), Q('DECLARE c CURSOR FOR SELECT email, ssn FROM customers ORDER BY id'), E('c', 3), S(), E('c', 3), S()], 4);
    expect(errorsOf(msgs)).toEqual([]);
    expect(msgs.filter((m) => m.type === 's')).toHaveLength(1); // PortalSuspended after the first 3
    expect(rowsOf(msgs)).toHaveLength(4);
    expectNoRealValues(msgs);
  });

  it('a WITH HOLD cursor after COMMIT', async () => {
    const w = await alice();
    const msgs = await send(w, [Q('BEGIN'), Q('DECLARE h CURSOR WITH HOLD FOR SELECT email, ssn FROM customers ORDER BY id'), Q('COMMIT'), E('h', 0), S()], 4);
    expect(errorsOf(msgs)).toEqual([]);
    expect(rowsOf(msgs)).toHaveLength(4);
    expectNoRealValues(msgs);
  });

  it('a SQL cursor described first (Describe portal, then Execute)', async () => {
    const w = await alice();
    const msgs = await send(w, [Q('BEGIN'), Q('DECLARE d CURSOR FOR SELECT email, ssn FROM customers ORDER BY id'), D('P', 'd'), E('d', 0), S()], 3);
    expect(errorsOf(msgs)).toEqual([]);
    expect(msgs.filter((m) => m.type === 'T')).toHaveLength(1); // the client's Describe is answered once
    expect(rowsOf(msgs)).toHaveLength(4);
    expectNoRealValues(msgs);
  });

  it('a portal name reused after its transaction ended (pipelined: the ReadyForQuery is still on its way)', async () => {
    const w = await alice();
    const msgs = await send(
      w,
      [
        Q('BEGIN'),
        P('s1', 'SELECT 1 AS a, 2 AS b'),
        B('p', 's1'),
        E('p', 1),
        S(),
        Q('COMMIT'),
        Q('BEGIN'),
        Q('DECLARE p CURSOR FOR SELECT email, ssn FROM customers ORDER BY id'),
        E('p', 0),
        S(),
      ],
      6,
    );
    expect(errorsOf(msgs)).toEqual([]);
    const rows = rowsOf(msgs);
    expect(rows[0]).toEqual(['1', '2']);
    expect(rows).toHaveLength(5);
    expectNoRealValues(msgs);
  });

  it('a portal name reused after a Close and a DECLARE in the same transaction', async () => {
    const w = await alice();
    const msgs = await send(
      w,
      [Q('BEGIN'), P('', 'SELECT 1 AS a, 2 AS b'), B('q', ''), E('q', 1), C('P', 'q'), S(), Q('DECLARE q CURSOR FOR SELECT email, ssn FROM customers'), E('q', 0), S()],
      4,
    );
    expect(errorsOf(msgs)).toEqual([]);
    expect(rowsOf(msgs)).toHaveLength(5);
    expectNoRealValues(msgs);
  });

  it('a portal replaced by a function that opens a refcursor of the same name is decided, not trusted', async () => {
    await direct(
      env.cluster,
      `CREATE OR REPLACE FUNCTION public.reopen(name text) RETURNS int LANGUAGE plpgsql AS $$
       DECLARE c refcursor := name; BEGIN OPEN c FOR SELECT email, ssn FROM public.customers ORDER BY id; RETURN 1; END $$`,
    );
    const w = await alice();
    const msgs = await send(
      w,
      [Q('BEGIN'), P('', 'SELECT 1 AS a, 2 AS b'), B('r', ''), E('r', 1), C('P', 'r'), P('', "SELECT public.reopen('r')"), B('', ''), E('', 0), E('r', 0), S()],
      2,
    );
    // However the function call itself is judged, the rows of the cursor are never real.
    expectNoRealValues(msgs);
  });

  it('the unnamed portal after another statement ran is refused (0A000), the session goes on', async () => {
    const w = await alice();
    const msgs = await send(w, [Q('BEGIN'), P('', 'SELECT 1'), B('', ''), E('', 1), B('x', ''), E('x', 1), E('', 0), S()], 2);
    const errs = errorsOf(msgs);
    expect(errs).toHaveLength(1);
    expect(errs[0].C).toBe('0A000');
    expect(errs[0].M).toMatch(/unnamed portal/);
    const after = await send(w, [Q('ROLLBACK'), Q('SELECT 7')], 2);
    expect(rowsOf(after)).toEqual([['7']]);
  });
});

describe('portals Warden bound keep working', () => {
  it('JDBC-style fetch: Bind a named portal in a transaction, Execute with max rows, Sync, Execute again later', async () => {
    const w = await alice();
    const first = await send(w, [Q('BEGIN'), P('S_1', 'SELECT id, email FROM customers ORDER BY id'), B('C_1', 'S_1'), D('P', 'C_1'), E('C_1', 2), S()], 2);
    expect(errorsOf(first)).toEqual([]);
    expect(rowsOf(first).map((r) => r[0])).toEqual(['1', '2']);
    expect(first.some((m) => m.type === 's')).toBe(true);
    const second = await send(w, [E('C_1', 2), S()], 1);
    expect(rowsOf(second).map((r) => r[0])).toEqual(['3', '4']);
    // A statement in between: the next chunk is decided as a FETCH, still masked.
    await send(w, [Q('SELECT 1')], 1);
    const third = await send(w, [E('C_1', 2), S()], 1);
    expect(errorsOf(third)).toEqual([]);
    expect(rowsOf(third)).toEqual([]);
    for (const m of [first, second]) expectNoRealValues(m);
    const sqls = await auditSqls();
    expect(sqls.filter((s) => s === 'FETCH FORWARD 2 FROM "C_1"')).toHaveLength(1); // only the chunk after the SELECT 1
    await send(w, [C('P', 'C_1'), S(), Q('COMMIT')], 2);
  });

  it('a named portal Warden bound, described by the client, then executed in chunks: masked under its Bind', async () => {
    const w = await alice();
    const msgs = await send(w, [Q('BEGIN'), P('', 'SELECT id, email, ssn FROM customers ORDER BY id'), B('n', ''), D('P', 'n'), E('n', 3), E('n', 3), S(), Q('COMMIT')], 3);
    expect(errorsOf(msgs)).toEqual([]);
    expect(msgs.filter((m) => m.type === 'T')).toHaveLength(1);
    expect(rowsOf(msgs).map((r) => r[0])).toEqual(['1', '2', '3', '4']);
    expectNoRealValues(msgs);
    expect((await auditSqls()).some((x) => x.includes('FROM "n"'))).toBe(false); // no decision of its own
  });

  it('unnamed portals, statement after statement in one batch (the common case) stay under their Bind', async () => {
    const w = await alice();
    const parts: Buffer[] = [];
    for (let i = 1; i <= 4; i++) parts.push(P('', 'SELECT id, email FROM customers WHERE id = $1'), B('', '', [String(i)]), E('', 0));
    parts.push(S());
    const msgs = await send(w, parts, 1);
    expect(errorsOf(msgs)).toEqual([]);
    expect(rowsOf(msgs).map((r) => r[0])).toEqual(['1', '2', '3', '4']);
    expectNoRealValues(msgs);
  });
});
