#!/usr/bin/env node
// A bare Node.js TCP relay, the bench's reference for what any proxy written for Node.js can
// reach on this machine: every byte from a client goes to the upstream and back, with no
// framing and no authentication of its own (clients log in to PostgreSQL through it).
//
//   node bench/node-relay.js LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT [pipe|onread]
//
// pipe    socket.pipe() both ways: the "bare Node.js relay" of issue 2's acceptance text.
// onread  reads into one preallocated buffer (net's `onread` option, as Warden's relay does)
//         and writes a copy of each chunk: the cheapest reading Node offers.
import net from 'node:net';

const [listenPort, upHost, upPort, mode = 'pipe'] = process.argv.slice(2);
if (!listenPort || !upHost || !upPort || !['pipe', 'onread', 'native'].includes(mode)) {
  console.error('usage: node bench/node-relay.js LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT [pipe|onread]');
  process.exit(2);
}

function closeBoth(a, b) {
  const end = () => {
    a.destroy();
    b.destroy();
  };
  for (const s of [a, b]) {
    s.on('error', end);
    s.on('close', end);
  }
}

function relayPipe(client) {
  const up = net.connect({ host: upHost, port: Number(upPort), noDelay: true });
  client.pipe(up).pipe(client);
  closeBoth(client, up);
}

const SHARED = Buffer.allocUnsafe(64 * 1024);
const forwardTo = (peer) => ({
  buffer: SHARED,
  callback: (n) => {
    // A copy: the write may complete after the next read reuses SHARED.
    peer().write(Buffer.from(SHARED.subarray(0, n)));
    return true;
  },
});

function relayOnread(accepted) {
  let client = null;
  const up = net.connect({ host: upHost, port: Number(upPort), noDelay: true, onread: forwardTo(() => client) });
  // Accepted sockets take no `onread`: move the paused socket's handle into one that does.
  const handle = accepted._handle;
  accepted._handle = null;
  accepted.destroy();
  client = new net.Socket({ handle, readable: true, writable: true, onread: forwardTo(() => up) });
  client.resume();
  closeBoth(client, up);
}

// native: Warden's native socket I/O (native/warden_io.c): reads of a loop iteration come to
// JavaScript in one batch, writes are direct send() calls.
import { createRequire } from 'node:module';
let io;
const peers = [];
function onBatch(count) {
  const ev = io.events;
  for (let i = 0; i < count; i++) {
    const [id, kind, a, b] = ev.subarray(i * 4, i * 4 + 4);
    const p = peers[id];
    if (!p || p.closed) continue;
    if (kind === io.EV_READ) {
      if (io.writeArena(p.peer, a, b) < 0) p.close();
    } else if (kind === io.EV_EOF || kind === io.EV_ERROR) p.close();
  }
}
function relayNative(accepted) {
  if (!io) {
    io = createRequire(import.meta.url)('../native/build/Release/warden_io.node');
    io.init(onBatch, {});
  }
  const up = net.connect({ host: upHost, port: Number(upPort), noDelay: true });
  up.once('connect', () => {
    // Ids are never reused here: the relay only runs for a bench.
    const c = peers.length;
    const u = c + 1;
    io.open(accepted._handle.fd, c);
    io.open(up._handle.fd, u);
    const state = { closed: false };
    const close = () => {
      if (state.closed) return;
      state.closed = true;
      io.destroy(c);
      io.destroy(u);
    };
    peers[c] = { peer: u, close, get closed() { return state.closed; } };
    peers[u] = { peer: c, close, get closed() { return state.closed; } };
    accepted.destroy();
    up.destroy();
    io.setReading(c, true);
    io.setReading(u, true);
  });
  up.on('error', () => accepted.destroy());
}

const server = net.createServer(
  { noDelay: true, pauseOnConnect: mode !== 'pipe' },
  mode === 'onread' ? relayOnread : mode === 'native' ? relayNative : relayPipe,
);
server.listen(Number(listenPort), '127.0.0.1', () => console.log(`node-relay (${mode}) listening on 127.0.0.1:${listenPort}`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
