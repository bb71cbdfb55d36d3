/**
 * Native socket I/O for the relay's hot path: a plain TCP connection handed
 * to the `warden_io` addon (native/warden_io.c) once its session starts.
 *
 * Why: with Node's net.Socket, every read and every write runs several
 * microseconds of stream machinery in JavaScript (state checks, write
 * requests, deferred after-write callbacks, a copy of each chunk that may be
 * written later). A session relays one small message each way per statement,
 * so that machinery is most of a proxy's CPU. The addon polls the descriptor on
 * Node's own event loop (no thread, no hand-off), reads into one buffer shared
 * with JavaScript and writes with send(), copying only what the kernel does not
 * take at once. Framing, decisions and masking stay in JavaScript: the session
 * sees a chunk per read and makes a write call per flush, as before.
 *
 * A {@link NativeSocket} offers the part of net.Socket a session uses: write
 * (false when bytes are queued; 'drain' when they are gone), pause/resume,
 * end (FIN once the queue drains; reads are discarded until the peer closes),
 * destroy, and the 'error' and 'close' events.
 *
 * Read chunks are transient, like fast-io's: valid only during the consumer's
 * call. A write may be given a transient chunk: the addon copies what it keeps.
 *
 * The addon is built by `npm install` (scripts/build-native.js), on Linux
 * only. When it is missing, fails to load, or WARDEN_NATIVE_IO=0, sessions use
 * Node's sockets. TLS connections always do (the TLS layer is Node's).
 * WARDEN_NATIVE_IO_ADDON names another build of it to load instead (the
 * sanitizer run, scripts/native-sanitize.sh, uses it).
 *
 * Each thread that loads this module gets its own instance of the addon
 * (arena, event table, sockets): a NativeSocket belongs to the thread that
 * adopted it.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { consume, queuedFast, registerTransientMemory, type ChunkConsumer } from './fast-io.js';

interface Binding {
  /** Where the bytes of a batch's reads are (valid only during the batch call). */
  readonly arena: Buffer;
  /** A batch's events: [socket id, kind, a, b] each (see EV_*). */
  readonly events: Int32Array;
  /** An event dropped because its socket was destroyed after it was collected. */
  readonly EV_NONE: number;
  readonly EV_READ: number;
  readonly EV_DRAIN: number;
  readonly EV_EOF: number;
  readonly EV_ERROR: number;
  /** Set the function each loop iteration's events go to (once per thread). */
  init(onBatch: (count: number) => void, resource: object): void;
  /**
   * Take over (a duplicate of) the connected socket `fd` under `id`, which its
   * events carry and every other call names. An id is reused only once its
   * socket is destroyed (destroy drops the events still queued for it, so the
   * id is free at once); calls naming a closed socket do nothing (write: -EPIPE).
   */
  open(fd: number, id: number): void;
  setReading(id: number, on: boolean): void;
  /**
   * 1: all sent; 0: the rest is queued (an EV_DRAIN event follows once it is sent); negative: -errno
   * (-EFAULT: the bytes are in the arena but not of the current batch; nothing was sent).
   */
  write(id: number, buf: Buffer, start: number, end: number): number;
  /** write() of bytes [start, end) of the arena, during the batch that delivered them. */
  writeArena(id: number, start: number, end: number): number;
  queued(id: number): number;
  /** Shut down the write side once the queue is empty (reading goes on until the caller destroys). */
  end(id: number): void;
  destroy(id: number): void;
}

/** Open sockets by the id their events carry; ids are reused once a socket is gone. */
const byId: (NativeSocket | undefined)[] = [];
const freeIds: number[] = [];
/**
 * Ids freed during a batch: reused only after it, so a later event of the
 * batch for a socket that was just destroyed can never reach a new socket.
 */
const batchFreed: number[] = [];
let inBatch = false;

function load(): { binding: Binding | null; reason: string } {
  if (process.env.WARDEN_NATIVE_IO === '0') return { binding: null, reason: 'disabled by WARDEN_NATIVE_IO=0' };
  if (process.platform !== 'linux') return { binding: null, reason: `the addon is built and tested on Linux only, not ${process.platform}` };
  let binding: Binding;
  try {
    const require = createRequire(import.meta.url);
    // From src/proxy and dist/proxy alike.
    binding = require(process.env.WARDEN_NATIVE_IO_ADDON || '../../../native/build/Release/warden_io.node') as Binding;
  } catch (err) {
    return { binding: null, reason: `the addon could not be loaded (${(err as Error).message.split('\n')[0]}); run npm install to build it` };
  }
  if (!Buffer.isBuffer(binding.arena) || !(binding.events instanceof Int32Array) || typeof binding.init !== 'function' || binding.EV_NONE !== 0) {
    return { binding: null, reason: 'the addon does not have the expected interface' };
  }
  try {
    binding.init(onBatch, {});
  } catch (err) {
    return { binding: null, reason: `the addon could not start (${(err as Error).message})` };
  }
  return { binding, reason: 'loaded' };
}

/** Everything that happened on the addon's sockets in one loop iteration. */
function onBatch(count: number): void {
  inBatch = true;
  try {
    dispatch(EVENTS!, ARENA!, binding!, count);
  } finally {
    inBatch = false;
    while (batchFreed.length > 0) freeIds.push(batchFreed.pop()!);
  }
}

function dispatch(ev: Int32Array, arena: Buffer, b: Binding, count: number): void {
  for (let i = 0, at = 0; i < count; i++, at += 4) {
    const kind = ev[at + 1];
    if (kind === 0) continue; // EV_NONE: its socket was destroyed after the event was collected
    const s = byId[ev[at]];
    if (s === undefined) continue; // destroyed earlier in this batch
    try {
      if (kind === b.EV_READ) s._read(arena, ev[at + 2], ev[at + 3]);
      else if (kind === b.EV_DRAIN) s._drain();
      else if (kind === b.EV_EOF) s._eof();
      else s._error(ev[at + 2]);
    } catch (err) {
      // A consumer that throws ends its own socket, never the batch (other sessions' events).
      s.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

const loaded = load();
const binding = loaded.binding;
const ARENA = binding?.arena;
const EVENTS = binding?.events;
if (ARENA) registerTransientMemory(ARENA.buffer);

/** Whether sessions relay through the addon, and why not when they do not. */
export const nativeIo: { readonly available: boolean; readonly reason: string } = Object.freeze({
  available: binding !== null,
  reason: loaded.reason,
});

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

function errnoError(errno: number): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `errno ${errno}`;
  const what =
    code === 'ECONNRESET'
      ? 'connection reset by peer'
      : code === 'EPIPE'
        ? 'broken pipe'
        : code === 'EFAULT'
          ? 'write of read-buffer bytes outside the batch that delivered them (a Warden bug: the socket is closed rather than send bytes that may be another session\'s)'
          : 'socket error';
  const err: NodeJS.ErrnoException = new Error(`${what} (${code})`);
  err.code = code;
  err.errno = -errno;
  return err;
}

export class NativeSocket extends EventEmitter {
  /** The addon's name for the socket; open there until destroy(). */
  readonly #id: number;
  #consumer: ChunkConsumer | null = null;
  /** Copies of chunks read while no consumer was attached. */
  #queued: Buffer[] = [];
  #wantRead = false;
  #ending = false;
  #eof = false;
  #destroyed = false;

  /** @internal Use {@link adoptNative}. */
  constructor(b: Binding, fd: number) {
    super();
    const id = freeIds.pop() ?? byId.length;
    b.open(fd, id);
    this.#id = id;
    byId[id] = this;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  get writable(): boolean {
    return !this.#destroyed && !this.#ending;
  }

  /** Bytes accepted by write() that the kernel has not taken yet. */
  get writableLength(): number {
    return this.#destroyed ? 0 : binding!.queued(this.#id);
  }

  /** Deliver incoming bytes to `consumer` (null detaches); chunks read meanwhile are delivered first. */
  setConsumer(consumer: ChunkConsumer | null): void {
    this.#consumer = consumer;
    if (!consumer || this.#queued.length === 0) return;
    const q = this.#queued;
    this.#queued = [];
    for (const b of q) consumer(b, 0, b.length);
  }

  /** @internal Bytes [start, end) of the batch's arena arrived. */
  _read(arena: Buffer, start: number, end: number): void {
    if (this.#ending || this.#destroyed) return; // after end(): read only to notice the peer closing
    const c = this.#consumer;
    if (c) c(arena, start, end);
    else this.#queued.push(Buffer.from(arena.subarray(start, end)));
  }

  /** @internal Everything queued has been sent. */
  _drain(): void {
    if (this.#destroyed) return;
    if (this.#ending && this.#eof) {
      this.destroy();
      return;
    }
    this.emit('drain');
  }

  /** @internal The peer closed its side: like net.Socket without allowHalfOpen, finish writing and close. */
  _eof(): void {
    if (this.#destroyed) return;
    this.#eof = true;
    if (!this.#ending) this.end();
    else if (binding!.queued(this.#id) === 0) this.destroy();
  }

  /** @internal The socket failed (errno). */
  _error(errno: number): void {
    if (!this.#destroyed) this.destroy(errnoError(errno));
  }

  /**
   * Send bytes [start, end) of `buf` (all of it by default); `buf` may be a
   * transient chunk. False when some of it waits in the queue: wait for 'drain'.
   */
  write(buf: Buffer | Uint8Array, start = 0, end = buf.length): boolean {
    if (this.#destroyed || this.#ending) return false;
    if (end <= start) return true;
    let rc: number;
    if (buf === ARENA) rc = binding!.writeArena(this.#id, start, end);
    else rc = binding!.write(this.#id, Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength), start, end);
    if (rc > 0) return true;
    if (rc === 0) return false;
    const err = errnoError(-rc);
    process.nextTick(() => this.destroy(err));
    return false;
  }

  pause(): this {
    this.#setReading(false);
    return this;
  }

  resume(): this {
    this.#setReading(true);
    return this;
  }

  #setReading(on: boolean): void {
    // After end(), reading stays on (to notice the peer's close) whatever the caller asks.
    const want = this.#ending ? true : on;
    if (this.#destroyed || want === this.#wantRead) return;
    this.#wantRead = want;
    binding!.setReading(this.#id, want);
  }

  /** Write `data` if given, then send FIN once everything queued is sent; closes when the peer does. */
  end(data?: Buffer | Uint8Array): this {
    if (this.#destroyed || this.#ending) return this;
    if (data) this.write(data);
    if (this.#destroyed) return this;
    this.#ending = true;
    binding!.end(this.#id);
    this.#setReading(true);
    if (this.#eof && binding!.queued(this.#id) === 0) this.destroy();
    return this;
  }

  /** Close now, dropping anything queued; 'error' (when given) then 'close' follow on the next tick. */
  destroy(err?: Error): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    this.#consumer = null;
    this.#queued = [];
    binding!.destroy(this.#id);
    byId[this.#id] = undefined;
    (inBatch ? batchFreed : freeIds).push(this.#id);
    process.nextTick(() => {
      if (err) this.emit('error', err);
      this.emit('close', err !== undefined);
    });
    return this;
  }
}

/**
 * Move a connected plain-TCP socket (its reader detached) to the addon.
 * Returns the new socket, or null when the socket cannot move (TLS, no
 * descriptor, no addon, bytes buffered in Node); the caller then keeps using
 * `sock`.
 */
export function adoptNative(sock: net.Socket | tls.TLSSocket): NativeSocket | null {
  if (!binding || sock instanceof tls.TLSSocket || sock.destroyed || sock.connecting) return null;
  const handle = (sock as unknown as { _handle?: { fd?: unknown; readStop?: () => number } | null })._handle;
  const fd = handle?.fd;
  // Bytes Node has read or has yet to write stay with Node's socket: do not move it then.
  if (!handle || typeof fd !== 'number' || fd < 0 || sock.writableLength > 0 || sock.readableLength > 0 || queuedFast(sock) > 0) return null;
  // Nothing may be read by Node from here on.
  sock.pause();
  handle.readStop?.();
  let socket: NativeSocket;
  try {
    socket = new NativeSocket(binding, fd);
  } catch {
    return null;
  }
  // The addon holds its own duplicate of the descriptor: closing Node's copy leaves the connection open.
  sock.destroy();
  return socket;
}

/** What a session needs of each side's socket: net.Socket, tls.TLSSocket and NativeSocket all are. */
export interface RelaySocket {
  readonly destroyed: boolean;
  write(b: Uint8Array): boolean;
  pause(): unknown;
  resume(): unknown;
  end(): unknown;
  destroy(): unknown;
  on(event: 'drain' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * Deliver a socket's incoming bytes to `consumer` (see fast-io's consume);
 * returns a detach function. A socket that is not a NativeSocket is one of
 * Node's streams.
 */
export function consumeSocket(sock: RelaySocket, consumer: ChunkConsumer): () => void {
  if (sock instanceof NativeSocket) {
    sock.setConsumer(consumer);
    return () => sock.setConsumer(null);
  }
  return consume(sock as Duplex, consumer);
}

