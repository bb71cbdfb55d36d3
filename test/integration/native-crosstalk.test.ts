/**
 * The two ways the native socket addon once handed one session's bytes to
 * another (the scripts in ../shared/repro/, made permanent), and the same
 * shapes at other loop phases. Every socket must receive exactly its own
 * bytes, and a socket destroyed with bytes still queued for it must never
 * pass them to the socket that takes its id.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { adoptNative, nativeIo, type NativeSocket } from '../../src/proxy/transport/native-io.js';

const cleanup: { destroy(): unknown }[] = [];
const servers: net.Server[] = [];

afterEach(async () => {
  for (const s of cleanup.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** n connected pairs: `raw` (accepted, paused, not yet adopted) and its `peer`. */
async function pairs(n: number): Promise<{ raw: net.Socket; peer: net.Socket }[]> {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (s) => accepted.push(s));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const peers: net.Socket[] = [];
  for (let i = 0; i < n; i += 64) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(64, n - i) }, () =>
        new Promise<net.Socket>((resolve) => {
          const c = net.connect(port, '127.0.0.1', () => resolve(c));
          c.on('error', () => undefined);
        }),
      ),
    );
    peers.push(...batch);
  }
  cleanup.push(...peers);
  while (accepted.length < n) await new Promise((r) => setTimeout(r, 5));
  // Accept order is not connect order: match each accepted socket to its peer by port.
  const byPort = new Map(accepted.map((s) => [s.remotePort, s]));
  cleanup.push(...accepted);
  return peers.map((peer) => ({ peer, raw: byPort.get(peer.localPort!)! }));
}

function adopt(raw: net.Socket): NativeSocket {
  const s = adoptNative(raw);
  if (!s) throw new Error('adoptNative refused a plain TCP socket');
  s.on('error', () => undefined);
  cleanup.push(s);
  return s;
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const runIf = nativeIo.available ? describe : describe.skip;

runIf('native socket I/O never crosses sessions', () => {
  it('more ready sockets than the event table holds, with reads that fill the arena: each gets its own bytes', async () => {
    // The repro's shape (native-arena-overflow.mjs): the table holds 512 events and the arena
    // four 64 KiB reads; 513 small senders and 3 big ones are all ready in one poll phase.
    const SMALL = 513;
    const BIG = 3;
    const ps = await pairs(SMALL + BIG);
    const got: string[] = ps.map(() => '');
    ps.forEach(({ raw }, i) => {
      const s = adopt(raw);
      s.setConsumer((buf, a, b) => (got[i] += buf.toString('latin1', a, b)));
      s.resume();
    });
    await wait(50);
    const expected = ps.map((_, i) => (i < SMALL ? `socket ${String(i).padStart(4, '0')} `.padEnd(100, '.') : String.fromCharCode(65 + i - SMALL).repeat(65536)));
    // All written in one go, so Warden's side finds them ready in the same poll phase.
    ps.forEach(({ peer }, i) => peer.write(expected[i]));
    await expect.poll(() => got.reduce((n, g) => n + g.length, 0), { timeout: 10_000 }).toBe(expected.reduce((n, e) => n + e.length, 0));
    await wait(50);
    const wrong = got.map((g, i) => (g === expected[i] ? -1 : i)).filter((i) => i >= 0);
    expect(wrong, `sockets that received bytes that are not theirs: ${wrong.slice(0, 5).join(', ')}`).toEqual([]);
  });

  /**
   * The repro's shape (native-id-reuse.mjs): A's bytes are collected in the poll phase;
   * before they are delivered, `act` destroys A and adopts B (which may take A's id).
   * B must not see A's bytes.
   */
  async function destroyThenAdopt(trigger: 'node-callback' | 'timer' | 'next-tick-in-batch' | 'immediate' | 'in-batch'): Promise<void> {
    const [a, c, b] = await pairs(3);
    const A = adopt(a.raw);
    const toA: string[] = [];
    A.setConsumer((buf, s, e) => toA.push(buf.toString('latin1', s, e)));
    A.resume();
    const toB: string[] = [];
    let B: NativeSocket | null = null;
    const act = (): void => {
      if (B) return;
      A.destroy();
      B = adopt(b.raw);
      B.setConsumer((buf, s, e) => toB.push(buf.toString('latin1', s, e)));
      B.resume();
    };
    if (trigger === 'node-callback') {
      // A Node socket's callback in the poll phase, after the addon has collected A's bytes.
      c.raw.on('data', act);
      c.raw.resume();
    } else {
      // A second native socket whose event comes first in the batch.
      const C = adopt(c.raw);
      C.setConsumer(() => {
        if (trigger === 'in-batch') act();
        else if (trigger === 'next-tick-in-batch') process.nextTick(act);
        else if (trigger === 'immediate') setImmediate(act);
        else setTimeout(act, 0);
      });
      C.resume();
    }
    await wait(50);
    // In one go: for a Node callback, A's secret first (collected by the addon, then C's callback
    // runs in the same poll phase); otherwise C's bytes first (its event comes first in the batch).
    if (trigger === 'node-callback') {
      a.peer.write('SECRET-OF-A');
      c.peer.write('x');
    } else {
      c.peer.write('x');
      a.peer.write('SECRET-OF-A');
    }
    await expect.poll(() => B !== null, { timeout: 5000 }).toBe(true);
    b.peer.write('for B');
    await expect.poll(() => toB.join(''), { timeout: 5000 }).toContain('for B');
    await wait(50);
    expect(toB.join('')).toBe('for B');
    // What A did receive (if anything, before it was destroyed) is its own.
    expect(['', 'SECRET-OF-A']).toContain(toA.join(''));
  }

  it('a socket destroyed in the poll phase, after its bytes were collected, never passes them to the socket adopted next', async () => {
    for (let i = 0; i < 5; i++) await destroyThenAdopt('node-callback');
  });

  it('the same when the destroy and adoption happen in the batch, a nextTick of it, setImmediate or a timer', async () => {
    for (const t of ['in-batch', 'next-tick-in-batch', 'immediate', 'timer'] as const) {
      for (let i = 0; i < 3; i++) await destroyThenAdopt(t);
    }
  });

  it('bytes of the read buffer cannot be written outside the batch that delivered them', async () => {
    const [x, y] = await pairs(2);
    const X = adopt(x.raw);
    const Y = adopt(y.raw);
    let arena: Buffer | null = null;
    let range: [number, number] = [0, 0];
    X.setConsumer((buf, s, e) => {
      arena = buf;
      range = [s, e];
    });
    X.resume();
    x.peer.write('old bytes');
    await expect.poll(() => arena !== null).toBe(true);
    const errors: NodeJS.ErrnoException[] = [];
    Y.on('error', (e: NodeJS.ErrnoException) => errors.push(e));
    const received: Buffer[] = [];
    y.peer.on('data', (d: Buffer) => received.push(d));
    // Kept past its batch: the memory now belongs to whatever is read next. Refused, as a range and as a view.
    expect(Y.write(arena!, range[0], range[1])).toBe(false);
    await expect.poll(() => errors.length).toBe(1);
    expect(errors[0].code).toBe('EFAULT');
    expect(errors[0].message).toMatch(/outside the batch/);
    await wait(50);
    expect(Buffer.concat(received).length).toBe(0);
  });
});
