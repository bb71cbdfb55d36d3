/**
 * Random frontend message sequences sent to a real Warden (in front of a real PostgreSQL) over
 * real sockets, in each protocol state: before authentication, after it, in a transaction, in
 * the middle of an extended-protocol batch, and during COPY FROM STDIN.
 *
 * Property: Warden never crashes or hangs. Every session either keeps answering like PostgreSQL
 * (ErrorResponse / ReadyForQuery; a closing probe — CopyDone, Sync, `SELECT k` — gets its row
 * and ReadyForQuery), or gets a FATAL ErrorResponse and is closed within 1 s of it (a
 * Terminate may close it without one). A separate probe session keeps answering `SELECT 1`
 * throughout. Counts scale with WARDEN_FUZZ_SCALE; a failure prints the seed to replay.
 */
import pg from 'pg';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { SSL_REQUEST, Wire, cstr, int16, int32, message, parseErrorFields, startupPacket, type ErrorFields } from '../helpers/raw-wire.js';
import { B, C, D, E, H, P, Q, S, login, readyN } from '../helpers/raw-batch.js';
import { FUZZ_SEED, fcParams } from '../helpers/fuzz.js';

const RULES = `
rules:
  - name: no-drop
    match: { statement: [drop, truncate] }
    action: deny
    reason: no destructive DDL through Warden
`;

let env: TestEnv;
let probe: pg.Client;
let probeTimer: NodeJS.Timeout | undefined;
const probeStats = { ok: 0, failed: [] as string[], maxMs: 0 };

async function probeOnce(): Promise<void> {
  const t0 = Date.now();
  try {
    const r = await probe.query('SELECT 1 AS one');
    if (r.rows[0]?.one !== 1) probeStats.failed.push(`unexpected answer ${JSON.stringify(r.rows)}`);
    else probeStats.ok++;
  } catch (e) {
    probeStats.failed.push((e as Error).message);
  }
  probeStats.maxMs = Math.max(probeStats.maxMs, Date.now() - t0);
}

beforeAll(async () => {
  env = await startEnv({ yaml: (p) => baseYaml(p, RULES) });
  await direct(env.cluster, 'CREATE TABLE fz (a int, b text)');
  await direct(env.cluster, 'GRANT ALL ON fz TO warden_svc');
  probe = await env.connect('bob');
  const tick = async (): Promise<void> => {
    await probeOnce();
    probeTimer = setTimeout(() => void tick(), 100);
  };
  void tick();
}, 120_000);

afterAll(async () => {
  if (probeTimer) clearTimeout(probeTimer);
  for (const w of Wire.opened) w.destroy();
  Wire.opened.clear();
  await probe?.end().catch(() => undefined);
  await env?.stop();
});

// ---------------------------------------------------------------------------------------------
// Messages

const pick = <T>(...xs: T[]): fc.Arbitrary<T> => fc.constantFrom(...xs);
const bytes = (max: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const sql = fc.oneof(
  { weight: 6, arbitrary: pick('SELECT 1', 'SELECT a, b FROM fz', 'SELECT $1::int', 'BEGIN', 'COMMIT', 'ROLLBACK', 'SELECT 1/0', '', ' ', 'SELEC', 'DROP TABLE fz', "INSERT INTO fz VALUES (1, 'x')", 'COPY fz FROM STDIN', 'COPY fz TO STDOUT', 'SELECT 1; SELECT 2', 'SAVEPOINT s', 'ROLLBACK TO s', 'DECLARE c CURSOR WITH HOLD FOR SELECT 1', 'FETCH c', 'CLOSE ALL', 'SET search_path = public', 'SELECT pg_sleep(0.001)', 'DISCARD ALL', 'PREPARE p AS SELECT 1', 'EXECUTE p', 'LISTEN ch', 'NOTIFY ch') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
);
const name = pick('', '', 's1', 'p1', 'x');
const param = fc.option(pick('1', 'x', '', '9999999999', '\u0000'), { nil: null });

/** One well-framed frontend message: valid, or a valid type with a body PostgreSQL would reject. */
const wellFramed: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 6, arbitrary: sql.map(Q) },
  { weight: 4, arbitrary: fc.tuple(name, sql, fc.array(pick(0, 23, 25, 1_000_000), { maxLength: 2 })).map(([n, s, t]) => P(n, s, t)) },
  { weight: 4, arbitrary: fc.tuple(name, name, fc.array(param, { maxLength: 2 })).map(([p, s, ps]) => B(p, s, ps)) },
  { weight: 3, arbitrary: fc.tuple(name, pick(0, 0, 1, 2)).map(([p, n]) => E(p, n)) },
  { weight: 2, arbitrary: fc.tuple(pick<'S' | 'P'>('S', 'P'), name).map(([w, n]) => D(w, n)) },
  { weight: 1, arbitrary: fc.tuple(pick<'S' | 'P'>('S', 'P'), name).map(([w, n]) => C(w, n)) },
  { weight: 4, arbitrary: fc.constant(S()) },
  { weight: 2, arbitrary: fc.constant(H()) },
  { weight: 3, arbitrary: bytes(40).map((b) => message('d', b)) },
  { weight: 1, arbitrary: fc.constant(message('d', Buffer.from('1\tx\n2\ty\n'))) },
  { weight: 2, arbitrary: fc.constant(message('c')) },
  { weight: 1, arbitrary: fc.constant(message('f', cstr('client gave up'))) },
  { weight: 1, arbitrary: bytes(20).map((b) => message('F', b)) },
  // A frontend type with a body that is not what it should be (no terminator, short, long).
  { weight: 1, arbitrary: fc.tuple(pick('Q', 'P', 'B', 'E', 'D', 'C', 'S', 'H', 'c', 'f'), bytes(12)).map(([t, b]) => message(t, b)) },
  { weight: 1, arbitrary: fc.constant(Buffer.concat([message('P', Buffer.concat([cstr(''), cstr('SELECT 1'), int16(-1)]))])) },
  { weight: 1, arbitrary: fc.constant(message('B', Buffer.concat([cstr(''), cstr(''), int16(0), int16(1), int32(1000), int16(0)]))) },
);
/** A message that must end the session with FATAL: a bad type, a bad length, startup packets again. */
const fatal: fc.Arbitrary<Buffer> = fc.oneof(
  fc.nat(255)
    .filter((t) => !'BCdcfDEHFPpQSX'.includes(String.fromCharCode(t)))
    .map((t) => Buffer.concat([Buffer.from([t]), int32(4)])),
  fc.tuple(pick('Q', 'S', 'H', 'd'), fc.integer({ min: -5, max: 3 })).map(([t, len]) => Buffer.concat([Buffer.from(t), int32(len)])),
  pick('S', 'H', 'C', 'D', 'c').map((t) => Buffer.concat([Buffer.from(t), int32(50_000), Buffer.alloc(20)])),
  fc.constant(startupPacket({ user: 'alice', database: 'app' })),
  fc.constant(SSL_REQUEST),
  fc.constant(message('p', cstr('password'))),
);
const terminate = fc.constant(message('X'));

type Item = { kind: 'ok' | 'fatal' | 'terminate'; bytes: Buffer };
const item: fc.Arbitrary<Item> = fc.oneof(
  { weight: 60, arbitrary: wellFramed.map((bytes) => ({ kind: 'ok' as const, bytes })) },
  { weight: 1, arbitrary: fatal.map((bytes) => ({ kind: 'fatal' as const, bytes })) },
  { weight: 1, arbitrary: terminate.map((bytes) => ({ kind: 'terminate' as const, bytes })) },
);
/** A sequence of messages, and where to split the bytes into writes. */
const sequence = fc.record({ items: fc.array(item, { minLength: 1, maxLength: 12 }), cuts: fc.array(fc.nat(), { maxLength: 3 }) });
type Sequence = { items: Item[]; cuts: number[] };

async function send(w: Wire, seq: Sequence): Promise<void> {
  const all = Buffer.concat(seq.items.map((i) => i.bytes));
  const cuts = [...new Set(seq.cuts.map((c) => (all.length === 0 ? 0 : c % all.length)))].sort((a, b) => a - b);
  let prev = 0;
  for (const c of [...cuts, all.length]) {
    if (c > prev) w.write(all.subarray(prev, c));
    prev = c;
    await new Promise((r) => setImmediate(r));
  }
}

// ---------------------------------------------------------------------------------------------
// The property

type Outcome = { alive: true } | { alive: false; fatal: ErrorFields | null; closeMs: number };

/**
 * After the sequence: CopyDone (ends a COPY FROM STDIN; ignored otherwise), Sync (ends an
 * extended batch or its error), ROLLBACK (ends a transaction, failed or not), then `SELECT k`.
 * The session is alive when the row comes back.
 */
async function settle(w: Wire, k: number): Promise<Outcome> {
  w.write(Buffer.concat([message('c'), S(), Q('ROLLBACK'), Q(`SELECT ${k} AS k`)]));
  let fatal: ErrorFields | null = null;
  let fatalAt = 0;
  for (;;) {
    let m;
    try {
      m = await w.read(5_000);
    } catch (e) {
      if (!w.closed) throw new Error(`session neither answered nor closed within 5 s: ${(e as Error).message}`);
      return { alive: false, fatal, closeMs: fatal ? Date.now() - fatalAt : 0 };
    }
    if (m.type === 'E') {
      const f = parseErrorFields(m.body);
      if (f.S === 'FATAL' || f.V === 'FATAL') {
        fatal = f;
        fatalAt = Date.now();
        const closed = await w.closedWithin(1_000);
        if (!closed) throw new Error(`FATAL ${f.C} ${f.M} but the session was still open 1 s later`);
        return { alive: false, fatal, closeMs: Date.now() - fatalAt };
      }
    }
    if (m.type === 'D' && m.body.length >= 6 && m.body.readInt16BE(0) === 1) {
      const len = m.body.readInt32BE(2);
      if (len > 0 && m.body.toString('utf8', 6, 6 + len) === String(k)) {
        const rest = await readyN(w, 1, 10_000);
        expect(rest.at(-1)?.type).toBe('Z');
        return { alive: true };
      }
    }
  }
}

const outcomes = { alive: 0, fatal: 0, terminated: 0 };
/**
 * FATALs after only well-framed messages, by code and message (logged). All seen are 08P01:
 * a non-COPY message during COPY FROM STDIN (FATAL in PostgreSQL too), and malformed message
 * bodies, which Warden ends the session for where PostgreSQL raises an ERROR.
 */
const unprovoked = new Map<string, number>();

/** Checks an outcome against what was sent. */
function check(seq: Sequence, o: Outcome): void {
  outcomes[o.alive ? 'alive' : o.fatal ? 'fatal' : 'terminated']++;
  const kinds = seq.items.map((i) => i.kind);
  const firstEnd = kinds.findIndex((k) => k !== 'ok');
  if (o.alive) {
    // Nothing that ends a session was sent... or it was, and the session is gone.
    expect(firstEnd, `the session answered after a message that must end it (${kinds.join(',')})`).toBe(-1);
    return;
  }
  if (o.fatal) {
    if (firstEnd === -1) {
      const key = `${o.fatal.C} ${o.fatal.M}`;
      unprovoked.set(key, (unprovoked.get(key) ?? 0) + 1);
    }
    expect(o.fatal.C, `FATAL ${o.fatal.C}: ${o.fatal.M}`).toMatch(/^(08P01|0A000|57P01|08006)$/);
    return;
  }
  // Closed without a FATAL: only after a Terminate.
  expect(kinds[firstEnd], `closed without an error (${kinds.join(',')})`).toBe('terminate');
}

let k = 0;
async function runAfterLogin(prepare: (w: Wire) => Promise<void>, seqs: Sequence[]): Promise<void> {
  await Promise.all(
    seqs.map(async (seq) => {
      const w = await login(env.warden.port, 'alice', PASSWORDS.alice);
      try {
        await prepare(w);
        await send(w, seq);
        check(seq, await settle(w, ++k));
      } finally {
        w.destroy();
        Wire.opened.delete(w);
      }
    }),
  );
  expect(probeStats.failed).toEqual([]);
}

const sessions = fc.array(sequence, { minLength: 1, maxLength: 3 });

describe(`random frontend messages in every protocol state (seed ${FUZZ_SEED})`, () => {
  it('before authentication: answered or closed, a FATAL closes at once, nothing hangs Warden', async () => {
    const preauth = fc.oneof(
      bytes(60),
      fc.tuple(fc.dictionary(pick('user', 'database', 'options', 'application_name', 'x'), fc.string({ maxLength: 8 }), { maxKeys: 3 }), bytes(30)).map(([p, b]) =>
        Buffer.concat([startupPacket(p), b]),
      ),
      fc.tuple(fc.integer({ min: 0, max: 0x7fffffff }), bytes(16)).map(([v, b]) => Buffer.concat([startupPacket({ user: 'alice', database: 'app' }, v), b])),
      bytes(30).map((b) => Buffer.concat([SSL_REQUEST, SSL_REQUEST, b])),
      fc.tuple(wellFramed, wellFramed).map(([a, b]) => Buffer.concat([startupPacket({ user: 'alice', database: 'app' }), a, b])),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(preauth, { minLength: 1, maxLength: 4 }), async (inputs) => {
        await Promise.all(
          inputs.map(async (input) => {
            const w = await Wire.connect(env.warden.port);
            try {
              w.write(input);
              // Read what comes within a second: authentication requests, an 'N' to SSLRequest, an error.
              const deadline = Date.now() + 1_000;
              let fatalAt = 0;
              while (Date.now() < deadline && !w.closed) {
                const m = await w.read(deadline - Date.now()).catch(() => null);
                if (!m) break;
                if (m.type === 'E' && !fatalAt) fatalAt = Date.now();
              }
              if (fatalAt) expect(await w.closedWithin(1_000), 'an error before authentication, and the connection stayed open').toBe(true);
            } finally {
              w.destroy();
              Wire.opened.delete(w);
            }
          }),
        );
        expect(probeStats.failed).toEqual([]);
      }),
      fcParams(35),
    );
  }, 300_000);

  it('after authentication', async () => {
    await fc.assert(
      fc.asyncProperty(sessions, (seqs) => runAfterLogin(async () => undefined, seqs)),
      fcParams(35),
    );
  }, 300_000);

  it('in a transaction', async () => {
    const begin = async (w: Wire): Promise<void> => {
      w.write(Q('BEGIN; SELECT 1'));
      const msgs = await readyN(w);
      expect(String.fromCharCode(msgs.at(-1)!.body[0])).toBe('T');
    };
    await fc.assert(
      fc.asyncProperty(sessions, (seqs) => runAfterLogin(begin, seqs)),
      fcParams(35),
    );
  }, 300_000);

  it('in the middle of an extended batch (Parse, Bind, Execute sent, no Sync yet)', async () => {
    const midBatch = async (w: Wire): Promise<void> => {
      w.write(Buffer.concat([P('s0', 'SELECT $1::int + 1', [23]), B('', 's0', ['41']), E(''), H()]));
      // ParseComplete, BindComplete, DataRow, CommandComplete (after the Flush), no ReadyForQuery.
      for (const t of ['1', '2', 'D', 'C']) expect((await w.read(5_000)).type).toBe(t);
    };
    await fc.assert(
      fc.asyncProperty(sessions, (seqs) => runAfterLogin(midBatch, seqs)),
      fcParams(35),
    );
  }, 300_000);

  it('during COPY FROM STDIN', async () => {
    const copying = async (w: Wire): Promise<void> => {
      w.write(Q('COPY fz FROM STDIN'));
      expect((await w.read(5_000)).type).toBe('G');
    };
    const copySequence = fc.record({
      items: fc.array(
        fc.oneof(
          { weight: 8, arbitrary: fc.oneof(bytes(40), pick('1\tx\n', '2\t\\N\n', 'x\ty\n', '\\.\n')).map((b) => ({ kind: 'ok' as const, bytes: message('d', b) })) },
          { weight: 1, arbitrary: item },
        ),
        { minLength: 1, maxLength: 12 },
      ),
      cuts: fc.array(fc.nat(), { maxLength: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(copySequence, { minLength: 1, maxLength: 3 }), (seqs) => runAfterLogin(copying, seqs)),
      fcParams(35),
    );
  }, 300_000);

  it('kept the probe session answering SELECT 1 throughout', async () => {
    await probeOnce();
    expect(probeStats.failed).toEqual([]);
    expect(probeStats.ok).toBeGreaterThan(10);
    console.log(`unprovoked FATALs: ${JSON.stringify([...unprovoked])}`);
    console.log(`sessions: ${JSON.stringify(outcomes)}; probe: ${probeStats.ok} answers, slowest ${probeStats.maxMs} ms`);
    // The sequences must mostly leave sessions alive (the interesting case), and sometimes not.
    expect(outcomes.alive).toBeGreaterThan(0.4 * (outcomes.alive + outcomes.fatal + outcomes.terminated));
    expect(outcomes.fatal).toBeGreaterThan(0);
    expect(probeStats.maxMs).toBeLessThan(2_000);
  });
});
