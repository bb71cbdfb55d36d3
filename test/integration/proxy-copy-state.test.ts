/**
 * Messages sent while the upstream reads COPY data: PostgreSQL ignores Sync
 * and Flush then, and swallows any other message as the COPY's error. Warden
 * must never attribute the answers of a later statement to a message the
 * upstream swallowed (a masked result would go out under another statement's
 * verdict): a non-COPY message during COPY FROM STDIN gets FATAL 08P01, and
 * the extended-protocol COPY of libpq-style clients (Sync sent with the
 * Execute, ignored, and another after CopyDone) works.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { Wire, message, parseErrorFields } from '../helpers/raw-wire.js';
import { B, D, E, P, Q, S, errorsOf, login, readyN, rowsOf, shapeOf } from '../helpers/raw-batch.js';

const RULES = `sensitive:
  columns:
    public.customers.ssn: ssn
  key: copy-test-key-0123456789abcdef
rules:
  - name: mask-customers
    match: { tables: [public.customers] }
    action: mask
`;

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv({ yaml: (p) => baseYaml(p, RULES) });
  for (const s of [
    'CREATE TABLE t (id int, v text)',
    'CREATE TABLE customers (id int PRIMARY KEY, ssn text)',
    "INSERT INTO customers VALUES (1, '123-45-6789')",
    'ALTER TABLE t OWNER TO warden_svc',
    'ALTER TABLE customers OWNER TO warden_svc',
  ])
    await direct(env.cluster, s);
}, 60_000);

afterEach(() => {
  for (const w of Wire.opened) w.destroy();
  Wire.opened.clear();
});

afterAll(async () => {
  await env?.stop();
});

const copyData = (s: string): Buffer => message('d', Buffer.from(s));
const copyDone = (): Buffer => message('c');

describe('COPY FROM STDIN', () => {
  it('a Query sent during COPY never takes the answers of the next statement (FATAL 08P01; never real values)', async () => {
    const w = await login(env.warden.port, 'alice', PASSWORDS.alice);
    w.write(Buffer.concat([Q('COPY t FROM STDIN'), Q('SELECT 1')]));
    const msgs = [];
    for (;;) {
      try {
        msgs.push(await w.read(1_000));
      } catch {
        break;
      }
    }
    if (!w.closed) {
      w.write(Q('SELECT ssn FROM customers'));
      try {
        for (;;) msgs.push(await w.read(1_000));
      } catch {
        /* closed or quiet */
      }
    }
    for (const r of rowsOf(msgs)) expect(r).not.toContain('123-45-6789');
    const fatal = msgs.filter((m) => m.type === 'E').map((m) => parseErrorFields(m.body)).find((f) => f.S === 'FATAL');
    expect(fatal?.C).toBe('08P01');
  });

  it('a Query sent after the COPY started: FATAL 08P01 from Warden, before it goes anywhere', async () => {
    const w = await login(env.warden.port, 'alice', PASSWORDS.alice);
    w.write(Q('COPY t FROM STDIN'));
    expect((await w.read()).type).toBe('G');
    const t0 = Date.now();
    w.write(Q('SELECT ssn FROM customers'));
    const e = await w.readError();
    expect(Date.now() - t0).toBeLessThan(500);
    expect(e.S).toBe('FATAL');
    expect(e.C).toBe('08P01');
    expect(e.M).toBe('unexpected message type 0x51 during COPY from stdin');
    expect(await w.closedWithin(1_000)).toBe(true);
  });

  it('simple protocol: COPY data, CopyDone, and the session goes on (masked)', async () => {
    const w = await login(env.warden.port, 'alice', PASSWORDS.alice);
    w.write(Q('COPY t FROM STDIN'));
    expect((await w.read()).type).toBe('G');
    w.write(Buffer.concat([copyData('1\ta\n'), copyData('2\tb\n'), copyDone()]));
    expect(shapeOf(await readyN(w))).toBe('C Z:I');
    w.write(Q('SELECT ssn FROM customers'));
    const rows = rowsOf(await readyN(w));
    expect(rows).toHaveLength(1);
    expect(rows[0][0]).not.toBe('123-45-6789');
  });

  it('pipelined: COPY, its data and CopyDone, then a Query, all in one write', async () => {
    const w = await login(env.warden.port, 'alice', PASSWORDS.alice);
    w.write(Buffer.concat([Q('COPY t FROM STDIN'), copyData('3\tc\n'), copyDone(), Q('SELECT ssn FROM customers')]));
    const msgs = await readyN(w, 2);
    expect(shapeOf(msgs)).toBe('G C Z:I T D C Z:I');
    expect(rowsOf(msgs)[0][0]).not.toBe('123-45-6789');
  });

  it('extended protocol the libpq way: Parse/Bind/Describe/Execute/Sync, the data, CopyDone, Sync (the first Sync is ignored)', async () => {
    const w = await login(env.warden.port, 'alice', PASSWORDS.alice);
    w.write(Buffer.concat([P('', 'COPY t FROM STDIN'), B('', ''), D('P', ''), E('', 0), S()]));
    const head = [];
    for (;;) {
      const m = await w.read();
      head.push(m.type);
      if (m.type === 'G') break;
    }
    expect(head).toEqual(['1', '2', 'n', 'G']);
    w.write(Buffer.concat([copyData('4\td\n'), copyDone(), S()]));
    expect(shapeOf(await readyN(w))).toBe('C Z:I');
    w.write(Q('SELECT ssn FROM customers'));
    const after = await readyN(w);
    expect(errorsOf(after)).toEqual([]);
    expect(rowsOf(after)[0][0]).not.toBe('123-45-6789');
  });
});
