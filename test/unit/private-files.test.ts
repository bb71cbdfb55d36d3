/**
 * Audit and state files are created 0600 and directories Warden creates 0700
 * (util/private-file.ts); a group/world-writable directory or an existing file
 * others may read is warned about, naming it, and left as it is.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainWriter } from '../../src/audit/chain.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import { openSqliteState } from '../../src/store/sqlite.js';
import { createPrivateFile, ensurePrivateDir } from '../../src/util/private-file.js';

let dir: string;
let umask: number;
const mode = (f: string): number => statSync(f).mode & 0o777;

function collectingLog(): { warn(obj: object, msg: string): void; lines: { obj: object; msg: string }[] } {
  const lines: { obj: object; msg: string }[] = [];
  return { lines, warn: (obj, msg) => void lines.push({ obj, msg }) };
}

beforeAll(() => {
  // The usual umask: files default to 0644, directories to 0755.
  umask = process.umask(0o022);
  dir = mkdtempSync(path.join(os.tmpdir(), 'warden-private-'));
});
afterAll(() => {
  process.umask(umask);
  rmSync(dir, { recursive: true, force: true });
});

describe('file modes of stores', () => {
  it('the sqlite audit database and its -wal and -shm files are 0600', async () => {
    const file = path.join(dir, 'audit.db');
    const store = await openSqliteStore(file, { durability: 'os' });
    const w = new ChainWriter({ instance: 'modes' });
    await store.append([w.append('statement.begin', { sql: 'SELECT 1' }), w.append('statement.end', {})]);
    expect(mode(file)).toBe(0o600);
    expect(mode(`${file}-wal`)).toBe(0o600);
    expect(mode(`${file}-shm`)).toBe(0o600);
    await store.close();
  });

  it('the sqlite state database and its -wal file are 0600', async () => {
    const file = path.join(dir, 'state.db');
    const store = await openSqliteState(file);
    expect(mode(file)).toBe(0o600);
    expect(mode(`${file}-wal`)).toBe(0o600);
    await store.close();
  });
});

describe('ensurePrivateDir / createPrivateFile', () => {
  it('creates a missing directory (and its parents) 0700 when asked, and refuses otherwise', () => {
    const d = path.join(dir, 'new', 'nested');
    expect(() => ensurePrivateDir(d)).toThrow(`directory ${d} does not exist (create it first, mode 0700)`);
    ensurePrivateDir(d, { create: true });
    expect(mode(d)).toBe(0o700);
    expect(mode(path.dirname(d))).toBe(0o700);
  });

  it('creates a file 0600, never replaces an existing one, and names a missing directory', () => {
    const f = path.join(dir, 'witness.jsonl');
    expect(createPrivateFile(f)).toEqual({ path: f, created: true });
    expect(mode(f)).toBe(0o600);
    writeFileSync(f, 'kept\n');
    expect(createPrivateFile(f).created).toBe(false);
    expect(statSync(f).size).toBe(5);
    const missing = path.join(dir, 'absent', 'x.db');
    expect(() => createPrivateFile(missing, { what: 'audit database' })).toThrow(`audit database ${missing}: directory ${path.dirname(missing)} does not exist`);
  });

  it('warns once, naming it, about a group- or world-writable directory, and leaves its mode alone', () => {
    const d = path.join(dir, 'shared');
    mkdirSync(d);
    chmodSync(d, 0o777);
    const log = collectingLog();
    createPrivateFile(path.join(d, 'a.db'), { log, what: 'audit database' });
    createPrivateFile(path.join(d, 'b.db'), { log, what: 'audit database' });
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0].msg).toContain(`directory ${d} is writable by every user`);
    expect(log.lines[0].obj).toEqual({ directory: d, mode: '0777' });
    expect(mode(d)).toBe(0o777);
    expect(mode(path.join(d, 'a.db'))).toBe(0o600);

    const g = path.join(dir, 'group');
    mkdirSync(g);
    chmodSync(g, 0o770);
    ensurePrivateDir(g, { log });
    expect(log.lines[1].msg).toContain(`directory ${g} is writable by its group`);
  });

  it('warns about an existing file group or others may read (an audit database made by an older version)', () => {
    const f = path.join(dir, 'old.db');
    writeFileSync(f, '');
    chmodSync(f, 0o644);
    const log = collectingLog();
    createPrivateFile(f, { log, what: 'audit database' });
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0].msg).toContain(`audit database ${f} is readable or writable by group or others (mode 0644)`);
    expect(log.lines[0].msg).toContain(`chmod 600 ${f} ${f}-wal ${f}-shm`);
    expect(mode(f)).toBe(0o644);
  });

  it('without a logger, warns through process warnings (the state store has no logger)', async () => {
    const d = path.join(dir, 'open');
    mkdirSync(d);
    chmodSync(d, 0o757);
    const warnings: string[] = [];
    const on = (w: Error): void => void warnings.push(w.message);
    process.on('warning', on);
    try {
      const store = await openSqliteState(path.join(d, 'state.db'));
      await store.close();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', on);
    }
    expect(warnings.some((w) => w.includes(`directory ${d} is writable by every user`))).toBe(true);
  });
});
