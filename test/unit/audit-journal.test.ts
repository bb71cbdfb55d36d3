import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { journalId, JournalLockedError, JournalWriter, listSegments, readSegmentLines, segmentFile } from '../../src/audit/journal.js';

let dir: string;
let base: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-journal-'));
  base = path.join(dir, 'audit.db');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const lockOf = (instance: string) => `${base}.journal-${journalId(instance)}.lock`;

describe('audit journal', () => {
  it('one writer per chain: a second open is refused while the first holds the lock; close releases it', () => {
    const a = JournalWriter.open(base, 'w1', { durability: 'os' });
    expect(() => JournalWriter.open(base, 'w1', { durability: 'os' })).toThrow(JournalLockedError);
    // Another chain in the same store has its own journal and lock.
    const b = JournalWriter.open(base, 'w2', { durability: 'os' });
    b.close();
    a.close();
    expect(fs.existsSync(lockOf('w1'))).toBe(false);
    JournalWriter.open(base, 'w1', { durability: 'os' }).close();
  });

  it('a lock of a live other process is refused naming it; one of a dead process, or of an earlier process with our pid, is taken over', () => {
    fs.writeFileSync(lockOf('w'), '1\n'); // pid 1 is alive
    expect(() => JournalWriter.open(base, 'w', { durability: 'os' })).toThrow(/pid 1\b/);
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.writeFileSync(lockOf('w'), `${gone.stdout}\n`);
    JournalWriter.open(base, 'w', { durability: 'os' }).close();
    fs.writeFileSync(lockOf('w'), `${process.pid}\n`); // a container's pid 1 restarted: not held by this process
    const j = JournalWriter.open(base, 'w', { durability: 'os' });
    expect(fs.readFileSync(lockOf('w'), 'utf8')).toBe(`${process.pid}\n`);
    j.close();
  });

  it('cuts a torn last line at open; readers see complete lines only', () => {
    const j = JournalWriter.open(base, 'w', { durability: 'os' });
    j.write('{"a":1}\n{"a":2}\n');
    j.close();
    const [seg] = listSegments(base);
    fs.appendFileSync(seg.file, '{"a":3'); // a crash in the middle of a write
    expect(readSegmentLines(seg.file, 0).lines).toEqual(['{"a":1}', '{"a":2}']);
    const again = JournalWriter.open(base, 'w', { durability: 'os' });
    expect(fs.readFileSync(seg.file, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
    expect(again.lastLine()).toBe('{"a":2}');
    again.close();
  });

  it('reads a line longer than the chunk asked for', () => {
    const file = segmentFile(base, journalId('w'), 1);
    const long = `{"sql":"${'x'.repeat(5000)}"}`;
    fs.writeFileSync(file, `${long}\n{"b":1}\n`);
    const r = readSegmentLines(file, 0, 100);
    expect(r.lines[0]).toBe(long);
    expect(r.end).toBeGreaterThan(5000);
  });

  it('os: durable at once; fsync: a sync starts at once and covers what was written before it; asking again shares it', async () => {
    const o = JournalWriter.open(base, 'os', { durability: 'os' });
    o.write('{"a":1}\n');
    expect(o.durable()).toBeNull();
    o.close();
    const f = JournalWriter.open(base, 'fs', { durability: 'fsync' });
    f.write('{"a":1}\n');
    const p1 = f.durable();
    expect(p1).not.toBeNull();
    expect(f.durable()).toBe(p1); // nothing written since: the same sync covers it
    f.write('{"a":2}\n');
    const p2 = f.durable();
    expect(p2).not.toBeNull();
    expect(p2).not.toBe(p1); // written after the first sync started: a later sync covers it
    await p1;
    await p2;
    expect(f.durable()).toBeNull(); // everything written so far is covered
    expect(f.durablePosition).toEqual(f.position);
    f.close();
  });
});
