import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  ChainWriter,
  type Checkpoint,
  GENESIS,
  type JsonValue,
  type VerifyReport,
  canonicalJson,
  hashRecord,
  keyIdOf,
  signCheckpoint,
  verifyChain,
  verifyCheckpointSignature,
} from '../../src/audit/index.js';

const INSTANCE = 'warden-eu-1';
const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
const other = crypto.generateKeyPairSync('ed25519');

function makeChain(n: number, instance = INSTANCE): AuditRecord[] {
  const w = new ChainWriter({ instance });
  const out: AuditRecord[] = [];
  for (let i = 1; i <= n; i++) {
    out.push(
      w.append(i % 3 === 0 ? 'query.denied' : 'query.allowed', { user: `u${i % 7}`, sql: `select ${i}`, rows: i * 2 }, new Date(T0 + i * 1000)),
    );
  }
  return out;
}

/** Fresh deep copy of a 100-record chain. */
const BASE = makeChain(100);
const chain = (): AuditRecord[] => structuredClone(BASE);
const bySeq = (recs: AuditRecord[], seq: number): AuditRecord => recs.find((r) => r.seq === seq)!;
const rehash = (r: AuditRecord): void => {
  r.hash = hashRecord(r);
};
const summary = (rep: VerifyReport): [number | null, number, string][] =>
  rep.problems.map((p) => [p.seq, p.index, p.kind]);

describe('canonicalJson', () => {
  it('sorts keys at every level and emits no whitespace', () => {
    const v: JsonValue = { b: 1, a: { d: [3, { z: true, y: null }], c: 'x' }, ' ': [] };
    expect(canonicalJson(v)).toBe('{" ":[],"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}');
  });

  it('is independent of insertion order and keeps array order', () => {
    expect(canonicalJson({ x: [3, 1, 2], y: { q: 1, p: 2 } })).toBe(canonicalJson({ y: { p: 2, q: 1 }, x: [3, 1, 2] }));
    expect(canonicalJson([3, 1, 2])).toBe('[3,1,2]');
  });

  it('orders keys by UTF-16 code units, not code points or locale', () => {
    // Code-point order would put U+1F600 after U+FFFF; locale order would put "a" before "Z".
    const keys = ['\uFFFF', 'é', '\u{1F600}', 'a', 'Z'];
    const obj: Record<string, JsonValue> = {};
    for (const k of keys) obj[k] = 1;
    expect(canonicalJson(obj)).toBe('{"Z":1,"a":1,"é":1,"\u{1F600}":1,"\uFFFF":1}');
  });

  it('encodes strings as JSON.stringify does, including escapes and lone surrogates', () => {
    expect(canonicalJson('a"b\\c\n\u0001é')).toBe('"a\\"b\\\\c\\n\\u0001é"');
    expect(canonicalJson('\uD800')).toBe('"\\ud800"');
    expect(canonicalJson({ '\n': 'k' })).toBe('{"\\n":"k"}');
  });

  it('encodes numbers canonically', () => {
    expect(canonicalJson([0, -0, 1.5, 0.1, -7, 1e21, 1e-7, 2 ** 53])).toBe('[0,0,1.5,0.1,-7,1e+21,1e-7,9007199254740992]');
  });

  it('rejects non-finite numbers anywhere', () => {
    expect(() => canonicalJson(NaN)).toThrow(/non-finite number NaN at \$/);
    expect(() => canonicalJson({ a: [1, Infinity] })).toThrow(/Infinity at \$\.a\[1\]/);
    expect(() => canonicalJson({ a: { b: -Infinity } })).toThrow(TypeError);
  });

  it('drops undefined members but rejects other non-JSON values', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(() => canonicalJson([1, undefined] as unknown as JsonValue)).toThrow(/undefined array element/);
    expect(() => canonicalJson({ d: new Date(0) } as unknown as JsonValue)).toThrow(/Date/);
    expect(() => canonicalJson({ m: new Map() } as unknown as JsonValue)).toThrow(/Map/);
    expect(() => canonicalJson(10n as unknown as JsonValue)).toThrow(/bigint/);
    const cyclic: Record<string, JsonValue> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/cyclic/);
    // A repeated (non-cyclic) reference is fine.
    const shared = { k: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"k":1},"b":{"k":1}}');
  });
});

describe('ChainWriter and hashRecord', () => {
  it('links records from GENESIS and hashes their canonical encoding', () => {
    const recs = chain();
    expect(recs[0].seq).toBe(1);
    expect(recs[0].prev).toBe(GENESIS);
    expect(recs[0].ts).toBe(new Date(T0 + 1000).toISOString());
    for (let i = 1; i < recs.length; i++) {
      expect(recs[i].seq).toBe(i + 1);
      expect(recs[i].prev).toBe(recs[i - 1].hash);
    }
    const r = recs[4];
    const expected = crypto
      .createHash('sha256')
      .update(canonicalJson({ seq: r.seq, ts: r.ts, instance: r.instance, type: r.type, data: r.data, prev: r.prev }))
      .digest('hex');
    expect(r.hash).toBe(expected);
    expect(hashRecord({ ...r, data: { ...r.data, rows: 0 } })).not.toBe(r.hash);
  });

  it('rejects non-JSON data without advancing the chain, and detaches data', () => {
    const w = new ChainWriter({ instance: INSTANCE });
    const data: Record<string, JsonValue> = { n: 1 };
    const first = w.append('t', data);
    data.n = 2;
    expect(first.data).toEqual({ n: 1 });
    expect(() => w.append('t', { bad: NaN })).toThrow(/non-finite/);
    expect(w.head).toEqual({ seq: 1, hash: first.hash });
    expect(w.append('t', { a: undefined, b: 2 }).data).toEqual({ b: 2 });
  });

  it('continues a chain from `last`', () => {
    const recs = chain();
    const last = recs[99];
    const w = new ChainWriter({ instance: INSTANCE, last: { seq: last.seq, hash: last.hash } });
    const next = w.append('query.allowed', { x: 1 }, new Date(T0 + 101_000));
    expect(next.seq).toBe(101);
    expect(next.prev).toBe(last.hash);
    expect(verifyChain([...recs, next]).ok).toBe(true);
    // Verifying only the continuation needs the start point...
    expect(verifyChain([next], { startAfter: { seq: 100, hash: last.hash } })).toEqual({
      ok: true,
      records: 1,
      lastSeq: 101,
      problems: [],
    });
    // ...without it the missing head is reported.
    expect(summary(verifyChain([next]))).toEqual([
      [101, 0, 'seq-gap'],
      [101, 0, 'broken-link'],
    ]);
  });

  it('validates its options', () => {
    expect(() => new ChainWriter({ instance: '' })).toThrow();
    expect(() => new ChainWriter({ instance: 'i', last: { seq: -1, hash: GENESIS } })).toThrow();
    expect(() => new ChainWriter({ instance: 'i', last: { seq: 3, hash: 'abc' } })).toThrow();
  });
});

describe('verifyChain', () => {
  it('accepts an untouched 100-record chain, also as a generator', () => {
    const rep = verifyChain(chain());
    expect(rep).toEqual({ ok: true, records: 100, lastSeq: 100, problems: [] });
    function* stream(): Generator<AuditRecord> {
      yield* chain();
    }
    expect(verifyChain(stream(), { instance: INSTANCE }).ok).toBe(true);
    expect(verifyChain([])).toEqual({ ok: true, records: 0, lastSeq: 0, problems: [] });
  });

  it('detects an edited field exactly at that record', () => {
    const recs = chain();
    bySeq(recs, 50).data.user = 'mallory';
    const rep = verifyChain(recs);
    expect(rep.ok).toBe(false);
    expect(summary(rep)).toEqual([[50, 49, 'hash-mismatch']]);
    expect(rep.problems[0].message).toMatch(/^record 50: stored hash [0-9a-f]{12}… does not match its content .*edited\?/);
  });

  it('detects an edited record whose hash was recomputed at the next link', () => {
    const recs = chain();
    const r = bySeq(recs, 50);
    r.type = 'query.allowed';
    r.data.sql = 'select 1';
    rehash(r);
    const rep = verifyChain(recs);
    expect(summary(rep)).toEqual([[51, 50, 'broken-link']]);
    expect(rep.problems[0].message).toContain('record 50');
  });

  it('detects a deleted record at the following one', () => {
    const recs = chain().filter((r) => r.seq !== 30);
    const rep = verifyChain(recs);
    expect(summary(rep)).toEqual([
      [31, 29, 'seq-gap'],
      [31, 29, 'broken-link'],
    ]);
    expect(rep.problems[0].message).toContain('from 29 to 31');
    expect(rep.records).toBe(99);
  });

  it('detects an inserted forged record even when it is correctly hashed and linked', () => {
    const recs = chain();
    const r40 = bySeq(recs, 40);
    const body = { seq: 41, ts: r40.ts, instance: INSTANCE, type: 'query.allowed', data: { user: 'ghost' }, prev: r40.hash };
    const forged: AuditRecord = { ...body, hash: hashRecord(body) };
    recs.splice(40, 0, forged);
    const rep = verifyChain(recs);
    expect(summary(rep)).toEqual([
      [41, 41, 'duplicate-seq'],
      [41, 41, 'broken-link'],
    ]);
  });

  it('detects swapped records', () => {
    const recs = chain();
    [recs[9], recs[10]] = [recs[10], recs[9]];
    const rep = verifyChain(recs);
    expect(summary(rep)).toEqual([
      [11, 9, 'seq-gap'],
      [11, 9, 'broken-link'],
      [10, 10, 'seq-out-of-order'],
      [10, 10, 'broken-link'],
      [12, 11, 'broken-link'],
    ]);
  });

  it('detects a missing head', () => {
    const rep = verifyChain(chain().slice(20));
    expect(summary(rep)).toEqual([
      [21, 0, 'seq-gap'],
      [21, 0, 'broken-link'],
    ]);
    expect(rep.problems[1].message).toContain('GENESIS');
  });

  it('reports records of another instance', () => {
    const recs = chain();
    const r = bySeq(recs, 20);
    r.instance = 'warden-us-1';
    rehash(r);
    expect(summary(verifyChain(recs))).toEqual([
      [20, 19, 'wrong-instance'],
      [21, 20, 'broken-link'],
    ]);
    const rep = verifyChain(chain().slice(0, 3), { instance: 'warden-us-1' });
    expect(summary(rep)).toEqual([
      [1, 0, 'wrong-instance'],
      [2, 1, 'wrong-instance'],
      [3, 2, 'wrong-instance'],
    ]);
    expect(rep.problems[0].message).toBe('record 1: belongs to instance "warden-eu-1", expected "warden-us-1"');
  });

  it('never throws on malformed records and reports them as hash-mismatch', () => {
    const recs = chain().slice(0, 5) as unknown[];
    const junk: unknown[] = [
      null,
      42,
      'record',
      [],
      {},
      { ...BASE[5], seq: '6' },
      { ...BASE[5], data: null },
      { ...BASE[5], hash: undefined },
      { ...BASE[5], data: { n: NaN } },
      { ...BASE[5], data: { d: new Date(0) } },
    ];
    for (const j of junk) {
      const input = [...recs, j, ...structuredClone(BASE.slice(6, 8))] as AuditRecord[];
      let rep: VerifyReport | undefined;
      expect(() => {
        rep = verifyChain(input);
      }).not.toThrow();
      expect(rep!.ok).toBe(false);
      expect(rep!.problems[0]).toMatchObject({ index: 5, kind: 'hash-mismatch' });
    }
    const rep = verifyChain([...recs, { ...BASE[5], seq: '6' }] as AuditRecord[]);
    expect(rep.problems).toEqual([
      { seq: null, index: 5, kind: 'hash-mismatch', message: 'record #5 (no valid seq): malformed record (invalid or missing seq)' },
    ]);
  });
});

describe('checkpoints', () => {
  it('signs and verifies checkpoints', () => {
    const recs = chain();
    const cp = signCheckpoint(recs[99], privateKey, new Date(T0 + 200_000));
    expect(cp).toMatchObject({ instance: INSTANCE, seq: 100, hash: recs[99].hash, ts: new Date(T0 + 200_000).toISOString() });
    expect(cp.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(cp.keyId).toBe(keyIdOf(publicKey));
    const body = Buffer.from(canonicalJson({ instance: cp.instance, seq: cp.seq, hash: cp.hash, ts: cp.ts }));
    expect(crypto.verify(null, body, publicKey, Buffer.from(cp.signature, 'base64'))).toBe(true);
    expect(verifyCheckpointSignature(cp, publicKey)).toBe(true);
    expect(verifyCheckpointSignature(cp, other.publicKey)).toBe(false);
    const cp50 = signCheckpoint(recs[49], privateKey);
    expect(verifyChain(recs, { checkpoints: [cp50, cp], publicKey })).toEqual({
      ok: true,
      records: 100,
      lastSeq: 100,
      problems: [],
    });
  });

  it('refuses non-Ed25519 signing keys', () => {
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expect(() => signCheckpoint(BASE[0], ec.privateKey)).toThrow(/Ed25519/);
    expect(() => signCheckpoint(BASE[0], publicKey)).toThrow(/Ed25519/);
    expect(verifyCheckpointSignature(signCheckpoint(BASE[0], privateKey), ec.publicKey)).toBe(false);
  });

  it('detects a truncated tail with a checkpoint beyond the last record', () => {
    const recs = chain();
    const cp = signCheckpoint(recs[99], privateKey);
    const cut = recs.slice(0, 80);
    // Without a checkpoint a cut tail is indistinguishable from a shorter log.
    expect(verifyChain(cut).ok).toBe(true);
    const rep = verifyChain(cut, { checkpoints: [cp], publicKey });
    expect(summary(rep)).toEqual([[100, 80, 'truncated']]);
    expect(rep.problems[0].message).toMatch(/checkpoint at seq 100 .*beyond the last record 80; at least 20 record\(s\)/);
  });

  it('detects a fully rewritten tail through a checkpoint', () => {
    const recs = chain();
    const cp60 = signCheckpoint(recs[59], privateKey);
    const cp100 = signCheckpoint(recs[99], privateKey);
    // The attacker edits record 55 and re-hashes and re-links everything after it.
    const w = new ChainWriter({ instance: INSTANCE, last: { seq: 54, hash: recs[53].hash } });
    const rewritten = [...recs.slice(0, 54)];
    for (const r of recs.slice(54)) {
      rewritten.push(w.append(r.type, r.seq === 55 ? { ...r.data, user: 'nobody' } : r.data, new Date(r.ts)));
    }
    expect(verifyChain(rewritten).ok).toBe(true);
    const rep = verifyChain(rewritten, { checkpoints: [cp60, cp100], publicKey });
    expect(summary(rep)).toEqual([
      [60, 59, 'checkpoint-mismatch'],
      [100, 99, 'checkpoint-mismatch'],
    ]);
    expect(rep.problems[0].message).toContain("differs from record 60's hash");
  });

  it('reports altered and foreign-key signatures', () => {
    const recs = chain();
    const altered: Checkpoint = { ...signCheckpoint(recs[49], privateKey), ts: new Date(T0).toISOString() };
    const foreign = signCheckpoint(recs[59], other.privateKey);
    expect(verifyCheckpointSignature(altered, publicKey)).toBe(false);
    expect(verifyCheckpointSignature(foreign, publicKey)).toBe(false);
    const rep = verifyChain(recs, { checkpoints: [altered, foreign], publicKey });
    expect(summary(rep)).toEqual([
      [50, 49, 'bad-checkpoint-signature'],
      [60, 59, 'bad-checkpoint-signature'],
    ]);
    expect(rep.problems[0].message).toContain('does not verify');
    expect(rep.problems[1].message).toContain(`signed by key ${keyIdOf(other.publicKey)}, expected key ${keyIdOf(publicKey)}`);
    // A foreign key that only lies about its keyId still fails.
    const spoofed = { ...foreign, keyId: keyIdOf(publicKey) };
    expect(verifyCheckpointSignature(spoofed, publicKey)).toBe(false);
    // Without a public key signatures are not checked.
    expect(verifyChain(recs, { checkpoints: [altered, foreign] }).ok).toBe(true);
  });

  it('reports a checkpoint whose hash does not match the record, or whose record is gone', () => {
    const recs = chain();
    const fake = signCheckpoint({ ...recs[49], hash: 'ab'.repeat(32) }, privateKey);
    const rep = verifyChain(recs, { checkpoints: [fake], publicKey });
    expect(summary(rep)).toEqual([[50, 49, 'checkpoint-mismatch']]);
    const cp30 = signCheckpoint(recs[29], privateKey);
    const without30 = recs.filter((r) => r.seq !== 30);
    const rep2 = verifyChain(without30, { checkpoints: [cp30], publicKey });
    expect(summary(rep2)).toEqual([
      [31, 29, 'seq-gap'],
      [31, 29, 'broken-link'],
      [30, 99, 'checkpoint-mismatch'],
    ]);
    expect(rep2.problems[2].message).toContain('no record with seq 30');
  });

  it('reports checkpoints of another instance and malformed checkpoints without throwing', () => {
    const recs = chain();
    const foreignChain = makeChain(10, 'warden-us-1');
    const cp = signCheckpoint(foreignChain[9], privateKey);
    expect(summary(verifyChain(recs, { checkpoints: [cp], publicKey }))).toEqual([[10, 9, 'wrong-instance']]);
    const junk = [null, {}, { ...cp, seq: 'x' }, { ...cp, signature: 5 }] as unknown as Checkpoint[];
    let rep: VerifyReport | undefined;
    expect(() => {
      rep = verifyChain(recs, { checkpoints: junk, publicKey });
    }).not.toThrow();
    expect(rep!.problems.map((p) => [p.seq, p.kind])).toEqual([
      [null, 'checkpoint-mismatch'],
      [null, 'checkpoint-mismatch'],
      [null, 'checkpoint-mismatch'],
      [null, 'checkpoint-mismatch'],
    ]);
    for (const j of junk) expect(verifyCheckpointSignature(j, publicKey)).toBe(false);
  });

  it('checks a checkpoint at the start point of a continued chain', () => {
    const recs = chain();
    const cp = signCheckpoint(recs[79], privateKey);
    const tail = recs.slice(80);
    expect(verifyChain(tail, { startAfter: { seq: 80, hash: recs[79].hash }, checkpoints: [cp], publicKey }).ok).toBe(true);
    const rep = verifyChain(tail, { startAfter: { seq: 80, hash: recs[78].hash }, checkpoints: [cp], publicKey });
    expect(summary(rep)).toEqual([
      [81, 0, 'broken-link'],
      [80, 20, 'checkpoint-mismatch'],
    ]);
  });
});
