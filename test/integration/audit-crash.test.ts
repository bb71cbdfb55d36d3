/**
 * Nothing lost: under a write load through Warden, `kill -9` Warden several
 * times, for each durability level of the SQLite store (`fsync` and `os`: both
 * promise that a statement's record has reached at least the OS before the
 * statement runs, which is what survives the death of Warden's process).
 * PostgreSQL's own statement log (log_statement = all) is the witness: every
 * statement the upstream executed must have a `statement.begin` record. After
 * each kill `warden audit verify` (the CLI) must pass on the chain as it was
 * left, and each Warden restarted on the same store must resume that chain
 * (its records continue the sequence instead of starting a new one).
 *
 * Records are read through the CLI (`warden audit export`), not the store's
 * tables, so the test holds whatever the store keeps on disk.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, PASSWORDS, startCluster } from '../helpers/warden-env.js';
import { runCli, startWardenProcess, type WardenProcess } from '../helpers/warden-process.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';

const INSTANCE = 'crash-test';
const ROUNDS = 4; // three kill -9, then a clean stop
const MIN_PER_ROUND = 40; // statements answered in a round before its Warden is killed
const LEVELS = ['fsync', 'os'] as const;

interface ExportedRecord {
  seq: number;
  instance: string;
  type: string;
  data: Record<string, unknown>;
}

interface VerifyReport {
  ok: boolean;
  instances: { instance: string; report: { ok: boolean; records: number; lastSeq: number } }[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let cluster: PgCluster;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-crash-'));

beforeAll(async () => {
  cluster = await startCluster({ log_statement: 'all', log_line_prefix: '%m [%p] app=%a ' });
  for (const level of LEVELS) {
    await cluster.query(`CREATE TABLE crash_${level} (id bigint, token text)`, 'app');
    await cluster.query(`GRANT ALL ON crash_${level} TO warden_svc`, 'app');
  }
});
afterAll(async () => {
  await cluster?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

/** `warden audit verify --json` on the store: exit 0 and ok, with this instance's report. */
async function verify(store: string, when: string): Promise<{ records: number; lastSeq: number }> {
  const v = await runCli(['audit', 'verify', '--store', store, '--json']);
  expect(v.code, `verify ${when}: ${v.err}${v.out}`).toBe(0);
  const report = JSON.parse(v.out) as VerifyReport;
  expect(report.ok, `verify ${when}: ${v.out}`).toBe(true);
  const mine = report.instances.find((i) => i.instance === INSTANCE);
  expect(mine, `verify ${when}: no chain for ${INSTANCE}: ${v.out}`).toBeDefined();
  return { records: mine!.report.records, lastSeq: mine!.report.lastSeq };
}

/** Every record of the store, oldest first, through `warden audit export`. */
async function exportRecords(store: string): Promise<ExportedRecord[]> {
  const e = await runCli(['audit', 'export', '--store', store, '--instance', INSTANCE]);
  expect(e.code, e.err).toBe(0);
  return e.out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as ExportedRecord);
}

describe.each(LEVELS)('audit (sqlite, durability: %s) survives kill -9 with nothing lost', (level) => {
  const dir = path.join(root, level);
  const store = `sqlite:${path.join(dir, 'audit.db')}`;
  const table = `crash_${level}`;
  // tok_<level>_<round>_<n>: the level keeps the two runs apart in the shared PostgreSQL log.
  const TOKEN = new RegExp(`tok_${level}_(\\d+)_(\\d+)`, 'g');

  it('every statement the upstream ran has a statement.begin record; the chain verifies and resumes after each kill', async () => {
    fs.mkdirSync(dir, { recursive: true });
    const yaml = baseYaml(cluster.port, `audit:\n  store: ${store}\n  instance: ${INSTANCE}\n  durability: ${level}\n  on_failure: block\n`).replace(
      'port: 0 }',
      'port: __PORT__ }',
    );
    let seq = 0;
    const sent = new Set<string>();
    const pids: number[] = [];
    const lastSeqAfter: number[] = []; // verify's last seq once round i's Warden was gone
    for (let round = 0; round < ROUNDS; round++) {
      const w: WardenProcess = await startWardenProcess(yaml);
      pids.push(w.child.pid!);
      let stop = false;
      let acked = 0; // statements of this round PostgreSQL answered
      const worker = async (n: number): Promise<void> => {
        const c = new pg.Client({ host: '127.0.0.1', port: w.port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
        c.on('error', () => undefined);
        try {
          await c.connect();
          while (!stop) {
            const tok = (): string => {
              const t = `tok_${level}_${round}_${++seq}`;
              sent.add(t);
              return t;
            };
            // Simple and extended protocol, and an explicit transaction: the token is in the
            // statement text each way.
            if (n === 0) await c.query(`INSERT INTO ${table} VALUES (${seq}, '${tok()}')`);
            else if (n === 1) await c.query(`INSERT INTO ${table} VALUES ($1, '${tok()}')`, [seq]);
            else {
              await c.query('BEGIN');
              await c.query(`INSERT INTO ${table} VALUES (${seq}, '${tok()}')`);
              await c.query(`UPDATE ${table} SET token = token WHERE token = '${tok()}'`);
              await c.query('COMMIT');
            }
            acked++;
          }
        } catch {
          // Warden was killed under us.
        } finally {
          await c.end().catch(() => undefined);
        }
      };
      const workers = [0, 1, 2, 3].map(worker);
      // Kill under load: once the round has run statements (however slow the machine is), at a
      // different moment each round.
      const t0 = Date.now();
      while (acked < MIN_PER_ROUND && Date.now() - t0 < 30_000) await sleep(20);
      expect(acked, `statements answered in round ${round} before the kill`).toBeGreaterThanOrEqual(MIN_PER_ROUND);
      await sleep(150 + round * 120);
      if (round < ROUNDS - 1) {
        w.child.kill('SIGKILL');
        await new Promise((r) => (w.child.exitCode !== null || w.child.signalCode !== null ? r(undefined) : w.child.once('exit', r)));
        stop = true;
        await Promise.all(workers);
      } else {
        stop = true;
        await Promise.all(workers);
        expect(await w.stop()).toBe(0);
      }
      // The chain as this Warden left it (killed or stopped) verifies, and is longer than the
      // one the previous Warden left: the restart resumed it.
      const v = await verify(store, `after round ${round} (${round < ROUNDS - 1 ? 'kill -9' : 'clean stop'})`);
      if (round > 0) expect(v.lastSeq).toBeGreaterThan(lastSeqAfter[round - 1]);
      lastSeqAfter.push(v.lastSeq);
    }

    // The witness: statements PostgreSQL logged as executed.
    await sleep(300);
    const log = fs.readFileSync(path.join(cluster.dataDir, 'postgres.log'), 'utf8');
    const executed = new Set<string>();
    const executedPerRound = new Array<number>(ROUNDS).fill(0);
    for (const line of log.split('\n')) {
      if (!/LOG:\s+(statement|execute [^:]*):/.test(line)) continue;
      for (const m of line.matchAll(TOKEN)) {
        if (!executed.has(m[0])) executedPerRound[Number(m[1])]++;
        executed.add(m[0]);
      }
    }
    const records = await exportRecords(store);
    const audited = new Set<string>();
    for (const r of records) {
      if (r.type !== 'statement.begin') continue;
      for (const m of JSON.stringify(r.data).matchAll(TOKEN)) audited.add(m[0]);
    }
    // Each kill came under load: every round ran statements upstream.
    for (const [round, n] of executedPerRound.entries()) expect(n, `statements executed in round ${round}`).toBeGreaterThanOrEqual(MIN_PER_ROUND);
    expect(executed.size).toBeGreaterThan(100);
    const missing = [...executed].filter((t) => !audited.has(t));
    expect(missing).toEqual([]);
    expect(sent.size).toBeGreaterThanOrEqual(executed.size);
    // And the upstream's table agrees with its log.
    const rows = await cluster.query(`SELECT count(*)::int AS n FROM ${table}`, 'app');
    expect(rows.rows[0].n).toBeLessThanOrEqual(audited.size);

    // One chain across the crashes: seqs 1..N with no gap or repeat, what verify counted, and
    // each Warden's own warden.start record after the end of the chain the previous one left.
    const seqs = records.map((r) => r.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(records.length).toBe(lastSeqAfter[ROUNDS - 1]);
    expect(records.length).toBeGreaterThan(executed.size);
    const starts = records.filter((r) => r.type === 'warden.start');
    expect(starts.map((r) => r.data.pid)).toEqual(pids);
    for (const [round, s] of starts.entries()) {
      expect(s.seq, `warden.start of round ${round}`).toBeLessThanOrEqual(lastSeqAfter[round]);
      if (round > 0) expect(s.seq, `warden.start of round ${round}`).toBeGreaterThan(lastSeqAfter[round - 1]);
    }
  }, 90_000);
});
