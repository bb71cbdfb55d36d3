/**
 * Allocation-free reads for plain TCP sockets on the relay's hot path.
 *
 * Node's default socket reads allocate a fresh ArrayBuffer per read and push
 * it through the Readable stream machinery; for a proxy moving many small
 * messages that costs as much CPU as the relaying itself. A socket adopted
 * here instead reads into one shared buffer (Node's documented `onread`
 * option) and hands each chunk synchronously to its consumer.
 *
 * The contract that makes sharing safe: a chunk is only valid during the
 * consumer's call. Anything kept longer (partial messages, queued writes) must
 * be copied — `ownBytes()` does that for buffers headed to a socket write.
 *
 * Adopting an accepted socket moves its native handle into a new net.Socket
 * constructed with `onread` (Node offers no `onread` for server sockets).
 * That relies on the `_handle` property, so it is confined to this module and
 * falls back to the ordinary socket if the property is not there; set
 * WARDEN_FAST_IO=0 to disable it altogether.
 */
import net from 'node:net';

const SHARED = Buffer.allocUnsafe(64 * 1024);
/** SHARED's memory, looked up once: `.buffer` is a slow accessor on the write path. */
const SHARED_MEMORY = SHARED.buffer;
export const FAST_IO_ENABLED = process.env.WARDEN_FAST_IO !== '0';

/**
 * Takes bytes [start, end) of `buf`: a range, so the hot path makes no view
 * per read. For fast and native sockets `buf` is a shared read buffer, valid
 * only during the call.
 */
export type ChunkConsumer = (buf: Buffer, start: number, end: number) => void;

interface FastState {
  consumer: ChunkConsumer | null;
  queued: Buffer[];
}

const fastSockets = new WeakMap<net.Socket, FastState>();

function makeOnread(state: FastState): { buffer: Buffer; callback: (n: number) => boolean } {
  return {
    buffer: SHARED,
    callback: (n: number) => {
      if (state.consumer) state.consumer(SHARED, 0, n);
      else state.queued.push(Buffer.from(SHARED.subarray(0, n)));
      return true;
    },
  };
}

/** Another read buffer shared the same way (native-io's), set once at its load. */
let otherMemory: ArrayBufferLike | null = null;

/** Register the memory of another reader's shared buffer, so its views count as transient too. */
export function registerTransientMemory(memory: ArrayBufferLike): void {
  otherMemory = memory;
}

/** Whether `b` is a view of a shared read buffer (valid only during a consumer call). */
export function isTransient(b: Buffer): boolean {
  const m = b.buffer;
  return m === SHARED_MEMORY || m === otherMemory;
}

/** A buffer that stays valid after the current consumer call: copies shared-buffer views. */
export function ownBytes(b: Buffer): Buffer {
  if (!isTransient(b)) return b;
  // Cheaper than Buffer.from(b), which first asks what kind of object it was given.
  const copy = Buffer.allocUnsafe(b.length);
  copy.set(b);
  return copy;
}

/** Connect to host:port with allocation-free reads. */
export function connectFast(host: string, port: number): net.Socket {
  if (!FAST_IO_ENABLED) return net.connect({ host, port, noDelay: true });
  const state: FastState = { consumer: null, queued: [] };
  const sock = net.connect({ host, port, noDelay: true, onread: makeOnread(state) });
  fastSockets.set(sock, state);
  return sock;
}

/**
 * Take over an accepted (paused, never read) socket for allocation-free reads.
 * Returns a new socket owning the connection, or `raw` itself when that is not possible.
 */
export function adoptFast(raw: net.Socket): net.Socket {
  const holder = raw as unknown as { _handle?: object | null };
  if (!FAST_IO_ENABLED || !holder._handle || raw.destroyed) return raw;
  const state: FastState = { consumer: null, queued: [] };
  const handle = holder._handle;
  const sock = new net.Socket({
    handle,
    readable: true,
    writable: true,
    onread: makeOnread(state),
  } as net.SocketConstructorOpts);
  // The old wrapper no longer owns the handle: destroying it releases only the JS object.
  holder._handle = null;
  raw.destroy();
  fastSockets.set(sock, state);
  return sock;
}

/** Bytes a fast socket has read while no consumer was attached (0 for other sockets). */
export function queuedFast(sock: net.Socket | import('node:stream').Duplex): number {
  const state = fastSockets.get(sock as net.Socket);
  return state ? state.queued.reduce((n, b) => n + b.length, 0) : 0;
}

/**
 * Deliver the socket's incoming bytes to `consumer`. For adopted/fast sockets
 * chunks are transient views; for any other stream they are ordinary buffers.
 * Returns a function that detaches the consumer.
 */
export function consume(sock: net.Socket | import('node:stream').Duplex, consumer: ChunkConsumer): () => void {
  const state = fastSockets.get(sock as net.Socket);
  if (state) {
    state.consumer = consumer;
    const q = state.queued;
    state.queued = [];
    for (const b of q) consumer(b, 0, b.length);
    return () => {
      if (state.consumer === consumer) state.consumer = null;
    };
  }
  const onData = (chunk: Buffer): void => consumer(chunk, 0, chunk.length);
  sock.on('data', onData);
  return () => sock.off('data', onData);
}
