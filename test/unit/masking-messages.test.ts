/**
 * Errors and notices of masked statements (src/masking/messages.ts) and how the tracker
 * attributes them (src/proxy/session/tracker.ts): notices to the statement in flight, at a Sync to the
 * statement that completed last; COPY data through the rewriter.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, initSqlParser } from '../../src/sql/index.js';
import { mayCarryValues, provablyValueFree, recordedMessage, reducedMessage } from '../../src/masking/messages.js';
import { deriveMaskKey } from '../../src/masking/maskers.js';
import { ResponseTracker, StatementRun } from '../../src/proxy/session/tracker.js';
import type { RowRewriter } from '../../src/contract/statement-hooks.js';
import { B, Outbox, decodeErrorFields, encodeErrorLike, encodeReadyForQuery, type PgErrorFields } from '../../src/wire/index.js';

beforeAll(async () => {
  await initSqlParser();
});

const key = deriveMaskKey('k'.repeat(32));
const fake = () => 'fake' as const;

describe('which texts are withheld', () => {
  it('a statement that may see data, not one that cannot', () => {
    const a = (sql: string) => {
      const r = analyzeSql(sql, { searchPath: ['public'] });
      if (!r.ok) throw new Error(r.error);
      return r;
    };
    for (const sql of ['SELECT * FROM notes', 'SELECT lower($1)', "DO $$ BEGIN RAISE NOTICE 'x'; END $$", 'COMMIT', 'END', 'SET CONSTRAINTS ALL IMMEDIATE', 'INSERT INTO t VALUES (1)', 'EXECUTE p', 'ANALYZE t']) {
      expect(mayCarryValues(a(sql), false), sql).toBe(true);
    }
    for (const sql of ['SELECT 1/0', "SET search_path = 'x'", 'SHOW search_path', 'BEGIN', 'ROLLBACK']) expect(mayCarryValues(a(sql), false), sql).toBe(false);
    expect(mayCarryValues(a('SELECT 1'), true)).toBe(true);
  });

  it('only analysis errors for the client text keep their text', () => {
    const e = (f: Partial<PgErrorFields>): PgErrorFields => ({ severity: 'ERROR', code: '42703', message: 'm', ...f });
    expect(provablyValueFree(e({ position: '8' }))).toBe(true);
    expect(provablyValueFree(e({}))).toBe(false); // no position: raised by code or the executor
    expect(provablyValueFree(e({ position: '8', where: 'PL/pgSQL function inline_code_block line 1 at RAISE' }))).toBe(false);
    expect(provablyValueFree(e({ code: '22P02', position: '8' }))).toBe(false);
  });

  it('the client gets the SQLSTATE and a request id; the record masks or withholds the rest', () => {
    const f: PgErrorFields = { severity: 'ERROR', code: '22008', message: 'date field value out of range: 123456789-01-01', detail: 'Key (ssn)=(123-45-6789)', where: 'JSON data, line 1: [Annabel', routine: 'DecodeDateTime' };
    const r = reducedMessage(f, 'w-0123456789ab');
    expect(r).toEqual({ severity: 'ERROR', code: '22008', message: expect.stringContaining('request w-0123456789ab') });
    const rec = recordedMessage(f, 'w-0123456789ab', key, fake).message;
    expect(rec).toBe('[request w-0123456789ab] date field value out of range: #########-##-## (routine DecodeDateTime; detail, context withheld)');
    const raised = recordedMessage({ severity: 'ERROR', code: 'P0001', message: 'Annabel Realname', where: 'PL/pgSQL function inline_code_block line 1 at RAISE' }, 'w-1', key, fake).message;
    expect(raised).not.toContain('Annabel');
    const quoted = recordedMessage({ severity: 'ERROR', code: '22P02', message: 'invalid input syntax for type integer: "Annabel Realname"' }, 'w-2', key, fake).message;
    expect(quoted).not.toContain('Annabel');
  });
});

describe('the tracker attributes notices and COPY data', () => {
  const notice = (message: string): Buffer => encodeErrorLike(B.NoticeResponse, { severity: 'NOTICE', code: '00000', message });
  const complete = (tag: string): Buffer => {
    const body = Buffer.from(`${tag}\0`);
    const h = Buffer.alloc(5);
    h.write('C', 0, 'latin1');
    h.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([h, body]);
  };
  const copyData = (s: string): Buffer => {
    const body = Buffer.from(s);
    const h = Buffer.alloc(5);
    h.write('d', 0, 'latin1');
    h.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([h, body]);
  };
  const copyOut = Buffer.from([0x48, 0, 0, 0, 9, 0, 0, 1, 0, 0]);
  const rewriter = (seen: string[]): RowRewriter => ({
    describe: () => undefined,
    rewrite: (raw) => raw,
    notice: (f) => {
      seen.push(f.message);
      return { ...f, message: 'withheld' };
    },
    copyOut: (format) => seen.push(`copy ${format}`),
    copyData: (_raw, body) => copyData(body.toString().toUpperCase()),
  });
  const run = (t: ResponseTracker, msgs: Buffer[]): Buffer => {
    const out = new Outbox();
    for (const m of msgs) {
      expect(m[0] === B.CopyData ? t.wantsWhole(m[0]) : true).toBe(true);
      t.onMessage(m[0]!, m, 0, m.length, out);
    }
    return out.take() ?? Buffer.alloc(0);
  };
  const notices = (b: Buffer): string[] => {
    const out: string[] = [];
    for (let at = 0; at < b.length; ) {
      const len = b.readInt32BE(at + 1);
      if (b[at] === B.NoticeResponse) out.push(decodeErrorFields(b.subarray(at + 5, at + 1 + len)).message);
      if (b[at] === B.CopyData) out.push(`data ${b.toString('utf8', at + 5, at + 1 + len)}`);
      at += 1 + len;
    }
    return out;
  };

  it('a notice of a simple query goes through its rewriter; COPY data too', () => {
    const t = new ResponseTracker();
    const seen: string[] = [];
    t.query(new StatementRun(rewriter(seen), undefined));
    const out = run(t, [notice('ssn 123-45-6789'), copyOut, copyData('ann\n'), complete('COPY 1'), encodeReadyForQuery('I')]);
    expect(seen).toEqual(['ssn 123-45-6789', 'copy 0']);
    expect(notices(out)).toEqual(['withheld', 'data ANN\n']);
  });

  it('a notice at a Sync (COMMIT of the implicit transaction) goes to the statement that completed last', () => {
    const t = new ResponseTracker();
    const seen: string[] = [];
    t.executeDecided(new StatementRun(rewriter(seen), undefined), false);
    t.sync();
    const out = run(t, [complete('INSERT 0 1'), notice('deferred trigger: Annabel'), encodeReadyForQuery('I')]);
    expect(seen).toEqual(['deferred trigger: Annabel']);
    expect(notices(out)).toEqual(['withheld']);
  });

  it('a statement without a rewriter passes notices unchanged', () => {
    const t = new ResponseTracker();
    t.query(new StatementRun(undefined, undefined));
    expect(notices(run(t, [notice('plain'), complete('SELECT 1'), encodeReadyForQuery('I')]))).toEqual(['plain']);
  });
});
