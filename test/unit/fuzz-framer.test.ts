/**
 * The streaming message framer (src/wire/framer.ts) fuzzed with fast-check, configured as a
 * session configures its client side: every message whole except CopyData (streamed), small
 * types capped at 10,000 bytes, only frontend types accepted.
 *
 * - any message stream, split at every byte or at random places, inside larger buffers
 *   (read arenas), with pauses and resumes: the same messages come out, with the same
 *   boundaries, and streamed CopyData pieces reassemble; a streamed message is never held;
 * - a bad type byte, a length below 4 or above the cap: ProtocolError, at the chunk that
 *   carries it (a bad type at once, without waiting for a length), after every message before
 *   it and none after;
 * - random bytes: nothing but ProtocolError is ever thrown, and every byte is accounted for.
 *
 * Counts scale with WARDEN_FUZZ_SCALE; a failure prints the seed to replay (WARDEN_FUZZ_SEED).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { F, Framer, ProtocolError } from '../../src/wire/index.js';
import { FUZZ_SEED, fcParams } from '../helpers/fuzz.js';

const SMALL = 10_000;
const MAX = 1 << 20;
const FRONTEND = Object.values(F);
const VALID = new Uint8Array(256);
for (const t of FRONTEND) VALID[t] = 1;
const LARGE = new Set<number>([F.Query, F.FunctionCall, F.Bind, F.Parse, F.CopyData]);
const maxLength = (t: number): number => (LARGE.has(t) ? MAX : SMALL);

interface Msg {
  readonly type: number;
  readonly body: Buffer;
}

function encode(m: Msg): Buffer {
  const b = Buffer.alloc(5 + m.body.length);
  b[0] = m.type;
  b.writeInt32BE(m.body.length + 4, 1);
  m.body.copy(b, 5);
  return b;
}

const body = (max: number): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.uint8Array({ maxLength: Math.min(max, 40) }).map((a) => Buffer.from(a)) },
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max }), fc.nat(255)).map(([n, v]) => Buffer.alloc(n, v)) },
  );
const message: fc.Arbitrary<Msg> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ type: fc.constantFrom(...FRONTEND.filter((t) => !LARGE.has(t))), body: body(300) }) },
  { weight: 3, arbitrary: fc.record({ type: fc.constantFrom(...LARGE), body: body(3000) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant(F.CopyData), body: body(70_000) }) },
  // The limits exactly: the largest small message.
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom(F.Sync, F.Close, F.Describe), body: fc.constant(Buffer.alloc(SMALL - 4, 1)) }) },
);
const messages = fc.array(message, { maxLength: 12 });

/** What came out of a framer: whole and reassembled streamed messages, in order. */
class Collector {
  readonly out: { type: number; bytes: Buffer; streamed: boolean }[] = [];
  private stream: { type: number; parts: Buffer[] } | null = null;
  private whole = 0;
  maxBuffered = 0;
  /** Indexes (among whole messages) whose onMessage returns false (pause). */
  constructor(private readonly pauseAt: ReadonlySet<number> = new Set()) {}
  readonly framer: Framer = new Framer(
    {
      wantsWhole: (t) => t !== F.CopyData,
      onMessage: (t, buf, start, end) => {
        expect(this.stream, 'a whole message inside a streamed one').toBeNull();
        expect(0 <= start && start + 5 <= end && end <= buf.length).toBe(true);
        expect(buf.readInt32BE(start + 1) + 1).toBe(end - start);
        expect(buf[start]).toBe(t);
        this.out.push({ type: t, bytes: Buffer.from(buf.subarray(start, end)), streamed: false });
        return !this.pauseAt.has(this.whole++);
      },
      onStream: (t, buf, start, end, first, last) => {
        expect(0 <= start && start <= end && end <= buf.length).toBe(true);
        if (first) {
          expect(this.stream, 'a new streamed message before the last piece of the previous one').toBeNull();
          expect(buf[start]).toBe(t);
          this.stream = { type: t, parts: [] };
        } else {
          expect(this.stream?.type).toBe(t);
          expect(end - start, 'an empty piece').toBeGreaterThan(0);
        }
        this.stream!.parts.push(Buffer.from(buf.subarray(start, end)));
        if (last) {
          this.out.push({ type: t, bytes: Buffer.concat(this.stream!.parts), streamed: true });
          this.stream = null;
        }
      },
    },
    maxLength,
    VALID,
  );

  push(chunk: Buffer, start?: number, end?: number): void {
    this.framer.push(chunk, start, end);
    this.maxBuffered = Math.max(this.maxBuffered, this.framer.buffered);
  }

  /** Resumes until the framer holds nothing more it could deliver. */
  drain(): void {
    for (let i = 0; i < 1000 && this.framer.buffered > 0; i++) {
      const before = this.framer.buffered;
      this.framer.resume();
      if (this.framer.buffered === before) break;
    }
    this.framer.resume();
  }

  get inStream(): boolean {
    return this.stream !== null;
  }
}

function expectSame(c: Collector, msgs: readonly Msg[]): void {
  expect(c.inStream).toBe(false);
  expect(c.out.length).toBe(msgs.length);
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i]!;
    const o = c.out[i]!;
    expect(o.type).toBe(m.type);
    expect(o.streamed).toBe(m.type === F.CopyData);
    expect(o.bytes.equals(encode(m)), `message ${i} (${String.fromCharCode(m.type)}, ${m.body.length} bytes)`).toBe(true);
  }
  expect(c.framer.buffered).toBe(0);
}

/** Split points of a stream of `len` bytes: sorted, distinct, inside (0, len). */
const cutsOf = (len: number, raw: readonly number[]): number[] => [...new Set(raw.map((x) => (len <= 1 ? 0 : 1 + (x % (len - 1)))))].filter((x) => x > 0).sort((a, b) => a - b);

function pieces(stream: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, stream.length]) {
    out.push(stream.subarray(prev, c));
    prev = c;
  }
  return out;
}

describe(`Framer fuzzed (seed ${FUZZ_SEED})`, () => {
  it('gives the same messages for every split of a stream into two, and byte by byte', () => {
    const small = fc.array(
      fc.record({ type: fc.constantFrom(...FRONTEND), body: fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a)) }),
      { minLength: 1, maxLength: 6 },
    );
    fc.assert(
      fc.property(small, (msgs) => {
        const stream = Buffer.concat(msgs.map(encode));
        for (let cut = 0; cut <= stream.length; cut++) {
          const c = new Collector();
          c.push(stream.subarray(0, cut));
          c.push(stream.subarray(cut));
          expectSame(c, msgs);
        }
        const c = new Collector();
        for (let i = 0; i < stream.length; i++) c.push(stream, i, i + 1);
        expectSame(c, msgs);
      }),
      fcParams(150),
    );
  });

  it('gives the same messages for random splits inside read arenas, with pauses, and never holds a streamed message', () => {
    fc.assert(
      fc.property(
        messages,
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.uniqueArray(fc.nat(12), { maxLength: 4 }),
        fc.array(fc.boolean(), { maxLength: 40 }),
        fc.nat(16),
        (msgs, rawCuts, pauseAt, resumeAfter, pad) => {
          const stream = Buffer.concat(msgs.map(encode));
          const c = new Collector(new Set(pauseAt));
          const parts = pieces(stream, cutsOf(stream.length, rawCuts));
          parts.forEach((p, i) => {
            // Each piece lies inside a larger buffer, between bytes that are not the stream's.
            const arena = Buffer.alloc(p.length + 2 * pad, 0x51);
            p.copy(arena, pad);
            c.push(arena, pad, pad + p.length);
            arena.fill(0xee); // the caller reuses its read buffer: the framer must have copied what it keeps
            if (resumeAfter[i]) c.framer.resume();
          });
          c.drain();
          expectSame(c, msgs);
          // Unpaused, nothing bigger than the largest whole message (or a header) is ever held:
          // a streamed message (CopyData) passes through. (Paused, everything pushed is held.)
          if (pauseAt.length > 0) return;
          const largestWhole = Math.max(5, ...msgs.filter((m) => m.type !== F.CopyData).map((m) => m.body.length + 5));
          expect(c.maxBuffered).toBeLessThanOrEqual(largestWhole);
        },
      ),
      fcParams(1500),
    );
  });

  it('rejects a bad type, a length below 4 or over the cap with ProtocolError, at the chunk that carries it', () => {
    const invalidType = fc.nat(255).filter((t) => VALID[t] === 0);
    const bad = fc.oneof(
      invalidType.map((t) => ({ kind: 'type' as const, header: Buffer.from([t, 0, 0, 0, 8]) })),
      fc.tuple(fc.constantFrom(...FRONTEND), fc.integer({ min: -(2 ** 31), max: 3 })).map(([t, len]) => {
        const h = Buffer.alloc(5);
        h[0] = t;
        h.writeInt32BE(len, 1);
        return { kind: 'length' as const, header: h };
      }),
      fc.constantFrom(...FRONTEND).chain((t) =>
        fc.integer({ min: maxLength(t) + 1, max: 2 ** 31 - 1 }).map((len) => {
          const h = Buffer.alloc(5);
          h[0] = t;
          h.writeInt32BE(len, 1);
          return { kind: 'length' as const, header: h };
        }),
      ),
    );
    fc.assert(
      fc.property(messages, bad, fc.uint8Array({ maxLength: 50 }), fc.array(fc.nat(), { maxLength: 20 }), (msgs, b, junk, rawCuts) => {
        const good = Buffer.concat(msgs.map(encode));
        const stream = Buffer.concat([good, b.header, Buffer.from(junk)]);
        // The byte after which the error must be known: the type byte, or the whole header.
        const knownAt = good.length + (b.kind === 'type' ? 1 : 5);
        const c = new Collector();
        let thrown: unknown;
        let at = 0;
        let end = 0;
        for (const p of pieces(stream, cutsOf(stream.length, rawCuts))) {
          end = at + p.length;
          try {
            c.push(p);
          } catch (e) {
            thrown = e;
            break;
          }
          at = end;
        }
        expect(thrown, 'no error').toBeInstanceOf(ProtocolError);
        expect((thrown as ProtocolError).code).toBe('08P01');
        // Thrown by the chunk that completed what the error needs, not later.
        expect(at).toBeLessThan(knownAt);
        expect(end).toBeGreaterThanOrEqual(knownAt);
        // Every message before the bad one was delivered, none after.
        expectSameMessagesOnly(c, msgs);
      }),
      fcParams(1500),
    );
  });

  it('never throws anything but ProtocolError on random bytes, and accounts for every byte', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 30 }), (bytes, rawCuts) => {
        const stream = Buffer.from(bytes);
        let delivered = 0;
        const f = new Framer(
          {
            wantsWhole: (t) => t !== F.CopyData,
            onMessage: (_t, _b, s, e) => void (delivered += e - s),
            onStream: (_t, _b, s, e) => void (delivered += e - s),
          },
          maxLength,
          VALID,
        );
        let pushed = 0;
        for (const p of pieces(stream, cutsOf(stream.length, rawCuts))) {
          try {
            f.push(p);
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError);
            return;
          }
          pushed += p.length;
          expect(delivered + f.buffered).toBe(pushed);
        }
      }),
      fcParams(3000),
    );
  });
});

/** The messages delivered are exactly `msgs` (the stream's framer may hold more afterwards). */
function expectSameMessagesOnly(c: Collector, msgs: readonly Msg[]): void {
  expect(c.out.length).toBe(msgs.length);
  msgs.forEach((m, i) => expect(c.out[i]!.bytes.equals(encode(m))).toBe(true));
}
