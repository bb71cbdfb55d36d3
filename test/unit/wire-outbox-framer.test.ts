/** The framer cut at every byte boundary, and the outbox's merging of adjacent ranges. */
import { describe, expect, it } from 'vitest';
import { Framer, Outbox, encodeQuery, encodeSync, encodeParse } from '../../src/wire/index.js';

describe('Outbox', () => {
  it('merges adjacent ranges of the same memory into one view, whatever view objects they come as', () => {
    const chunk = Buffer.from('abcdefghij');
    const o = new Outbox();
    o.push(chunk.subarray(0, 3));
    o.pushRange(chunk, 3, 5);
    o.push(chunk.subarray(5, 10));
    const out = o.take()!;
    expect(out.toString()).toBe('abcdefghij');
    expect(out.buffer).toBe(chunk.buffer); // a view, not a copy
    expect(o.take()).toBeNull();
  });

  it('concatenates non-adjacent pieces in order', () => {
    const a = Buffer.from('hello ');
    const b = Buffer.from('world');
    const o = new Outbox();
    o.push(a);
    o.push(b);
    o.pushRange(a, 0, 1);
    expect(o.take()!.toString()).toBe('hello worldh');
  });
});

describe('Outbox.takeRange', () => {
  it('gives one run of one buffer as a range of that same buffer, no view made', () => {
    const arena = Buffer.from('xxabcdefyy');
    const o = new Outbox();
    o.pushRange(arena, 2, 5);
    o.pushRange(arena, 5, 8);
    const b = o.takeRange()!;
    expect(b).toBe(arena);
    expect(b.toString('latin1', o.rangeStart, o.rangeEnd)).toBe('abcdef');
    expect(o.takeRange()).toBeNull();
  });

  it('gives a run that grew past its first view as a view of all of it', () => {
    const arena = Buffer.from('0123456789');
    const o = new Outbox();
    o.push(arena.subarray(0, 4)); // the run starts as this 4-byte view...
    o.pushRange(arena.subarray(4), 0, 6); // ...and grows with a range of another view of the same memory
    const b = o.takeRange()!;
    expect(b.toString('latin1', o.rangeStart, o.rangeEnd)).toBe('0123456789');
  });

  it('joins several pieces into one buffer', () => {
    const o = new Outbox();
    o.push(Buffer.from('ab'));
    o.push(Buffer.from('cd'));
    const b = o.takeRange()!;
    expect(b.toString('latin1', o.rangeStart, o.rangeEnd)).toBe('abcd');
    expect([o.rangeStart, o.rangeEnd]).toEqual([0, 4]);
  });
});

describe('Framer', () => {
  const stream = Buffer.concat([encodeQuery('select 1'), encodeParse('s1', 'select $1', [23]), encodeSync(), encodeQuery('')]);
  const expected = ['Q', 'P', 'S', 'Q'];

  it('frames only the given range of a chunk, at every split into two ranges of one buffer', () => {
    // Like a read arena: other bytes before and after the range must never be read as messages.
    const arena = Buffer.concat([Buffer.from('garbage!'), stream, Buffer.from('more garbage')]);
    const from = 8;
    const to = 8 + stream.length;
    for (let cut = from; cut <= to; cut++) {
      const seen: string[] = [];
      const f = new Framer({ wantsWhole: () => true, onMessage: (t) => void seen.push(String.fromCharCode(t)), onStream: () => undefined });
      f.push(arena, from, cut);
      f.push(arena, cut, to);
      expect(seen, `cut at ${cut}`).toEqual(expected);
      expect(f.buffered).toBe(0);
    }
  });

  it('delivers the same messages whatever the chunk boundaries (every cut point, and byte by byte)', () => {
    const run = (chunks: Buffer[]) => {
      const seen: string[] = [];
      const bodies: string[] = [];
      const f = new Framer({
        wantsWhole: () => true,
        onMessage: (t, buf, start, end) => {
          seen.push(String.fromCharCode(t));
          bodies.push(buf.toString('hex', start, end));
        },
        onStream: () => undefined,
      });
      for (const c of chunks) f.push(c);
      return { seen, bodies };
    };
    const whole = run([stream]);
    expect(whole.seen).toEqual(expected);
    for (let cut = 1; cut < stream.length; cut++) {
      expect(run([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(whole);
    }
    expect(run([...stream].map((b) => Buffer.from([b])))).toEqual(whole);
  });

  it('streams messages it is not asked to hold whole, in pieces that add up', () => {
    const big = Buffer.concat([Buffer.from([0x64]), Buffer.alloc(4), Buffer.alloc(1000, 7)]);
    big.writeInt32BE(1004, 1);
    let bytes = 0;
    let firsts = 0;
    let lasts = 0;
    const f = new Framer({
      wantsWhole: () => false,
      onMessage: () => undefined,
      onStream: (_t, _b, start, end, first, last) => {
        bytes += end - start;
        if (first) firsts++;
        if (last) lasts++;
      },
    });
    for (let i = 0; i < big.length; i += 97) f.push(big.subarray(i, i + 97));
    expect(bytes).toBe(big.length);
    expect([firsts, lasts]).toEqual([1, 1]);
    expect(f.buffered).toBe(0);
  });

  it('rejects a length below 4 and a message over the cap', () => {
    const f = new Framer({ wantsWhole: () => true, onMessage: () => undefined, onStream: () => undefined }, () => 100);
    expect(() => f.push(Buffer.from([0x51, 0, 0, 0, 3]))).toThrow(/invalid message length 3/);
    const g = new Framer({ wantsWhole: () => true, onMessage: () => undefined, onStream: () => undefined }, () => 100);
    expect(() => g.push(Buffer.from([0x51, 0, 0, 1, 0]))).toThrow(/too large/);
  });
});
