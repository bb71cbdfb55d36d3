/**
 * `warden audit tail -f`: `-n 0` starts at the end of the log (only records written from now
 * on), `-n N` shows the last N then follows; without -f, `-n 0` prints nothing. Runs the built
 * CLI against a SQLite store a live AuditLog keeps writing.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import { silentLogger } from '../../src/log/logger.js';
import { BIN, runCli } from '../helpers/warden-process.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-tail-'));
const file = path.join(dir, 'audit.db');
let log: AuditLog;
let n = 0;

const write = (marker: string): Promise<unknown> =>
  log.writeAhead('statement.begin', { session: 's1', identity: 'alice', sql: `SELECT '${marker}'`, tables: [], classes: ['read'], kinds: ['select'], decision: { action: 'allow', rule: 'default' } });

beforeAll(async () => {
  log = await AuditLog.open({ store: await openSqliteStore(file), instance: 'tail-test', onFailure: 'block', log: silentLogger() });
  for (let i = 0; i < 10; i++) await write(`old-${i}`);
});

afterAll(async () => {
  await log?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Start `audit tail -f` with these arguments; once it has printed `first` lines, write new
 * records until it has printed `want` of them; return what it printed.
 */
async function follow(args: string[], want: number, first = 0): Promise<string> {
  const child = spawn(process.execPath, [BIN, 'audit', 'tail', '--store', `sqlite:${file}`, '-f', ...args]);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const t0 = Date.now();
    while (out.split('\n').length - 1 < first) {
      if (Date.now() - t0 > 30_000) throw new Error(`tail printed: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // The CLI's start takes a while on a busy machine: keep writing until it has seen enough.
    while ((out.match(/new-\d+/g) ?? []).length < want) {
      if (Date.now() - t0 > 30_000) throw new Error(`tail printed: ${out}`);
      await write(`new-${n++}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    return out;
  } finally {
    child.kill('SIGTERM');
  }
}

describe('warden audit tail', () => {
  it('-f -n 0 prints only the records written after it started', async () => {
    const out = await follow(['-n', '0'], 3);
    expect(out).not.toMatch(/old-/);
    const news = (out.match(/new-(\d+)/g) ?? []).map((m) => Number(m.slice(4)));
    // In order, none skipped from the first one it printed.
    news.forEach((v, i) => expect(v).toBe(news[0]! + i));
  });

  it('-f -n 2 prints the last two records first, then the new ones', async () => {
    const before = n;
    const out = await follow(['-n', '2'], 4, 2);
    const nums = (out.match(/new-(\d+)/g) ?? []).map((m) => Number(m.slice(4)));
    expect(out).not.toMatch(/old-/);
    // The two written last before it started, then every new one, in order.
    expect(nums.slice(0, 2)).toEqual([before - 2, before - 1]);
    nums.forEach((v, i) => expect(v).toBe(before - 2 + i));
    expect(nums.length).toBeGreaterThanOrEqual(4);
  });

  it('-n 0 without -f prints nothing; -n 3 prints three', async () => {
    const none = await runCli(['audit', 'tail', '--store', `sqlite:${file}`, '-n', '0']);
    expect(none.code).toBe(0);
    expect(none.out).toBe('');
    const three = await runCli(['audit', 'tail', '--store', `sqlite:${file}`, '-n', '3']);
    expect(three.out.trim().split('\n')).toHaveLength(3);
  });
});
