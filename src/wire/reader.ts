/** Thrown by decoders when a message body is malformed. Maps to SQLSTATE 08P01. */
export class ProtocolError extends Error {
  readonly code = '08P01';
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** A bounds-checked reader over one message body. Pure. */
export class MessageReader {
  pos = 0;
  constructor(readonly buf: Buffer, private readonly what = 'message') {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new ProtocolError(`invalid ${this.what}: unexpected end of message`);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  byte(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  uint16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new ProtocolError(`invalid ${this.what}: unterminated string`);
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }

  bytes(n: number): Buffer {
    if (n < 0) throw new ProtocolError(`invalid ${this.what}: negative length`);
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  rest(): Buffer {
    const b = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return b;
  }

  /** Assert the whole body was consumed. */
  end(): void {
    if (this.pos !== this.buf.length) throw new ProtocolError(`invalid ${this.what}: trailing bytes`);
  }
}
