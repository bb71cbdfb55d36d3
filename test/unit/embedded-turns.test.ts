import { describe, expect, it } from 'vitest';
import { ConversationState, TurnQueue, setConfigSql, startupSettings, turnSettings } from '../../src/embedded/turns.js';
import { F } from '../../src/wire/index.js';

describe('TurnQueue', () => {
  it('grants at once when free, then in arrival order', () => {
    const q = new TurnQueue<string>();
    const got: string[] = [];
    q.request('a', () => got.push('a'));
    q.request('b', () => got.push('b'));
    q.request('c', () => got.push('c'));
    expect(got).toEqual(['a']);
    expect(q.owner).toBe('a');
    expect(q.waiting).toBe(2);
    q.release('a');
    expect(got).toEqual(['a', 'b']);
    q.release('b');
    expect(got).toEqual(['a', 'b', 'c']);
    q.release('c');
    expect(q.owner).toBeNull();
  });

  it('ignores a repeated request and a release by a non-owner; a waiter that leaves is skipped', () => {
    const q = new TurnQueue<string>();
    const got: string[] = [];
    q.request('a', () => got.push('a'));
    q.request('a', () => got.push('a again'));
    q.request('b', () => got.push('b'));
    q.request('b', () => got.push('b again'));
    q.request('c', () => got.push('c'));
    q.release('c'); // c stops waiting
    q.release('x');
    expect(q.owner).toBe('a');
    q.release('a');
    q.release('b');
    expect(got).toEqual(['a', 'b']);
    expect(q.owner).toBeNull();
  });
});

describe('ConversationState', () => {
  const rfq = (s: string): number => s.charCodeAt(0);

  it('is idle after a simple query is answered outside a transaction', () => {
    const c = new ConversationState();
    c.sentStartup();
    expect(c.idle).toBe(false);
    c.ready(rfq('I'));
    expect(c.idle).toBe(true);
    c.sent(F.Query);
    expect(c.idle).toBe(false);
    c.ready(rfq('I'));
    expect(c.idle).toBe(true);
  });

  it('is not idle inside a transaction or a failed one', () => {
    const c = new ConversationState();
    c.sent(F.Query);
    c.ready(rfq('T'));
    expect(c.idle).toBe(false);
    c.sent(F.Query);
    c.ready(rfq('E'));
    expect(c.idle).toBe(false);
    c.sent(F.Query);
    c.ready(rfq('I'));
    expect(c.idle).toBe(true);
  });

  it('keeps an extended batch open until its Sync is answered, and counts pipelined Syncs', () => {
    const c = new ConversationState();
    for (const t of [F.Parse, F.Bind, F.Describe, F.Execute, F.Sync, F.Parse, F.Bind, F.Execute, F.Sync]) c.sent(t);
    expect(c.outstanding).toBe(2);
    c.ready(rfq('I'));
    expect(c.idle).toBe(false);
    c.ready(rfq('I'));
    expect(c.idle).toBe(true);
    // A Parse (+ Flush) with no Sync yet: the batch is open though nothing is outstanding.
    c.sent(F.Parse);
    c.sent(F.Flush);
    expect(c.outstanding).toBe(0);
    expect(c.idle).toBe(false);
  });

  it('treats COPY data as part of the running query', () => {
    const c = new ConversationState();
    c.sent(F.Query);
    c.sent(F.CopyData);
    c.sent(F.CopyDone);
    c.ready(rfq('I'));
    expect(c.idle).toBe(true);
  });
});

describe('session settings', () => {
  it('takes startup parameters and -c options, options winning, never user/database/options', () => {
    const s = startupSettings(
      new Map([
        ['user', 'u'],
        ['database', 'd'],
        ['application_name', 'psql'],
        ['search_path', 'a'],
        ['options', '-c warden.identity=alice -c search_path=b --statement-timeout=5s -c x=with\\ space'],
      ]),
    );
    expect(Object.fromEntries(s)).toEqual({
      application_name: 'psql',
      search_path: 'b',
      'warden.identity': 'alice',
      statement_timeout: '5s',
      x: 'with space',
    });
  });

  it('lets what the session SET override its startup settings', () => {
    expect(turnSettings([['search_path', 'a'], ['warden.identity', 'alice']], [['search_path', 'b']])).toEqual([
      ['search_path', 'b'],
      ['warden.identity', 'alice'],
    ]);
    expect(turnSettings([['a', '1']], undefined)).toEqual([['a', '1']]);
  });

  it('quotes names and values as literals', () => {
    expect(setConfigSql("x'y", "it's")).toBe("SELECT pg_catalog.set_config('x''y', 'it''s', false)");
  });
});

describe('copiesFromStdin', () => {
  it('finds COPY ... FROM STDIN in any statement of a query, and nothing else', async () => {
    const { initSqlParser } = await import('../../src/sql/parser.js');
    const { copiesFromStdin } = await import('../../src/embedded/turns.js');
    await initSqlParser();
    expect(copiesFromStdin('COPY t FROM STDIN')).toBe(true);
    expect(copiesFromStdin('select 1; copy public.t (a, b) from stdin with (format csv)')).toBe(true);
    expect(copiesFromStdin('/* c */ CoPy t FROM STDIN')).toBe(true);
    expect(copiesFromStdin('COPY t TO STDOUT')).toBe(false);
    expect(copiesFromStdin("COPY t FROM '/tmp/x'")).toBe(false);
    expect(copiesFromStdin("SELECT 'COPY t FROM STDIN'")).toBe(false);
    expect(copiesFromStdin('COPY t FROM STDIN garbage garbage')).toBe(false);
    expect(copiesFromStdin('SELECT 1')).toBe(false);
  });
});
