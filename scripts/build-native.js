#!/usr/bin/env node
// Builds Warden's native socket I/O addon (native/warden_io.c) with node-gyp; run by `npm install`
// and `npm ci` (the `prepare` script) and by `npm run build:native`.
//
// node-gyp is the one npm ships with (npm names it in npm_config_node_gyp for its scripts). The
// headers are Node's own: npm_config_nodedir when npm sets it, else the installed Node's include
// directory when it has node_api.h, so no download is needed.
//
// A failed build does not fail the install: Warden then relays through Node's sockets (slower,
// otherwise the same) and says so when it starts. WARDEN_REQUIRE_NATIVE=1 makes it an error.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'native');

function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ];
  return candidates.find((c) => c && existsSync(c));
}

function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

function fail(why) {
  const msg = `warden: the native socket I/O addon was not built (${why}); Warden will relay through Node.js sockets, which costs more CPU per statement`;
  if (process.env.WARDEN_REQUIRE_NATIVE === '1') {
    console.error(`${msg}. WARDEN_REQUIRE_NATIVE=1 makes this an error.`);
    process.exit(1);
  }
  console.warn(msg);
  process.exit(0);
}

// Linux only: that is where it is built, tested, stress-tested and run under sanitizers (CI). The C
// code relies on Linux behaviour (MSG_NOSIGNAL, level-triggered uv_poll) and refuses to compile
// elsewhere; on macOS and Windows Warden relays through Node's sockets.
if (process.platform !== 'linux') fail(`it is built and tested on Linux only, not ${process.platform}`);
const gyp = nodeGyp();
if (!gyp) fail('node-gyp not found: it comes with npm');
const args = [gyp, 'rebuild', '--directory', dir];
const nd = nodeDir();
if (nd) args.push(`--nodedir=${nd}`);
const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.status !== 0) {
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.trim() && !l.startsWith('gyp info'));
  console.warn(lines.slice(-15).join('\n'));
  fail(`node-gyp exited with ${r.status ?? r.signal}`);
}
console.log(`warden: built native/build/Release/warden_io.node`);
