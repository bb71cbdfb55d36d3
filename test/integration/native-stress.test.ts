/**
 * Randomized stress test of the native socket addon: rounds of at least 1,000
 * loopback connections, each adopted by the addon at a random loop phase,
 * each sending its own random bytes in random-sized pieces that Warden's side
 * checks byte for byte and echoes back (as ranges of the shared read buffer),
 * the peer checking the echo byte for byte too. Some streams are destroyed
 * by Warden's side part-way, at a random loop phase, and a waiting socket is
 * adopted in the same callback (so it may take the destroyed one's id); some
 * peers reset their connection part-way. A byte that arrives anywhere it was
 * not sent, a byte too many, or a stream that does not finish fails the test.
 *
 * Loop phases used for adopt and destroy: synchronously in the callback at hand
 * (a native batch), in the next native batch, process.nextTick, setImmediate,
 * a timer, and a Node socket's callback in the poll phase right after the
 * addon has collected a burst's bytes (before they are delivered).
 *
 * CI runs two rounds (2,000 streams, several seconds). Longer: WARDEN_STRESS_SECONDS=600 keeps
 * running rounds for that long; WARDEN_STRESS_SOCKETS sets the sockets per
 * round (default 1000, lowered to fit the descriptor limit, with the rounds
 * then adding up to at least 2,000), WARDEN_STRESS_SEED repeats a run's random
 * choices (the timing is the kernel's).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { adoptNative, nativeIo, type NativeSocket } from '../../src/proxy/transport/native-io.js';

const SECONDS = Number(process.env.WARDEN_STRESS_SECONDS ?? '0');
const WANT_SOCKETS = Number(process.env.WARDEN_STRESS_SOCKETS ?? '1000');
const SEED = Number(process.env.WARDEN_STRESS_SEED ?? crypto.randomInt(2 ** 31));

/** The soft limit on open descriptors (Linux). */
function fdLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : 1 << 20;
  } catch {
    return 1024;
  }
}
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

/** mulberry32: small, seedable. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Phase = 'sync' | 'batch' | 'tick' | 'immediate' | 'timer' | 'node-callback';
const PHASES: Phase[] = ['sync', 'batch', 'tick', 'immediate', 'timer', 'node-callback'];
const DESTROY_PHASES: Phase[] = [...PHASES, 'node-callback'];

const MAX_LEN = 256 * 1024;
const POOL = crypto.randomBytes(8 << 20);

interface Stream {
  n: number;
  /** The stream's bytes: POOL[off, off + len). */
  off: number;
  len: number;
  /** full: sent and echoed whole; destroy: Warden's side destroys it after `cut` bytes; reset: the peer resets after sending `cut`. */
  kind: 'full' | 'destroy' | 'reset';
  cut: number;
  /** burst: sends a piece at each global burst; random: pieces at random moments of its own. */
  mode: 'burst' | 'random';
  /** Adopted only when a destroyed stream makes room (so it may take that stream's id). */
  late: boolean;
  peer: net.Socket;
  sent: number;
  native: NativeSocket | null;
  got: number;
  echoed: number;
  destroyRequested: boolean;
  destroyedByUs: boolean;
  nativeClosed: boolean;
  peerClosed: boolean;
}

interface RoundResult {
  failures: string[];
  streams: number;
  bytes: number;
  destroyed: number;
  resets: number;
  unfinished: number;
  /** The most read events seen in one batch (more than the addon's 512-event table means it filled up). */
  maxBatch: number;
  phases: Record<Phase, number>;
}

async function round(sockets: number, seed: number): Promise<RoundResult> {
  const rand = rng(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const failures: string[] = [];
  const fail = (msg: string): void => {
    if (failures.length < 50) failures.push(msg);
  };
  const phases = Object.fromEntries(PHASES.map((p) => [p, 0])) as Record<Phase, number>;

  // Actions waiting for a native batch, or for a Node socket's callback.
  const batchQueue: (() => void)[] = [];
  const nodeQueue: (() => void)[] = [];
  const drain = (q: (() => void)[]): void => {
    for (const f of q.splice(0)) f();
  };
  /** Run `f` once, at `phase` (a queued one also runs after 50 ms at the latest, should nothing else happen). */
  const at = (phase: Phase, f: () => void): void => {
    phases[phase]++;
    let done = false;
    const once = (): void => {
      if (!done) {
        done = true;
        f();
      }
    };
    if (phase === 'sync') once();
    else if (phase === 'tick') process.nextTick(once);
    else if (phase === 'immediate') setImmediate(once);
    else if (phase === 'timer') setTimeout(once, Math.floor(rand() * 3));
    else {
      (phase === 'batch' ? batchQueue : nodeQueue).push(once);
      setTimeout(once, 50);
    }
  };

  // A Node socket pair written to after each burst: its callback, in the poll phase, runs queued actions.
  const tickServer = net.createServer((s) => s.on('data', () => drain(nodeQueue)));
  await new Promise<void>((r) => tickServer.listen(0, '127.0.0.1', () => r()));
  const ticker = net.connect((tickServer.address() as net.AddressInfo).port, '127.0.0.1');
  ticker.on('error', () => undefined);

  // Accepted sockets waiting for adoption: `waiting` at random phases, `late` ones when a destroy makes room.
  const waiting: net.Socket[] = [];
  const lateWaiting: net.Socket[] = [];
  const byPort = new Map<number, Stream>();
  /** Each accepted socket's peer port, taken at once (a reset connection no longer has one). */
  const portOf = new Map<net.Socket, number | undefined>();
  const streams: Stream[] = [];
  let adopted = 0;
  let batchReads = 0;
  let maxBatch = 0;

  const adopt = (raw: net.Socket | undefined): void => {
    if (!raw) return;
    const st = byPort.get(portOf.get(raw) ?? -1);
    if (!st) {
      fail(`accepted a connection from an unknown port ${portOf.get(raw)}`);
      raw.destroy();
      return;
    }
    const s = adoptNative(raw);
    if (!s) {
      fail(`stream ${st.n}: adoptNative refused it`);
      return;
    }
    adopted++;
    st.native = s;
    s.on('error', () => undefined);
    s.on('close', () => (st.nativeClosed = true));
    s.on('drain', () => s.resume());
    s.setConsumer((buf, a, b) => {
      // All reads of one batch come before this iteration's setImmediate callbacks.
      if (batchReads++ === 0) {
        setImmediate(() => {
          maxBatch = Math.max(maxBatch, batchReads);
          batchReads = 0;
        });
      }
      if (st.destroyedByUs) fail(`stream ${st.n}: bytes delivered after destroy()`);
      // Actions waiting for a batch (this stream's own destroy among them, possibly).
      drain(batchQueue);
      if (st.destroyedByUs) return;
      const n = b - a;
      if (st.got + n > st.len) fail(`stream ${st.n}: ${st.got + n - st.len} bytes more than its peer sent`);
      else if (buf.compare(POOL, st.off + st.got, st.off + st.got + n, a, b) !== 0) fail(`stream ${st.n}: bytes ${st.got}..${st.got + n} are not what its peer sent`);
      st.got += n;
      // Echo as a range of the read buffer; stop reading while the kernel does not take it all.
      if (!s.write(buf, a, b)) s.pause();
      if (st.kind === 'destroy' && !st.destroyRequested && st.got >= st.cut) {
        st.destroyRequested = true;
        // The poll phase between collection and delivery (the hardest case) twice as often as the others.
        at(pick(DESTROY_PHASES), () => {
          st.destroyedByUs = true;
          s.destroy();
          // Most likely takes the id just freed.
          adopt(lateWaiting.shift());
        });
      }
    });
    s.resume();
  };

  const accepted: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (raw) => {
    portOf.set(raw, raw.remotePort);
    accepted.push(raw);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;

  const stride = Math.floor((POOL.length - MAX_LEN) / sockets);
  let destroys = 0;
  for (let n = 0; n < sockets; n++) {
    const r = rand();
    const len = r < 0.6 ? 1 + Math.floor(rand() * 3000) : r < 0.95 ? 3000 + Math.floor(rand() * 62000) : 65536 + Math.floor(rand() * (MAX_LEN - 65536));
    const k = rand();
    const kind = k < 0.2 ? 'destroy' : k < 0.25 ? 'reset' : 'full';
    if (kind === 'destroy') destroys++;
    // No more late streams than destroys before them: each destroy adopts one.
    const late = kind !== 'destroy' && rand() < 0.2 && streams.filter((x) => x.late).length < destroys;
    streams.push({ n, off: n * stride, len, kind, cut: Math.floor(rand() * len), mode: rand() < 0.7 ? 'burst' : 'random', late, peer: null as unknown as net.Socket, sent: 0, native: null, got: 0, echoed: 0, destroyRequested: false, destroyedByUs: false, nativeClosed: false, peerClosed: false });
  }

  // Connect (64 at a time).
  for (let i = 0; i < sockets; i += 64) {
    await Promise.all(
      streams.slice(i, i + 64).map(
        (st) =>
          new Promise<void>((resolve) => {
            const peer = net.connect(port, '127.0.0.1', () => {
              byPort.set(peer.localPort!, st);
              resolve();
            });
            st.peer = peer;
            peer.on('error', () => undefined);
            peer.on('close', () => (st.peerClosed = true));
            peer.on('data', (d: Buffer) => {
              if (st.echoed + d.length > st.len) fail(`stream ${st.n}: echo has ${st.echoed + d.length - st.len} bytes too many`);
              else if (d.compare(POOL, st.off + st.echoed, st.off + st.echoed + d.length) !== 0) fail(`stream ${st.n}: echoed bytes ${st.echoed}.. are not what it sent`);
              st.echoed += d.length;
              if (st.kind === 'full' && st.echoed === st.len) peer.end();
            });
          }),
      ),
    );
  }
  while (accepted.length < sockets) await new Promise((r) => setTimeout(r, 2));

  /** The peer sends up to `size` more bytes (a reset stream stops at its cut and resets). */
  const sendPiece = (st: Stream, size: number): void => {
    if (st.peer.destroyed || st.sent >= st.len) return;
    const end = Math.min(st.len, st.sent + Math.max(1, size), st.kind === 'reset' ? st.cut : st.len);
    if (end > st.sent) st.peer.write(POOL.subarray(st.off + st.sent, st.off + end));
    st.sent = end;
    if (st.kind === 'reset' && st.sent >= st.cut) st.peer.resetAndDestroy();
  };
  // Random streams: pieces of random size at random moments of their own.
  const sendRandom = (st: Stream): void => {
    while (st.sent < st.len && !st.peer.destroyed) {
      sendPiece(st, 1 + Math.floor(rand() * (rand() < 0.5 ? 512 : 65536)));
      if (rand() < 0.5) {
        const f = (): void => sendRandom(st);
        if (rand() < 0.5) setImmediate(f);
        else setTimeout(f, Math.floor(rand() * 5));
        return;
      }
    }
  };
  // Burst streams: at each burst all of them send at once, so that Warden's side finds hundreds
  // of sockets ready in one poll phase. Some bursts are many small pieces followed by a few big
  // ones (more ready sockets than the event table holds, then reads that fill the arena).
  const burstStreams = streams.filter((st) => st.mode === 'burst');
  let burstCount = 0;
  const burst = (): void => {
    // From the moment the first adoptions are done.
    if (waiting.length > 0) return;
    const live = burstStreams.filter((st) => st.sent < st.len && !st.peer.destroyed);
    if (burstCount++ < 10 || rand() < 0.7) {
      // Small enough that the event table (512) fills before the arena (256 KiB), then 64 KiB more.
      const big = new Set(Array.from({ length: 4 }, () => pick(live)));
      for (const st of live) if (!big.has(st)) sendPiece(st, 1 + Math.floor(rand() * 100));
      for (const st of big) if (st) sendPiece(st, 16384);
    } else {
      for (const st of live) sendPiece(st, 1 + Math.floor(rand() * 2048));
    }
    // The ticker last: its callback (queued destroys and adoptions) runs in the next poll phase after
    // the addon has collected this burst's bytes, before they are delivered.
    ticker.write('b');
  };
  const bursts = setInterval(burst, 10);
  for (const st of streams) if (st.mode === 'random') sendRandom(st);

  // Adopt: most at random phases, the late ones as destroys make room.
  for (const raw of accepted) {
    if (byPort.get(portOf.get(raw) ?? -1)?.late) {
      lateWaiting.push(raw);
    } else {
      waiting.push(raw);
      at(pick(PHASES), () => adopt(waiting.shift()));
    }
  }

  // Everything finishes: full streams echoed whole and both sides closed; the others closed.
  const finished = (st: Stream): boolean => (st.kind === 'full' ? st.echoed === st.len && st.nativeClosed && st.peerClosed : (st.native === null || st.nativeClosed) && st.peerClosed);
  const deadline = Date.now() + 45_000;
  while (streams.some((st) => !finished(st)) && Date.now() < deadline && failures.length === 0) {
    // Late streams left over once every destroy has happened: adopt them now.
    if (lateWaiting.length > 0 && streams.every((st) => st.kind !== 'destroy' || st.destroyedByUs || st.peerClosed)) adopt(lateWaiting.shift());
    await new Promise((r) => setTimeout(r, 20));
  }
  clearInterval(bursts);
  const unfinished = streams.filter((st) => !finished(st));
  for (const st of unfinished.slice(0, 5)) {
    fail(`stream ${st.n} (${st.kind}, ${st.len} bytes, cut ${st.cut}) did not finish: sent ${st.sent}, got ${st.got}, echoed ${st.echoed}, adopted ${st.native !== null}, closed native ${st.nativeClosed} peer ${st.peerClosed}`);
  }
  for (const st of streams) {
    if (st.kind === 'full' && st.got !== st.len && failures.length < 10) fail(`stream ${st.n}: Warden's side got ${st.got} of ${st.len} bytes`);
  }
  if (adopted !== sockets) fail(`adopted ${adopted} of ${sockets} sockets`);

  for (const st of streams) {
    st.native?.destroy();
    st.peer.destroy();
  }
  for (const raw of [...waiting, ...lateWaiting]) raw.destroy();
  ticker.destroy();
  await new Promise((r) => server.close(r));
  await new Promise((r) => tickServer.close(r));
  return {
    failures,
    streams: sockets,
    bytes: streams.reduce((n, st) => n + st.got + st.echoed, 0),
    destroyed: streams.filter((st) => st.destroyedByUs).length,
    resets: streams.filter((st) => st.kind === 'reset').length,
    unfinished: unfinished.length,
    maxBatch,
    phases,
  };
}

const runIf = nativeIo.available ? describe : describe.skip;

runIf('native socket I/O under stress', () => {
  it(
    '2,000 loopback streams (1,000 at a time) with random sizes and random adopt/destroy phases: every byte where it belongs',
    async () => {
      // Each stream holds up to three descriptors at once (the peer, the accepted socket, the addon's duplicate).
      const limit = fdLimit();
      const perRound = Math.max(50, Math.min(WANT_SOCKETS, Math.floor((limit - openFds() - 100) / 3)));
      const until = Date.now() + SECONDS * 1000;
      const before = openFds();
      let total = 0;
      let rounds = 0;
      const log: string[] = [];
      do {
        const seed = (SEED + rounds) | 0;
        const r = await round(perRound, seed);
        rounds++;
        total += r.streams;
        log.push(`round ${rounds} (seed ${seed}): ${r.streams} streams, ${(r.bytes / 1e6).toFixed(1)} MB checked, ${r.destroyed} destroyed, ${r.resets} reset, up to ${r.maxBatch} reads per batch, phases ${JSON.stringify(r.phases)}`);
        expect(r.failures, `seed ${seed} (WARDEN_STRESS_SEED=${seed} repeats its choices)\n${r.failures.join('\n')}`).toEqual([]);
        expect(r.unfinished).toBe(0);
      } while (total < 2000 || Date.now() < until);
      console.log(`native stress: ${log.join('\n')}`);
      expect(total).toBeGreaterThanOrEqual(2000);
      // Every descriptor the addon took is closed again.
      await expect.poll(() => openFds(), { timeout: 5000 }).toBeLessThanOrEqual(before + 10);
    },
    (SECONDS + 120) * 1000,
  );
});
