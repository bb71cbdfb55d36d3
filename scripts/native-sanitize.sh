#!/usr/bin/env bash
# Builds the native socket I/O addon (native/warden_io.c) with AddressSanitizer and
# UndefinedBehaviorSanitizer into a directory of its own (never native/build, which stays the
# normal build), then runs the native tests against that build: the cross-talk repro tests, the
# stress test and native-io.test.ts. Fails on any test failure and on any sanitizer report.
#
#   scripts/native-sanitize.sh            # what CI runs (.ci/run, after npm test)
#   WARDEN_STRESS_SECONDS=600 scripts/native-sanitize.sh   # a longer stress run under the sanitizers
#   WARDEN_SANITIZE_DIR=/tmp/asan scripts/native-sanitize.sh   # keep the build and the reports there
#
# Node itself is not instrumented: the ASan runtime is preloaded (LD_PRELOAD) so that it is the
# first in the process, as the instrumented addon requires. Leak detection is off (Node and V8 keep
# memory until exit on purpose); UBSan stops at its first report.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" != Linux ]; then
  echo "native-sanitize: the addon is built and tested on Linux only" >&2
  exit 1
fi
CC=${CC:-cc}
out=${WARDEN_SANITIZE_DIR:-$(mktemp -d /tmp/warden-sanitize.XXXXXX)}
mkdir -p "$out"
rm -f "$out"/asan.* "$out"/ubsan.*

# Node's headers: npm's nodedir, the installed Node's include directory, or node-gyp's cache
# (filled by `node-gyp install` when none of them has node_api.h).
node_include() {
  node -e '
    const fs = require("fs"), path = require("path"), os = require("os");
    const v = process.version.slice(1);
    const dirs = [
      process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, "include", "node"),
      path.resolve(path.dirname(process.execPath), "..", "include", "node"),
      path.join(os.homedir(), ".cache", "node-gyp", v, "include", "node"),
      path.join(os.homedir(), ".node-gyp", v, "include", "node"),
    ].filter(Boolean);
    const d = dirs.find((d) => fs.existsSync(path.join(d, "node_api.h")));
    if (d) console.log(d);'
}
inc=$(node_include)
if [ -z "$inc" ]; then
  gyp=$(node -e 'const p=require("path");const c=[process.env.npm_config_node_gyp,p.join(p.dirname(process.execPath),"..","lib","node_modules","npm","node_modules","node-gyp","bin","node-gyp.js")].filter(Boolean).find(f=>require("fs").existsSync(f));if(c)console.log(c)')
  [ -n "$gyp" ] && node "$gyp" install >/dev/null 2>&1 || true
  inc=$(node_include)
fi
if [ -z "$inc" ]; then
  echo "native-sanitize: Node's headers (node_api.h) not found" >&2
  exit 1
fi

libasan=$("$CC" -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
  echo "native-sanitize: $CC has no AddressSanitizer runtime (libasan.so); install gcc's (Debian: build-essential)" >&2
  exit 1
fi
libasan=$(readlink -f "$libasan")

echo "native-sanitize: building $out/warden_io.node with -fsanitize=address,undefined"
"$CC" -shared -fPIC -O1 -g -fno-omit-frame-pointer \
  -fsanitize=address,undefined -fno-sanitize-recover=all \
  -Wall -Wextra -Wno-unused-parameter -Werror \
  -DNODE_GYP_MODULE_NAME=warden_io -I"$inc" \
  native/warden_io.c -o "$out/warden_io.node"

export WARDEN_NATIVE_IO_ADDON="$out/warden_io.node"
export LD_PRELOAD="$libasan${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:log_path=$out/asan"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:report_error_type=1:log_path=$out/ubsan"

# The sanitized build is the one that loads (not the normal one, not Node's sockets).
node -e '
  const b = require(process.env.WARDEN_NATIVE_IO_ADDON);
  if (typeof b.init !== "function") process.exit(1);' || { echo "native-sanitize: the sanitized addon does not load" >&2; exit 1; }
if ! nm -D "$WARDEN_NATIVE_IO_ADDON" | grep -q __asan_init; then
  echo "native-sanitize: $WARDEN_NATIVE_IO_ADDON is not instrumented" >&2
  exit 1
fi

# The stress test sizes its rounds to the descriptor limit: give it the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

set +e
npx vitest run \
  test/integration/native-crosstalk.test.ts \
  test/integration/native-stress.test.ts \
  test/integration/native-io.test.ts 2>&1 | tee "$out/vitest.log"
status=${PIPESTATUS[0]}
set -e

reports=$(ls "$out"/asan.* "$out"/ubsan.* 2>/dev/null || true)
if [ -n "$reports" ]; then
  echo "native-sanitize: sanitizer reports:" >&2
  for f in $reports; do echo "--- $f" >&2; cat "$f" >&2; done
  exit 1
fi
# Reports that went to a test process's stderr instead.
if grep -qE 'runtime error:|ERROR: (Address|UndefinedBehavior)Sanitizer' "$out/vitest.log"; then
  echo "native-sanitize: sanitizer reports in the test output:" >&2
  grep -E -A8 'runtime error:|ERROR: (Address|UndefinedBehavior)Sanitizer' "$out/vitest.log" >&2
  exit 1
fi
if [ "$status" != 0 ]; then
  echo "native-sanitize: the native tests failed under the sanitizers (exit $status)" >&2
  exit "$status"
fi
echo "native-sanitize: native tests passed under AddressSanitizer and UBSan, no reports"
# A directory of our own making is removed when all is well (kept, with the reports, otherwise).
if [ -z "${WARDEN_SANITIZE_DIR:-}" ]; then rm -rf "$out"; fi
