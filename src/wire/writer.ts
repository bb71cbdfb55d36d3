/**
 * A small growable byte writer for building PostgreSQL v3 messages.
 * Pure: no I/O. Strings are UTF-8; C strings are NUL-terminated.
 */
export class MessageWriter {
  private buf: Buffer;
  private pos = 0;
  private start = -1;

  constructor(initialSize = 256) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Begin a typed message (type byte + length placeholder). `type` 0 starts an untyped (startup) packet. */
  begin(type: number): this {
    if (type !== 0) {
      this.ensure(1);
      this.buf[this.pos++] = type;
    }
    this.start = this.pos;
    this.int32(0);
    return this;
  }

  /** Finish the current message: patch its length. */
  end(): this {
    if (this.start < 0) throw new Error('MessageWriter.end() without begin()');
    this.buf.writeInt32BE(this.pos - this.start, this.start);
    this.start = -1;
    return this;
  }

  byte(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v | 0, this.pos);
    this.pos += 4;
    return this;
  }

  cstring(s: string): this {
    const len = Buffer.byteLength(s, 'utf8');
    this.ensure(len + 1);
    this.buf.write(s, this.pos, 'utf8');
    this.pos += len;
    this.buf[this.pos++] = 0;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** The bytes written so far (a copy-free view; do not reuse the writer afterwards). */
  toBuffer(): Buffer {
    if (this.start >= 0) throw new Error('MessageWriter: message not ended');
    return this.buf.subarray(0, this.pos);
  }
}
