/**
 * A tiny hand-written PostgreSQL protocol client for tests that must send
 * exactly the bytes they want (malformed messages, TLS negotiation by hand).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';

export interface Msg {
  type: string;
  body: Buffer;
}

export type ErrorFields = Record<string, string>;

export const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export function startupPacket(params: Record<string, string>, version = 3 << 16): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE(version, 4);
  const parts: Buffer[] = [head];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  const pkt = Buffer.concat(parts);
  pkt.writeInt32BE(pkt.length, 0);
  return pkt;
}

/** A typed message: type byte, int32 length (self included), body. */
export function message(type: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(b.length + 4, 1);
  return Buffer.concat([head, b]);
}

export const cstr = (s: string): Buffer => Buffer.from(s + '\0', 'utf8');
export const int16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
export const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

export function saslInitial(mechanism: string, data: Buffer): Buffer {
  return message('p', Buffer.concat([cstr(mechanism), int32(data.length), data]));
}

export function parseErrorFields(body: Buffer): ErrorFields {
  const out: ErrorFields = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const end = body.indexOf(0, pos + 1);
    if (end < 0) throw new Error('malformed ErrorResponse');
    out[String.fromCharCode(body[pos])] = body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return out;
}

/** Reads whole messages from a socket (plain or TLS); knows when the peer has closed. */
export class Wire {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  closed = false;
  received = 0;

  /** Every connection made with connect(), so that each test can end its own. */
  static readonly opened = new Set<Wire>();

  constructor(readonly sock: Duplex) {
    sock.on('data', (d: Buffer) => {
      this.received += d.length;
      this.buf = Buffer.concat([this.buf, d]);
      this.notify();
    });
    sock.on('close', () => {
      this.closed = true;
      this.notify();
    });
    sock.on('error', () => undefined); // ECONNRESET etc.: 'close' follows
  }

  static connect(port: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.removeAllListeners('error');
        const w = new Wire(s);
        Wire.opened.add(w);
        resolve(w);
      });
      s.once('error', reject);
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  write(b: Buffer): void {
    this.sock.write(b);
  }

  /** The next message; throws if the connection closes first. */
  async read(timeoutMs = 5_000): Promise<Msg> {
    const complete = (): boolean => this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readInt32BE(1);
    await this.waitFor(() => complete() || this.closed, timeoutMs, 'a message');
    if (!complete()) throw new Error(`connection closed (${this.buf.length} unread bytes)`);
    const len = this.buf.readInt32BE(1);
    const msg = { type: String.fromCharCode(this.buf[0]), body: Buffer.from(this.buf.subarray(5, 1 + len)) };
    this.buf = this.buf.subarray(1 + len);
    return msg;
  }

  /** Skip messages until an ErrorResponse; return its fields. */
  async readError(timeoutMs = 5_000): Promise<ErrorFields> {
    for (;;) {
      const m = await this.read(timeoutMs);
      if (m.type === 'E') return parseErrorFields(m.body);
    }
  }

  /** Resolves when the peer has closed the connection (after reading everything). */
  async closedWithin(timeoutMs = 3_000): Promise<boolean> {
    try {
      await this.waitFor(() => this.closed, timeoutMs, 'close');
      return true;
    } catch {
      return false;
    }
  }

  get unread(): number {
    return this.buf.length;
  }

  destroy(): void {
    this.sock.destroy();
  }
}
