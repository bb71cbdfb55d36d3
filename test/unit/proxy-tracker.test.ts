/**
 * ResponseTracker, pure: pipelined requests matched to their answers, an
 * extended-protocol error skipping to Sync (also when the Sync is sent after
 * the error arrived), refusals by substitution, portals and which Executes it
 * vouches for, hidden Describes, COPY, and the cases where it must give up.
 */
import { describe, expect, it } from 'vitest';
import { CopyViolation, DesyncError, ResponseTracker, SKIPPED, StatementRun } from '../../src/proxy/session/tracker.js';
import type { RowRewriter, StatementOutcome } from '../../src/contract/statement-hooks.js';
import { Outbox, encodeDataRow, encodeError, encodeReadyForQuery, type FieldDescription, type TxStatus } from '../../src/wire/index.js';

function msg(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);
const ParseComplete = msg('1');
const BindComplete = msg('2');
const CloseComplete = msg('3');
const NoData = msg('n');
const PortalSuspended = msg('s');
const complete = (tag: string): Buffer => msg('C', cstr(tag));
const row = (...v: string[]): Buffer => encodeDataRow(v.map((x) => Buffer.from(x)));
const ready = (s: TxStatus): Buffer => encodeReadyForQuery(s);
const error = (code: string, severity: 'ERROR' | 'FATAL' = 'ERROR'): Buffer => encodeError({ severity, code, message: `failure ${code}` });
function rowDescription(...cols: string[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0, cols.length])];
  for (const c of cols) {
    const f = Buffer.alloc(18);
    f.writeInt32BE(16384, 0); // table oid
    f.writeInt16BE(1, 4);
    f.writeInt32BE(25, 6); // text
    f.writeInt16BE(-1, 10);
    f.writeInt32BE(-1, 12);
    parts.push(cstr(c), f);
  }
  return msg('T', Buffer.concat(parts));
}
const paramDescription = msg('t', Buffer.from([0, 0]));

/** Feed upstream messages; returns what the client gets, as type letters (E with its SQLSTATE). */
function feed(t: ResponseTracker, ...msgs: Buffer[]): string[] {
  const out = new Outbox();
  for (const m of msgs) t.onMessage(m[0], m, 0, m.length, out);
  const b = out.takeRange();
  const types: string[] = [];
  if (!b) return types;
  let at = out.rangeStart;
  while (at < out.rangeEnd) {
    const len = b.readInt32BE(at + 1);
    const type = String.fromCharCode(b[at]);
    if (type === 'E') {
      const body = b.subarray(at + 5, at + 1 + len);
      const c = body.indexOf(0x43); // 'C' field
      types.push(`E:${body.toString('latin1', c + 1, body.indexOf(0, c))}`);
    } else if (type === 'D') types.push(`D:${b.toString('utf8', at + 11, at + 1 + len)}`);
    else types.push(type);
    at += 1 + len;
  }
  return types;
}

function listened(): { run: StatementRun; outcomes: StatementOutcome[] } {
  const outcomes: StatementOutcome[] = [];
  return { run: new StatementRun(undefined, (o) => outcomes.push(o)), outcomes };
}

/** A rewriter that upper-cases every value and records the columns it was told about. */
function upper(): { rewriter: RowRewriter; described: FieldDescription[][] } {
  const described: FieldDescription[][] = [];
  return {
    described,
    rewriter: {
      describe: (f) => described.push([...f]),
      rewrite: (_raw, body) => {
        const n = body.readInt16BE(0);
        const vals: Buffer[] = [];
        let at = 2;
        for (let i = 0; i < n; i++) {
          const len = body.readInt32BE(at);
          vals.push(Buffer.from(body.toString('utf8', at + 4, at + 4 + len).toUpperCase()));
          at += 4 + len;
        }
        return encodeDataRow(vals);
      },
    },
  };
}

const INFO = Object.freeze({ sql: 'SELECT 1', paramTypes: [] as number[] });

describe('pipelined requests', () => {
  it('two Parse/Bind/Execute/Sync batches sent before any answer: every answer is attributed in order', () => {
    const t = new ResponseTracker();
    const a = listened();
    const b = listened();
    t.parse('', INFO);
    t.bind('', a.run);
    t.execute('');
    t.sync();
    t.parse('s2', INFO);
    t.bind('', b.run);
    t.execute('');
    t.sync();
    expect(t.pending).toBe(8);
    expect(feed(t, ParseComplete, BindComplete, row('x'), complete('SELECT 1'), ready('I'))).toEqual(['1', '2', 'D:x', 'C', 'Z']);
    expect(a.outcomes).toEqual([{ tags: ['SELECT 1'], rows: 1, error: undefined }]);
    expect(b.outcomes).toEqual([]);
    expect(feed(t, ParseComplete, BindComplete, row('y'), row('z'), complete('SELECT 2'), ready('I'))).toEqual(['1', '2', 'D:y', 'D:z', 'C', 'Z']);
    expect(b.outcomes).toEqual([{ tags: ['SELECT 2'], rows: 2, error: undefined }]);
    expect(t.pending).toBe(0);
    expect(t.lookupStatement('s2')).toBe(INFO);
  });

  it('a simple Query: several result sets, one ReadyForQuery; the transaction status follows', () => {
    const t = new ResponseTracker();
    const q = listened();
    t.query(q.run);
    expect(feed(t, rowDescription('a'), row('1'), complete('SELECT 1'), complete('BEGIN'), ready('T'))).toEqual(['T', 'D:1', 'C', 'C', 'Z']);
    expect(q.outcomes[0].tags).toEqual(['SELECT 1', 'BEGIN']);
    expect(t.txStatus).toBe('T');
  });

  it('an error in a simple Query does not skip: its ReadyForQuery ends it', () => {
    const t = new ResponseTracker();
    const q = listened();
    t.query(q.run);
    t.query(new StatementRun(undefined, undefined));
    expect(feed(t, error('42601'), ready('I'))).toEqual(['E:42601', 'Z']);
    expect(q.outcomes[0].error?.code).toBe('42601');
    expect(t.pending).toBe(1);
    expect(t.skipping).toBe(false);
  });
});

describe('an error in an extended batch skips to Sync', () => {
  it('queued requests up to the Sync are dropped; their statements are reported as not run', () => {
    const t = new ResponseTracker();
    const first = listened();
    const second = listened();
    t.parse('', INFO);
    t.bind('', first.run);
    t.execute('');
    t.parse('', INFO);
    t.bind('', second.run);
    t.execute('');
    t.sync();
    t.query(new StatementRun(undefined, undefined));
    expect(feed(t, ParseComplete, BindComplete, error('23505'))).toEqual(['1', '2', 'E:23505']);
    expect(first.outcomes[0].error?.code).toBe('23505');
    expect(second.outcomes).toEqual([{ tags: [], rows: 0, error: SKIPPED }]);
    expect(t.pending).toBe(2); // the Sync and the Query
    expect(t.skipping).toBe(false);
    expect(feed(t, ready('I'), ready('I'))).toEqual(['Z', 'Z']);
  });

  it('the error arrives before the Sync is sent (a verdict was pending): what is sent until the Sync is never answered', () => {
    const t = new ResponseTracker();
    t.parse('', INFO);
    t.bind('', new StatementRun(undefined, undefined));
    t.execute('');
    expect(feed(t, ParseComplete, BindComplete, error('22012'))).toEqual(['1', '2', 'E:22012']);
    expect(t.skipping).toBe(true);
    expect(t.pending).toBe(0);
    // Sent after the error arrived: PostgreSQL ignores all of it.
    const late = listened();
    t.parse('', INFO);
    t.bind('', late.run);
    t.describe('P', '');
    t.execute('');
    t.query(listened().run);
    expect(t.pending).toBe(0);
    expect(late.outcomes).toEqual([{ tags: [], rows: 0, error: SKIPPED }]);
    t.sync();
    expect(t.skipping).toBe(false);
    expect(feed(t, ready('I'))).toEqual(['Z']); // no DesyncError: exactly one ReadyForQuery
    expect(t.pending).toBe(0);
    // The session goes on.
    const next = listened();
    t.query(next.run);
    expect(feed(t, complete('SELECT 0'), ready('I'))).toEqual(['C', 'Z']);
    expect(next.outcomes).toHaveLength(1);
  });

  it('an Execute sent while skipping is reported as not run', () => {
    const t = new ResponseTracker();
    t.parse('', INFO);
    feed(t, error('42601'));
    expect(t.skipping).toBe(true);
    const r = listened();
    t.executeDecided(r.run, false);
    expect(r.outcomes).toEqual([{ tags: [], rows: 0, error: SKIPPED }]);
  });

  it('an error answering the Sync itself (a deferred constraint at commit) leaves the Sync to its ReadyForQuery', () => {
    const t = new ResponseTracker();
    t.parse('', INFO);
    t.bind('', new StatementRun(undefined, undefined));
    t.execute('');
    t.sync();
    expect(feed(t, ParseComplete, BindComplete, complete('INSERT 0 1'), error('23503'), ready('I'))).toEqual(['1', '2', 'C', 'E:23503', 'Z']);
    expect(t.pending).toBe(0);
    expect(t.skipping).toBe(false);
  });

  it('a FATAL error drops nothing (the session is ending)', () => {
    const t = new ResponseTracker();
    const r = listened();
    t.parse('', INFO);
    t.bind('', r.run);
    t.execute('');
    t.sync();
    expect(feed(t, ParseComplete, BindComplete, error('57P01', 'FATAL'))).toEqual(['1', '2', 'E:57P01']);
    expect(t.pending).toBe(2);
    t.abandon('upstream closed');
    expect(r.outcomes[0].error?.code).toBe('57P01');
    expect(t.pending).toBe(0);
  });
});

describe('refusals by substitution', () => {
  it("the failing Parse's error is replaced by the refusal, and the batch skips to Sync", () => {
    const t = new ResponseTracker();
    const refused = new StatementRun(undefined, undefined, { code: '42501', message: 'denied by rule "x"' });
    const after = listened();
    t.parse('', INFO);
    t.substitute(refused); // in place of the Bind
    t.execute('');
    t.parse('', INFO);
    t.bind('', after.run);
    t.execute('');
    t.sync();
    expect(feed(t, ParseComplete, error('22P02'))).toEqual(['1', 'E:42501']);
    expect(refused.error?.code).toBe('42501');
    expect(after.outcomes[0].error).toBe(SKIPPED);
    expect(feed(t, ready('I'))).toEqual(['Z']);
  });

  it('a refused simple Query: the refusal, then the ReadyForQuery of the added Sync', () => {
    const t = new ResponseTracker();
    const outcomes: StatementOutcome[] = [];
    t.substitute(new StatementRun(undefined, (o) => outcomes.push(o), { code: '42501', message: 'no' }));
    t.sync();
    expect(feed(t, error('22P02'), ready('T'))).toEqual(['E:42501', 'Z']);
    expect(outcomes[0].error?.code).toBe('42501');
    expect(t.txStatus).toBe('T');
  });
});

describe('portals: which Executes the tracker vouches for', () => {
  it('a bound portal is trusted until another statement runs; its own Executes keep it', () => {
    const t = new ResponseTracker();
    t.bind('p', new StatementRun(undefined, undefined));
    expect(t.trusted('p')).toBe(true);
    expect(t.trusted('q')).toBe(false);
    t.execute('p');
    t.execute('p');
    expect(t.trusted('p')).toBe(true);
    t.bind('q', new StatementRun(undefined, undefined));
    t.execute('q'); // another statement ran: p may have been closed and re-opened by it
    expect(t.trusted('q')).toBe(true);
    expect(t.trusted('p')).toBe(false);
    t.query(new StatementRun(undefined, undefined));
    expect(t.trusted('q')).toBe(false);
  });

  it('an Execute decided on its own also makes every other portal untrusted', () => {
    const t = new ResponseTracker();
    t.bind('p', new StatementRun(undefined, undefined));
    t.executeDecided(new StatementRun(undefined, undefined), false);
    expect(t.trusted('p')).toBe(false);
  });

  it('past a Sync, only a Bind the upstream confirmed is trusted', () => {
    const t = new ResponseTracker();
    t.parse('', INFO);
    t.bind('c', new StatementRun(undefined, undefined));
    expect(t.trusted('c')).toBe(true); // same segment: if the Bind fails, the Execute is skipped too
    t.sync();
    expect(t.trusted('c')).toBe(false); // BindComplete not seen yet
    feed(t, ParseComplete, BindComplete);
    expect(t.trusted('c')).toBe(true);
    feed(t, ready('T'));
    expect(t.trusted('c')).toBe(true); // JDBC fetch: the portal lives on in the transaction
    t.execute('c');
    t.sync();
    feed(t, row('1'), PortalSuspended, ready('T'));
    expect(t.trusted('c')).toBe(true);
  });

  it('a failed Bind leaves no trusted portal (an older portal of that name may still exist upstream)', () => {
    const t = new ResponseTracker();
    t.parse('', INFO);
    t.bind('c', new StatementRun(undefined, undefined));
    t.sync();
    feed(t, ParseComplete, error('42P03'), ready('T'));
    expect(t.trusted('c')).toBe(false);
  });

  it('Close, and a refused Bind, forget the portal', () => {
    const t = new ResponseTracker();
    t.bind('a', new StatementRun(undefined, undefined));
    t.bind('b', new StatementRun(undefined, undefined));
    t.close('P', 'a');
    t.dropPortal('b');
    expect(t.trusted('a')).toBe(false);
    expect(t.trusted('b')).toBe(false);
  });

  it('portals end with their transaction: a ReadyForQuery idle forgets those bound before its Sync, not later ones', () => {
    const t = new ResponseTracker();
    t.bind('old', new StatementRun(undefined, undefined));
    t.sync();
    t.bind('new', new StatementRun(undefined, undefined));
    feed(t, BindComplete, ready('I'), BindComplete);
    expect(t.trusted('old')).toBe(false);
    expect(t.trusted('new')).toBe(true);
  });

  it('a portal with a rewriter gets a hidden Describe; its reply is swallowed and the rows are rewritten', () => {
    const t = new ResponseTracker();
    const u = upper();
    const outcomes: StatementOutcome[] = [];
    t.parse('', INFO);
    t.bind('', new StatementRun(u.rewriter, (o) => outcomes.push(o)));
    expect(t.needsDescribe('')).toBe(true);
    t.describe('P', '', true);
    expect(t.needsDescribe('')).toBe(false);
    t.execute('');
    t.sync();
    expect(t.wantsWhole(0x44)).toBe(false); // ParseComplete first
    expect(feed(t, ParseComplete, BindComplete, rowDescription('email'))).toEqual(['1', '2']);
    expect(u.described[0].map((f) => f.name)).toEqual(['email']);
    expect(t.wantsWhole(0x44)).toBe(true);
    expect(feed(t, row('ann'), complete('SELECT 1'), ready('I'))).toEqual(['D:ANN', 'C', 'Z']);
    expect(outcomes[0]).toEqual({ tags: ['SELECT 1'], rows: 1, error: undefined });
  });

  it("a client's own Describe of a trusted portal reaches both the client and the rewriter", () => {
    const t = new ResponseTracker();
    const u = upper();
    t.bind('p', new StatementRun(u.rewriter, undefined));
    t.describe('P', 'p');
    t.execute('p');
    t.sync();
    expect(feed(t, BindComplete, rowDescription('ssn'), row('x'), complete('SELECT 1'), ready('T'))).toEqual(['2', 'T', 'D:X', 'C', 'Z']);
    expect(u.described).toHaveLength(1);
  });

  it('an Execute decided on its own, with a rewriter: the hidden Describe and the rows go to its run', () => {
    const t = new ResponseTracker();
    const u = upper();
    t.bind('c', new StatementRun(undefined, undefined)); // a stale record of another portal of that name
    t.query(new StatementRun(undefined, undefined));
    expect(t.trusted('c')).toBe(false);
    const r = new StatementRun(u.rewriter, undefined);
    t.executeDecided(r, true);
    t.sync();
    expect(feed(t, BindComplete, complete('DECLARE CURSOR'), ready('T'))).toEqual(['2', 'C', 'Z']);
    expect(feed(t, rowDescription('ssn'), row('abc'), PortalSuspended, ready('T'))).toEqual(['D:ABC', 's', 'Z']);
    expect(r.rows).toBe(1);
  });
});

describe('describe, close, COPY', () => {
  it('Describe statement: ParameterDescription and RowDescription or NoData pass; a hidden one is swallowed', () => {
    const t = new ResponseTracker();
    t.parse('s', INFO);
    t.describe('S', 's');
    t.describe('S', 's', true);
    t.close('S', 's');
    t.sync();
    expect(feed(t, ParseComplete, paramDescription, rowDescription('a'), paramDescription, NoData, CloseComplete, ready('I'))).toEqual(['1', 't', 'T', '3', 'Z']);
    expect(t.lookupStatement('s')).toBeUndefined();
  });

  it('COPY out and in through a simple Query pass through; CopyData is streamed', () => {
    const t = new ResponseTracker();
    const r = listened();
    t.query(r.run);
    expect(t.wantsWhole(0x64)).toBe(false);
    expect(feed(t, msg('H', Buffer.from([0, 0, 1, 0, 0])), msg('d', Buffer.from('1\tx\n')), msg('c'), complete('COPY 1'), ready('I'))).toEqual(['H', 'd', 'c', 'C', 'Z']);
    expect(r.outcomes[0].tags).toEqual(['COPY 1']);
    const w = listened();
    t.query(w.run);
    expect(feed(t, msg('G', Buffer.from([0, 0, 1, 0, 0])), complete('COPY 3'), ready('I'))).toEqual(['G', 'C', 'Z']);
    expect(w.outcomes[0].tags).toEqual(['COPY 3']);
  });

  it('extended COPY FROM STDIN the libpq way: the Sync sent with the Execute is ignored by PostgreSQL, so it is dropped', () => {
    const t = new ResponseTracker();
    const r = listened();
    t.parse('', INFO);
    t.bind('', r.run);
    t.execute('');
    t.sync(); // ignored by PostgreSQL while it reads COPY data
    expect(feed(t, ParseComplete, BindComplete, msg('G', Buffer.from([0, 0, 0])))).toEqual(['1', '2', 'G']);
    expect(t.copyIn).toBe(true);
    expect(t.pending).toBe(1); // the execute; the Sync is gone
    t.copyEnd();
    expect(t.copyIn).toBe(false);
    t.sync();
    expect(feed(t, complete('COPY 2'), ready('I'))).toEqual(['C', 'Z']);
    expect(t.pending).toBe(0);
    expect(r.outcomes[0].tags).toEqual(['COPY 2']);
  });

  it('a request sent after a COPY statement and before the client ended the COPY is a violation', () => {
    const t = new ResponseTracker();
    t.query(new StatementRun(undefined, undefined));
    t.query(new StatementRun(undefined, undefined));
    expect(() => feed(t, msg('G', Buffer.from([0, 0, 0])))).toThrow(CopyViolation);
  });

  it('COPY data and CopyDone pipelined behind the COPY statement, then a Query: nothing is dropped', () => {
    const t = new ResponseTracker();
    t.query(new StatementRun(undefined, undefined));
    t.copyEnd();
    t.query(new StatementRun(undefined, undefined));
    expect(feed(t, msg('G', Buffer.from([0, 0, 0])), complete('COPY 1'), ready('I'))).toEqual(['G', 'C', 'Z']);
    expect(t.copyIn).toBe(false);
    expect(feed(t, complete('SELECT 0'), ready('I'))).toEqual(['C', 'Z']);
    expect(t.pending).toBe(0);
  });

  it('ParameterStatus updates the parameters; notices pass through anywhere', () => {
    const t = new ResponseTracker();
    expect(feed(t, msg('S', Buffer.concat([cstr('client_encoding'), cstr('UTF8')])), msg('N', Buffer.from('SNOTICE\0\0')))).toEqual(['S', 'N']);
    expect(t.parameters.get('client_encoding')).toBe('UTF8');
  });
});

describe('losing the thread is an error, never a guess', () => {
  it.each([
    ['BindComplete with no Bind pending', BindComplete],
    ['ReadyForQuery with nothing pending', ready('I')],
    ['a DataRow that belongs to no statement', row('x')],
    ['CommandComplete with nothing pending', complete('SELECT 1')],
  ])('%s → DesyncError', (_what, m) => {
    const t = new ResponseTracker();
    expect(() => feed(t, m)).toThrow(DesyncError);
  });

  it('a ParseComplete where a BindComplete is due → DesyncError', () => {
    const t = new ResponseTracker();
    t.bind('', new StatementRun(undefined, undefined));
    expect(() => feed(t, ParseComplete)).toThrow(DesyncError);
  });
});
