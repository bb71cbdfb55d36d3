import { describe, expect, it } from 'vitest';
import { canonicalJson, CanonicalText } from '../../src/audit/canonical.js';
import { membersOf, RecordFields, statementEndText, Template, TemplateData } from '../../src/governance/audit-fields.js';
import { ChainWriter, hashRecord, verifyChain } from '../../src/audit/chain.js';

// Record data built from pre-encoded parts must be exactly canonicalJson of the same object:
// verification re-encodes the parsed data and compares hashes.
describe('audit-fields', () => {
  it('RecordFields equals canonicalJson of the merged object, whatever the key order and overlap', () => {
    const session = { session: 'w-1', identity: 'alice', kind: 'human', database: 'app', environment: undefined, application_name: 'psql "x"' };
    const analysis = { tables: ['public.t', 'é.ü'], reads: ['public.t'], writes: [], classes: ['read'], kinds: ['select'] };
    const decision = { decision: { action: 'allow', rule: null, reason: 'default', matched: [] } };
    const f = new RecordFields([membersOf(session), membersOf(analysis), membersOf(decision)]);
    f.set('sql', "SELECT '\u2028' /* ☃ */").set('protocol', 'simple').set('intent', new CanonicalText('{"ticket":"T-1"}')).set('params', undefined);
    const text = f.text({ sqlstate: '42501', error: 'no', Z: 1, a: [1.5, -0, 1e21] }).text;
    const plain = { ...session, ...analysis, ...decision, sql: "SELECT '\u2028' /* ☃ */", protocol: 'simple', intent: { ticket: 'T-1' }, sqlstate: '42501', error: 'no', Z: 1, a: [1.5, -0, 1e21] };
    expect(text).toBe(canonicalJson(plain));
    expect(canonicalJson(JSON.parse(text))).toBe(text);
  });

  it('a key set twice keeps its last value', () => {
    const f = new RecordFields([membersOf({ a: 1, b: 2 })]);
    f.set('b', 3);
    expect(f.text({ b: 4 }).text).toBe('{"a":1,"b":4}');
  });

  it('statementEndText equals canonicalJson of the completion, with and without optional members', () => {
    const full = { affected: 3, begin_seq: 42, duration_ms: 0.123456, error: 'duplicate key "x"', identity: 'bob', masked: ['public.c.email'], rows: 0, session: 'w-2', sqlstate: '23505', tags: ['INSERT 0 3'] };
    expect(statementEndText({ affected: 3, beginSeq: 42, durationMs: 0.123456, error: full.error, identity: 'bob', masked: full.masked, rows: 0, session: 'w-2', sqlstate: '23505', tags: full.tags }).text).toBe(canonicalJson(full));
    const bare = { begin_seq: 1, duration_ms: 2, identity: 'i', rows: 5, session: 's' };
    expect(statementEndText({ beginSeq: 1, durationMs: 2, identity: 'i', rows: 5, session: 's', tags: [] }).text).toBe(canonicalJson(bare));
  });

  it('records sealed from pre-encoded data verify like any other', () => {
    const w = new ChainWriter({ instance: 'x' });
    const f = new RecordFields([membersOf({ identity: 'alice' })]).set('sql', 'SELECT 1');
    const sealed = [w.seal('statement.begin', f.text().text, new Date(0).toISOString()), w.seal('statement.end', statementEndText({ beginSeq: 1, durationMs: 1, identity: 'alice', rows: 1, session: 's', tags: ['SELECT 1'] }).text, new Date(1).toISOString())];
    const records = sealed.map((s) => JSON.parse(s.line));
    for (const r of records) expect(hashRecord(r)).toBe(r.hash);
    expect(verifyChain(records).ok).toBe(true);
    // The journal line is the record's canonical JSON, hash included.
    expect(sealed[0].line).toBe(`${canonicalJson(records[0])}\n`);
  });

  it('a template filled with a run\'s values equals the record built in full', () => {
    const fixed = () => new RecordFields([membersOf({ session: 'w-1', identity: 'al"ice', tables: ['public.t'] })]).set('protocol', 'extended').set('intent', new CanonicalText('{}'));
    const t = new Template(fixed(), ['params', 'sql']);
    for (const [params, sql] of [[['1', null, '\\x00ff'], 'SELECT $1, $2, $3'], [[], "SELECT 'é\u0001\n'"]] as const) {
      const filled = t.fill([canonicalJson([...params]), JSON.stringify(sql)]).text;
      expect(filled).toBe(fixed().set('params', [...params]).set('sql', sql).text().text);
      expect(canonicalJson(JSON.parse(filled))).toBe(filled);
    }
    // Anything beyond the slots (a refusal's SQLSTATE, a catalog error) takes the general way.
    const d = new TemplateData(t, ['[]', '"SELECT 1"'], () => fixed().set('params', []).set('sql', 'SELECT 1'));
    expect(d.text({ sqlstate: '58030' }).text).toBe(canonicalJson({ session: 'w-1', identity: 'al"ice', tables: ['public.t'], protocol: 'extended', intent: {}, params: [], sql: 'SELECT 1', sqlstate: '58030' }));
  });
});
