/**
 * Big statements do not stall other sessions: texts from 256 KiB up are analysed on a worker
 * thread, so a probe session's SELECT 1 keeps answering promptly while another client sends
 * 8 MB statements, and Warden's memory returns to its baseline once the worker has been idle.
 * Warden runs as its own process (as deployed); the big statements come from psql, another
 * process, so the test's own event loop only measures.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { baseYaml, PASSWORDS, startCluster } from '../helpers/warden-env.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { rssBytes, startWardenProcess, type WardenProcess } from '../helpers/warden-process.js';
import { runPsql } from '../helpers/psql.js';

const RULES = `rules:
  - name: agents-read-only
    match: { kind: agent, statement: [write, ddl] }
    action: deny
default: allow
`;

let cluster: PgCluster;
let warden: WardenProcess;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-big-'));

beforeAll(async () => {
  cluster = await startCluster();
  warden = await startWardenProcess(baseYaml(cluster.port, RULES).replace('port: 0', 'port: __PORT__'));
});

afterAll(async () => {
  await warden?.stop();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** An 8 MB statement: SELECT with a long IN list. */
function bigStatement(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(String(i));
  return `SELECT count(*) FROM generate_series(1, 3) g WHERE g IN (${parts.join(',')});\n`;
}

it('a probe session stays fast while another client sends 8 MB statements, and memory returns to its baseline', async () => {
  const probe = new pg.Client({ host: '127.0.0.1', port: warden.port, user: 'bob', password: PASSWORDS.bob, database: 'app' });
  await probe.connect();
  await probe.query('select 1');
  const baseline = rssBytes(warden.child.pid!);

  const file = path.join(dir, 'big.sql');
  const stmt = bigStatement(1_150_000);
  expect(stmt.length).toBeGreaterThan(8_000_000);
  fs.writeFileSync(file, stmt.repeat(3));

  const latencies: number[] = [];
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(warden.child.pid!))), 250);
  let sending = true;
  const probing = (async () => {
    while (sending) {
      const t0 = performance.now();
      await probe.query('select 1');
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const big = await runPsql({ port: warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', args: ['-X', '-q', '-t', '-f', file] });
  sending = false;
  clearInterval(sampler);
  await probing;
  expect(big.err).toBe('');
  expect(big.out.trim().split(/\s+/)).toEqual(['3', '3', '3']);
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
  console.log(`probe: ${latencies.length} queries, median ${latencies[Math.floor(latencies.length / 2)]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms; RSS baseline ${(baseline / 1e6).toFixed(0)} MB`);
  expect(latencies.length).toBeGreaterThan(20);
  expect(p99).toBeLessThan(50);

  // Memory: the parser's memory is the worker's, and the worker ends once idle: RSS comes back
  // near the baseline (not to the peak the parse needed, which an earlier version kept for good).
  let rss = rssBytes(warden.child.pid!);
  for (let i = 0; i < 60 && rss > baseline + 150e6; i++) {
    await new Promise((r) => setTimeout(r, 500));
    rss = rssBytes(warden.child.pid!);
  }
  console.log(`RSS: baseline ${(baseline / 1e6).toFixed(0)} MB, peak ${(peak / 1e6).toFixed(0)} MB, after ${(rss / 1e6).toFixed(0)} MB`);
  expect(rss).toBeLessThan(baseline + 150e6);
  await probe.end();
}, 120_000);
