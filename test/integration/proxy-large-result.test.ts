/**
 * A 1,000,000-row SELECT through Warden (a real child process) keeps Warden's
 * RSS growth bounded, also when the client stops reading for a while
 * (backpressure reaches the upstream instead of Warden's memory).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startCluster, baseYaml, PASSWORDS } from '../helpers/warden-env.js';
import { startWardenProcess, rssBytes, type WardenProcess } from '../helpers/warden-process.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { nativeIo } from '../../src/proxy/transport/native-io.js';

let cluster: PgCluster;

beforeAll(async () => {
  cluster = await startCluster();
});

afterAll(async () => {
  await cluster?.stop();
});

// Both relay paths: the native socket I/O addon, and Node's sockets (without the addon).
describe.each([
  { mode: 'native', env: {} as NodeJS.ProcessEnv, skip: !nativeIo.available },
  { mode: 'node', env: { WARDEN_NATIVE_IO: '0' } as NodeJS.ProcessEnv, skip: false },
])('socket I/O: $mode', ({ env, skip }) => {
  let warden: WardenProcess;

  beforeAll(async () => {
    if (!skip) warden = await startWardenProcess(baseYaml(cluster.port).replace('port: 0', 'port: __PORT__'), env);
  });

  afterAll(async () => {
    await warden?.stop();
  });

  it.skipIf(skip)('streams 1M rows (~150 MB) with RSS growth under 100 MB, with a slow reader', async () => {
    const pid = warden.child.pid!;
    const c = new pg.Client({ host: '127.0.0.1', port: warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
    await c.connect();
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50);
    try {
      // Pause the client's socket for 3 s early in the result: Warden must not buffer the rest.
      const stream = (c as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
      let paused = false;
      stream.on('data', () => {
        if (paused) return;
        paused = true;
        stream.pause();
        setTimeout(() => stream.resume(), 3000);
      });
      const r = await c.query({
        text: "select g, repeat('x', 120) as filler from generate_series(1, 1000000) g",
        rowMode: 'array',
      });
      expect(r.rowCount).toBe(1_000_000);
      expect(r.rows[999_999][0]).toBe(1_000_000);
    } finally {
      clearInterval(sampler);
      await c.end();
    }
    const growth = peak - before;
    console.log(`warden RSS before ${(before / 2 ** 20).toFixed(1)} MB, peak ${(peak / 2 ** 20).toFixed(1)} MB, growth ${(growth / 2 ** 20).toFixed(1)} MB`);
    expect(growth).toBeLessThan(100 * 2 ** 20);
  }, 120_000);
});
