/**
 * The native socket I/O addon (native/warden_io.c) behind NativeSocket: real
 * TCP connections on loopback, one end adopted by the addon, the other a plain
 * net.Socket playing the peer.
 */
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeSocket, adoptNative, consumeSocket, nativeIo } from '../../src/proxy/transport/native-io.js';
import { adoptFast, consume, isTransient, queuedFast } from '../../src/proxy/transport/fast-io.js';
import { makeTestCerts } from '../helpers/certs.js';

const open: { destroy(): unknown }[] = [];
const servers: net.Server[] = [];

afterEach(async () => {
  for (const s of open.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A connected pair: `ours` (accepted by a server, adopted like Warden's client side) and the peer. */
async function pair(): Promise<{ ours: NativeSocket; peer: net.Socket }> {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const peer = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  peer.on('error', () => undefined); // resets are part of some tests
  open.push(peer);
  await new Promise<void>((r) => peer.once('connect', () => r()));
  const raw = await accepted;
  server.close();
  const ours = adoptNative(raw);
  if (!ours) throw new Error('adoptNative refused a plain TCP socket');
  open.push(ours);
  return { ours, peer };
}

function collect(peer: net.Socket): () => Buffer {
  const parts: Buffer[] = [];
  peer.on('data', (d: Buffer) => parts.push(d));
  return () => Buffer.concat(parts);
}

const closed = (s: NativeSocket | net.Socket): Promise<void> => new Promise((r) => s.once('close', () => r()));

const runIf = nativeIo.available ? describe : describe.skip;

describe('native socket I/O availability', () => {
  it('is built and loaded unless WARDEN_NATIVE_IO=0 (npm install builds it)', () => {
    if (process.env.WARDEN_NATIVE_IO === '0') expect(nativeIo.available).toBe(false);
    else expect(nativeIo, nativeIo.reason).toMatchObject({ available: true, reason: 'loaded' });
  });
});

runIf('NativeSocket', () => {
  it('delivers what the peer sends, as transient views of the shared read buffer, and sends back', async () => {
    const { ours, peer } = await pair();
    const got: Buffer[] = [];
    let transient = true;
    consumeSocket(ours, (buf, start, end) => {
      const chunk = buf.subarray(start, end);
      transient &&= isTransient(chunk);
      got.push(Buffer.from(chunk));
      // A transient chunk may be written as is: as a range of the read buffer (the relay's way), or a view of it.
      if (got.length % 2 === 0) ours.write(buf, start, end);
      else ours.write(chunk);
    });
    ours.resume();
    const echoed = collect(peer);
    const payload = crypto.randomBytes(200_000);
    peer.write(payload);
    await expect.poll(() => echoed().length, { timeout: 5000 }).toBe(payload.length);
    expect(Buffer.concat(got).equals(payload)).toBe(true);
    expect(echoed().equals(payload)).toBe(true);
    expect(transient).toBe(true);
  });

  it('queues what the kernel does not take: write returns false, bytes stay in order, drain follows', async () => {
    const { ours, peer } = await pair();
    peer.pause(); // the peer reads nothing for now
    // More than loopback's socket buffers on both sides hold.
    const block = crypto.randomBytes(1 << 20);
    let refused = 0;
    const sent: Buffer[] = [];
    for (let i = 0; i < 64; i++) {
      const b = Buffer.from(block);
      b.writeUInt32BE(i, 0);
      sent.push(b);
      if (!ours.write(b)) refused++;
    }
    expect(refused).toBeGreaterThan(0);
    expect(ours.writableLength).toBeGreaterThan(0);
    const drained = new Promise<void>((r) => ours.once('drain', () => r()));
    const received = collect(peer);
    peer.resume();
    await drained;
    expect(ours.writableLength).toBe(0);
    const all = Buffer.concat(sent);
    await expect.poll(() => received().length, { timeout: 5000 }).toBe(all.length);
    expect(received().equals(all)).toBe(true);
  });

  it('pause stops delivery until resume', async () => {
    const { ours, peer } = await pair();
    let n = 0;
    consumeSocket(ours, (_b, start, end) => (n += end - start));
    ours.resume();
    peer.write('a');
    await expect.poll(() => n).toBe(1);
    ours.pause();
    peer.write('bcd');
    await new Promise((r) => setTimeout(r, 100));
    expect(n).toBe(1);
    ours.resume();
    await expect.poll(() => n).toBe(4);
  });

  it('keeps what arrives before a consumer attaches and delivers it first', async () => {
    const { ours, peer } = await pair();
    ours.resume();
    peer.write('early');
    await new Promise((r) => setTimeout(r, 100));
    const got: string[] = [];
    consumeSocket(ours, (b, start, end) => got.push(b.toString('latin1', start, end)));
    peer.write('late');
    await expect.poll(() => got.join('')).toBe('earlylate');
  });

  it('end() sends everything queued, then FIN; it closes once the peer closes', async () => {
    const { ours, peer } = await pair();
    peer.pause();
    const big = crypto.randomBytes(4 << 20);
    ours.write(big);
    ours.end(Buffer.from('tail'));
    expect(ours.write(Buffer.from('after end'))).toBe(false);
    const received = collect(peer);
    const peerEnded = new Promise<void>((r) => peer.once('end', () => r()));
    const oursClosed = closed(ours);
    peer.resume();
    await peerEnded;
    expect(received().equals(Buffer.concat([big, Buffer.from('tail')]))).toBe(true);
    expect(ours.destroyed).toBe(false); // waits for the peer, reading and dropping what it sends
    peer.end();
    await oursClosed;
    expect(ours.destroyed).toBe(true);
  });

  it('the peer closing ends the socket with close and no error', async () => {
    const { ours, peer } = await pair();
    const errors: Error[] = [];
    ours.on('error', (e) => errors.push(e));
    consumeSocket(ours, () => undefined);
    ours.resume();
    const c = closed(ours);
    peer.end();
    await c;
    expect(errors).toEqual([]);
    expect(ours.destroyed).toBe(true);
  });

  it('a reset by the peer is an error, then close', async () => {
    const { ours, peer } = await pair();
    const errors: NodeJS.ErrnoException[] = [];
    ours.on('error', (e: NodeJS.ErrnoException) => errors.push(e));
    consumeSocket(ours, () => undefined);
    ours.resume();
    const c = closed(ours);
    peer.resetAndDestroy();
    await c;
    expect(errors.map((e) => e.code)).toEqual(['ECONNRESET']);
  });

  it('writing to a peer that is gone reports an error instead of crashing', async () => {
    const { ours, peer } = await pair();
    const errors: NodeJS.ErrnoException[] = [];
    ours.on('error', (e: NodeJS.ErrnoException) => errors.push(e));
    const c = closed(ours);
    peer.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 50 && !ours.destroyed; i++) {
      ours.write(Buffer.alloc(65536));
      await new Promise((r) => setTimeout(r, 5));
    }
    await c;
    expect(errors.length).toBe(1);
    expect(['EPIPE', 'ECONNRESET']).toContain(errors[0].code);
  });

  it('destroy closes at once; later calls are harmless', async () => {
    const { ours, peer } = await pair();
    const peerClosed = new Promise<void>((r) => peer.once('close', () => r()));
    peer.on('error', () => undefined);
    peer.resume();
    const c = closed(ours);
    ours.destroy();
    ours.destroy();
    expect(ours.write(Buffer.from('x'))).toBe(false);
    ours.pause();
    ours.resume();
    ours.end();
    await c;
    await peerClosed;
  });

  it("a socket destroyed during a batch never passes its remaining events to a socket opened after it", async () => {
    const x = await pair();
    const y = await pair();
    // Z: accepted and waiting, adopted from inside X's consumer (in the middle of a batch).
    const server = net.createServer({ pauseOnConnect: true });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const acceptedZ = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const peerZ = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    peerZ.on('error', () => undefined);
    open.push(peerZ);
    const rawZ = await acceptedZ;
    let z: NativeSocket | null = null;
    const toZ: string[] = [];
    consumeSocket(x.ours, () => {
      if (z) return;
      y.ours.destroy();
      z = adoptNative(rawZ);
      open.push(z!);
      consumeSocket(z!, (b, start, end) => toZ.push(b.toString('latin1', start, end)));
      z!.resume();
    });
    consumeSocket(y.ours, () => undefined);
    x.ours.resume();
    y.ours.resume();
    // Both arrive before Warden's side polls again: one batch, X's event first.
    x.peer.write('x');
    y.peer.write('for y only');
    await expect.poll(() => z !== null).toBe(true);
    peerZ.write('for z');
    await expect.poll(() => toZ.join('')).toBe('for z');
    await new Promise((r) => setTimeout(r, 50));
    expect(toZ.join('')).toBe('for z');
  });

  it('many sockets opened and closed do not leak descriptors', async () => {
    const fds = (): number => fs.readdirSync('/proc/self/fd').length;
    const before = fds();
    for (let i = 0; i < 50; i++) {
      const { ours, peer } = await pair();
      const c = closed(ours);
      ours.destroy();
      await c;
      peer.destroy();
      open.length = 0;
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(fds()).toBeLessThanOrEqual(before + 5);
  });
});

/**
 * A worker thread with its own instance of the addon: it echoes on its own socket (id 0, like the
 * main thread's first) and exits with a socket still open.
 */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const b = require(workerData.addon);
let got = '';
b.init((count) => {
  for (let i = 0, at = 0; i < count; i++, at += 4) {
    if (b.events[at + 1] !== b.EV_READ) continue;
    got += b.arena.toString('latin1', b.events[at + 2], b.events[at + 3]);
    b.writeArena(b.events[at], b.events[at + 2], b.events[at + 3]);
    if (got.length >= workerData.expect) parentPort.postMessage(got);
  }
}, {});
const server = net.createServer({ pauseOnConnect: true }, (s) => {
  b.open(s._handle.fd, 0);
  b.setReading(0, true);
  s._handle.readStop();
  s.destroy();
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
`;

runIf('one instance per thread', () => {
  it('a worker thread has its own arena, events and socket ids; it ends with sockets open and the main thread carries on', async () => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    const addon = process.env.WARDEN_NATIVE_IO_ADDON || path.join(root, 'native/build/Release/warden_io.node');
    const main = await pair();
    const toMain: string[] = [];
    consumeSocket(main.ours, (b, start, end) => {
      toMain.push(b.toString('latin1', start, end));
      main.ours.write(b, start, end);
    });
    main.ours.resume();
    const mainEcho = collect(main.peer);

    const forWorker = 'w'.repeat(5000);
    const worker = new Worker(WORKER, { eval: true, workerData: { addon, expect: forWorker.length } });
    const messages: unknown[] = [];
    worker.on('message', (m) => messages.push(m));
    const workerError = new Promise<Error>((r) => worker.once('error', r));
    await expect.poll(() => messages.length, { timeout: 5000 }).toBeGreaterThan(0);
    const { port } = messages[0] as { port: number };
    const wpeer = net.connect(port, '127.0.0.1');
    wpeer.on('error', () => undefined);
    open.push(wpeer);
    const workerEcho = collect(wpeer);
    await new Promise((r) => wpeer.once('connect', r));

    // Both at once, interleaved.
    for (let i = 0; i < 50; i++) {
      main.peer.write('m'.repeat(100));
      wpeer.write(forWorker.slice(i * 100, i * 100 + 100));
    }
    await expect.poll(() => messages.length, { timeout: 5000 }).toBe(2);
    expect(messages[1]).toBe(forWorker);
    await expect.poll(() => workerEcho().toString('latin1'), { timeout: 5000 }).toBe(forWorker);
    await expect.poll(() => toMain.join(''), { timeout: 5000 }).toBe('m'.repeat(5000));
    await expect.poll(() => mainEcho().toString('latin1')).toBe('m'.repeat(5000));

    // The worker ends with its socket open: its instance closes it (the peer sees the close).
    const peerClosed = new Promise<void>((r) => wpeer.once('close', () => r()));
    expect(await worker.terminate()).toBe(1);
    await peerClosed;
    await Promise.race([workerError.then((e) => Promise.reject(e)), new Promise((r) => setTimeout(r, 50))]);

    // The main thread's instance is untouched.
    main.peer.write('after');
    await expect.poll(() => toMain.join('')).toBe('m'.repeat(5000) + 'after');
  });
});

runIf('adoptNative', () => {
  it('leaves a TLS socket, and a socket with bytes Node already holds, to Node', async () => {
    const certs = await makeTestCerts();
    const server = tls.createServer({ key: fs.readFileSync(certs.serverKey), cert: fs.readFileSync(certs.serverCert) }, (s) => s.on('error', () => undefined));
    servers.push(server as unknown as net.Server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const t = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
    t.on('error', () => undefined);
    open.push(t);
    await new Promise<void>((r) => t.once('secureConnect', () => r()));
    expect(adoptNative(t)).toBeNull();

    const plain = net.createServer((s) => s.end('hello'));
    servers.push(plain);
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', () => r()));
    const c = net.connect((plain.address() as net.AddressInfo).port, '127.0.0.1');
    c.on('error', () => undefined);
    open.push(c);
    await new Promise((r) => c.once('readable', r));
    expect(c.readableLength).toBeGreaterThan(0);
    expect(adoptNative(c)).toBeNull();
    expect(c.read()?.toString()).toBe('hello'); // still Node's, nothing lost
  });

  it('a fast socket whose reader has detached moves with nothing lost; one holding read bytes stays', async () => {
    const server = net.createServer({ pauseOnConnect: true });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const peer = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    open.push(peer);
    const raw = adoptFast(await accepted);
    open.push(raw);
    // Like the handshake: a reader consumes, then pauses and detaches.
    const seen: string[] = [];
    const stop = consume(raw, (b, start, end) => seen.push(b.toString('latin1', start, end)));
    raw.resume();
    peer.write('startup');
    await expect.poll(() => seen.join('')).toBe('startup');
    raw.pause();
    stop();
    peer.write('before adoption');
    await new Promise((r) => setTimeout(r, 50));
    const ours = adoptNative(raw);
    expect(ours).not.toBeNull();
    open.push(ours!);
    expect(raw.destroyed).toBe(true);
    const got: string[] = [];
    consumeSocket(ours!, (b, start, end) => got.push(b.toString('latin1', start, end)));
    ours!.resume();
    peer.write(', after');
    await expect.poll(() => got.join('')).toBe('before adoption, after');
    expect(seen.join('')).toBe('startup');

    // A fast socket still reading with nobody consuming holds bytes in Node: it is not moved.
    const accepted2 = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const peer2 = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    open.push(peer2);
    const raw2 = adoptFast(await accepted2);
    open.push(raw2);
    raw2.resume();
    peer2.write('held');
    await expect.poll(() => queuedFast(raw2)).toBe(4);
    expect(adoptNative(raw2)).toBeNull();
    expect(raw2.destroyed).toBe(false);
  });
});
