/**
 * Nothing lost: under a write load through Warden, `kill -9` Warden several
 * times. PostgreSQL's own statement log (log_statement = all) is the witness:
 * every statement the upstream executed must have an audit record, and the
 * chain must still verify after the crashes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { baseYaml, PASSWORDS, startCluster } from '../helpers/warden-env.js';
import { runCli, startWardenProcess, type WardenProcess } from '../helpers/warden-process.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-crash-'));
const dbFile = path.join(dir, 'audit.db');
const TOKEN = /tok_(\d+)_(\d+)/g;

describe('audit survives kill -9 with nothing lost', () => {
  let cluster: PgCluster;
  let yaml: string;

  beforeAll(async () => {
    cluster = await startCluster({ log_statement: 'all', log_line_prefix: '%m [%p] app=%a ' });
    await cluster.query('CREATE TABLE crash_t (id bigint, token text)', 'app');
    await cluster.query('GRANT ALL ON crash_t TO warden_svc', 'app');
    yaml = baseYaml(cluster.port, `audit:\n  store: sqlite:${dbFile}\n  instance: crash-test\n`).replace('port: 0 }', 'port: __PORT__ }');
  });
  afterAll(async () => {
    await cluster?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('every statement the upstream ran has an audit record', async () => {
    let seq = 0;
    const sent = new Set<string>();
    for (let round = 0; round < 4; round++) {
      const w: WardenProcess = await startWardenProcess(yaml);
      let stop = false;
      const worker = async (n: number): Promise<void> => {
        const c = new pg.Client({ host: '127.0.0.1', port: w.port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
        c.on('error', () => undefined);
        try {
          await c.connect();
          while (!stop) {
            const tok = `tok_${round}_${++seq}`;
            sent.add(tok);
            // Both protocols: the token is in the statement text either way.
            if (n % 2 === 0) await c.query(`INSERT INTO crash_t VALUES (${seq}, '${tok}')`);
            else await c.query(`INSERT INTO crash_t VALUES ($1, '${tok}')`, [seq]);
          }
        } catch {
          // Warden was killed under us.
        } finally {
          await c.end().catch(() => undefined);
        }
      };
      const workers = [0, 1, 2, 3].map(worker);
      await new Promise((r) => setTimeout(r, 400 + round * 150));
      if (round < 3) {
        w.child.kill('SIGKILL');
        await new Promise((r) => w.child.once('exit', r));
      } else {
        stop = true;
        await Promise.all(workers);
        expect(await w.stop()).toBe(0);
      }
      stop = true;
      await Promise.all(workers);
    }

    // The witness: statements PostgreSQL logged as executed.
    await new Promise((r) => setTimeout(r, 300));
    const log = fs.readFileSync(path.join(cluster.dataDir, 'postgres.log'), 'utf8');
    const executed = new Set<string>();
    for (const line of log.split('\n')) {
      if (!/LOG:\s+(statement|execute [^:]*):/.test(line)) continue;
      for (const m of line.matchAll(TOKEN)) executed.add(m[0]);
    }
    const audited = new Set<string>();
    const db = new Database(dbFile, { readonly: true });
    try {
      for (const row of db.prepare("SELECT data FROM records WHERE type = 'statement.begin'").iterate() as IterableIterator<{ data: string }>) {
        for (const m of row.data.matchAll(TOKEN)) audited.add(m[0]);
      }
    } finally {
      db.close();
    }
    expect(executed.size).toBeGreaterThan(100);
    const missing = [...executed].filter((t) => !audited.has(t));
    expect(missing).toEqual([]);
    // And the upstream's table agrees with its log.
    const rows = await cluster.query('SELECT count(*)::int AS n FROM crash_t', 'app');
    expect(rows.rows[0].n).toBeLessThanOrEqual(audited.size);

    // The chain is intact across the crashes (each restart resumed it).
    const v = await runCli(['audit', 'verify', '--store', `sqlite:${dbFile}`, '--json']);
    expect(v.code, v.err).toBe(0);
    const report = JSON.parse(v.out) as { ok: boolean; instances: { instance: string; report: { records: number } }[] };
    expect(report.ok).toBe(true);
    expect(report.instances[0].report.records).toBeGreaterThan(executed.size);
    expect(sent.size).toBeGreaterThanOrEqual(executed.size);
  }, 120_000);
});
