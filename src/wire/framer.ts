/**
 * Streaming framer for typed PostgreSQL v3 messages (everything after startup).
 *
 * Pure over bytes: it is fed chunks and calls its handler. Messages whose type
 * the handler wants whole are delivered as one contiguous view (zero-copy when
 * the message lies inside one chunk); all others are streamed through in pieces,
 * so a huge DataRow or CopyData never has to be held in memory.
 *
 * A handler may return `false` from onMessage to pause: the unprocessed bytes are
 * kept and processing continues on resume(). The caller pauses its socket meanwhile.
 *
 * Views passed to the handler are only valid during the call (the caller may
 * reuse its read buffer); whatever the framer keeps across calls it copies.
 */
import { ProtocolError } from './reader.js';
import { typeName } from './codes.js';

export interface FrameHandler {
  /** Whether messages of this type must be delivered whole to onMessage. */
  wantsWhole(type: number): boolean;
  /**
   * A whole message: bytes [start, end) of `buf`, header included (the body
   * starts at start + 5). Passed as a range so the hot path allocates no views.
   * Return false to pause.
   */
  onMessage(type: number, buf: Buffer, start: number, end: number): boolean | void;
  /** A piece of a streamed message: bytes [start, end) of `buf` (header included in the first piece). */
  onStream(type: number, buf: Buffer, start: number, end: number, first: boolean, last: boolean): void;
}

export class Framer {
  private pending: Buffer | null = null;
  private wholeParts: Buffer[] | null = null;
  private wholeFill = 0;
  private wholeTotal = 0;
  private wholeType = 0;
  private streamType = 0;
  private streamRemaining = 0;
  private paused = false;
  private running = false;

  constructor(
    private readonly handler: FrameHandler,
    /** Largest message length accepted (the int32 length field), per type. */
    private readonly maxLength: (type: number) => number = () => Number.MAX_SAFE_INTEGER,
    /**
     * The message types accepted (non-zero entries), checked as soon as a
     * message's first byte arrives — like PostgreSQL, which answers an invalid
     * type at once instead of waiting for a length it cannot trust (a
     * StartupMessage sent after startup reads as type 0 with a huge length).
     */
    private readonly validTypes?: Uint8Array,
  ) {}

  /** A streamed message is part way through: the bytes passed on so far end inside it. */
  get midMessage(): boolean {
    return this.streamRemaining > 0;
  }

  /** Bytes held that are not yet processed (partial messages, or everything while paused). */
  get buffered(): number {
    return (this.pending?.length ?? 0) + this.wholeFill;
  }

  /** Feed bytes [start, end) of `chunk` (all of it by default). */
  push(chunk: Buffer, start = 0, end = chunk.length): void {
    if (this.pending) {
      const joined = Buffer.concat([this.pending, chunk.subarray(start, end)]);
      this.pending = null;
      this.run(joined, 0, joined.length);
      return;
    }
    this.run(chunk, start, end);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.running) return; // resumed from inside a handler: run() continues
    const p = this.pending;
    this.pending = null;
    if (p) this.run(p, 0, p.length);
  }

  private run(buf: Buffer, start: number, end: number): void {
    this.running = true;
    try {
      this.loop(buf, start, end);
    } finally {
      this.running = false;
    }
  }

  /** Frames bytes [start, len) of `buf`. */
  private loop(buf: Buffer, start: number, len: number): void {
    let pos = start;
    while (pos < len) {
      if (this.paused) {
        this.pending = Buffer.from(buf.subarray(pos, len));
        return;
      }
      if (this.streamRemaining > 0) {
        const n = Math.min(this.streamRemaining, len - pos);
        this.streamRemaining -= n;
        this.handler.onStream(this.streamType, buf, pos, pos + n, false, this.streamRemaining === 0);
        pos += n;
        continue;
      }
      if (this.wholeParts) {
        const n = Math.min(this.wholeTotal - this.wholeFill, len - pos);
        this.wholeParts.push(Buffer.from(buf.subarray(pos, pos + n)));
        this.wholeFill += n;
        pos += n;
        if (this.wholeFill === this.wholeTotal) {
          const raw = Buffer.concat(this.wholeParts, this.wholeTotal);
          this.wholeParts = null;
          this.wholeFill = 0;
          if (this.handler.onMessage(this.wholeType, raw, 0, raw.length) === false) this.paused = true;
        }
        continue;
      }
      const type = buf[pos];
      if (this.validTypes !== undefined && this.validTypes[type] === 0) {
        throw new ProtocolError(`invalid frontend message type ${type}`);
      }
      if (len - pos < 5) {
        this.pending = Buffer.from(buf.subarray(pos, len)); // tiny copy: the chunk may be large
        return;
      }
      const mlen = buf.readInt32BE(pos + 1);
      if (mlen < 4) throw new ProtocolError(`invalid message length ${mlen} for message type ${typeName(type)}`);
      if (mlen > this.maxLength(type)) {
        throw new ProtocolError(`message of type ${typeName(type)} is too large (${mlen} bytes, limit ${this.maxLength(type)})`);
      }
      const total = mlen + 1;
      if (this.handler.wantsWhole(type)) {
        if (len - pos >= total) {
          const start = pos;
          pos += total;
          if (this.handler.onMessage(type, buf, start, pos) === false) this.paused = true;
        } else {
          this.wholeParts = [Buffer.from(buf.subarray(pos, len))];
          this.wholeFill = len - pos;
          this.wholeTotal = total;
          this.wholeType = type;
          pos = len;
        }
      } else {
        const n = Math.min(total, len - pos);
        this.streamType = type;
        this.streamRemaining = total - n;
        this.handler.onStream(type, buf, pos, pos + n, true, n === total);
        pos += n;
      }
    }
  }
}
