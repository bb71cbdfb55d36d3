/**
 * Promise-based reading of whole packets from a socket during the startup and
 * authentication phases (before the streaming relay takes over).
 */
import type { Duplex } from 'node:stream';
import { MAX_STARTUP_PACKET_LENGTH, ProtocolError, typeName } from '../../wire/index.js';
import { consume, ownBytes } from './fast-io.js';

export class ConnectionClosedError extends Error {
  constructor(message = 'connection closed') {
    super(message);
    this.name = 'ConnectionClosedError';
  }
}

export class SocketReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;
  private readonly onData = (buf: Buffer, start: number, end: number): void => {
    const chunk = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    this.buf = this.buf.length === 0 ? ownBytes(chunk) : Buffer.concat([this.buf, chunk]);
    this.wake();
  };
  private readonly stopConsuming: () => void;
  private readonly onEnd = (): void => this.fail(new ConnectionClosedError());
  private readonly onError = (err: Error): void => this.fail(err);

  constructor(private readonly socket: Duplex) {
    this.stopConsuming = consume(socket, this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private fail(err: Error): void {
    if (!this.failure) this.failure = err;
    this.wake();
  }

  private async need(n: number): Promise<void> {
    while (this.buf.length < n) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  private take(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Bytes received and not consumed. */
  get buffered(): number {
    return this.buf.length;
  }

  /** The first byte without consuming it. */
  async peekByte(): Promise<number> {
    await this.need(1);
    return this.buf[0];
  }

  /** An untyped startup-phase packet; returns its body (after the length). */
  async readStartupPacket(): Promise<Buffer> {
    await this.need(4);
    const len = this.buf.readInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_PACKET_LENGTH) throw new ProtocolError('invalid length of startup packet');
    await this.need(len);
    return this.take(len).subarray(4);
  }

  /**
   * A typed message; `expect` (optional) restricts the accepted types, checked
   * as soon as the type byte arrives (as PostgreSQL does: a client that sends
   * a wrong type is answered at once, not when some length has been read).
   */
  async readMessage(maxLength: number, expect?: readonly number[]): Promise<{ type: number; body: Buffer }> {
    await this.need(1);
    const type = this.buf[0];
    if (expect && !expect.includes(type)) {
      throw new ProtocolError(`unexpected message type ${typeName(type)} (expected ${expect.map(typeName).join(' or ')})`);
    }
    await this.need(5);
    const len = this.buf.readInt32BE(1);
    if (len < 4 || len > maxLength) throw new ProtocolError(`invalid message length ${len} for message type ${typeName(type)}`);
    await this.need(len + 1);
    const raw = this.take(len + 1);
    return { type, body: raw.subarray(5) };
  }

  /** Stop reading; returns the bytes received but not consumed. */
  detach(): Buffer {
    this.socket.pause(); // no data may be lost before the next reader attaches
    this.stopConsuming();
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}
