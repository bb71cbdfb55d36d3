/**
 * Runs the statement corpus (test/corpus/statements.yaml) through analyzeSql and
 * checks kinds, classes, relations and flags. See the corpus header for the format.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { analyzeSql, initSqlParser } from '../../src/sql/analyze.js';
import type { Analysis, ColumnRef } from '../../src/sql/types.js';

interface CorpusCase {
  name?: string;
  sql: string;
  search_path?: string[];
  prepared?: Record<string, string>;
  error?: boolean;
  kinds?: string[];
  classes?: string[];
  reads?: string[];
  writes?: string[];
  opaque?: boolean;
  columns?: string[];
  functions?: string[];
  sets?: string[];
  roleChange?: boolean;
  resetAll?: boolean;
  alterSystem?: boolean;
  candidates?: Record<string, string[]>;
}

const corpusPath = fileURLToPath(new URL('../corpus/statements.yaml', import.meta.url));
const cases = (parse(readFileSync(corpusPath, 'utf8')) as { cases: CorpusCase[] }).cases;

function columnKey(c: ColumnRef): string {
  const rel = c.relation ?? (c.from.length ? c.from.map((r) => r.name).join('|') : '?');
  return `${rel}.${c.column}:${c.usage}`;
}

function sorted(xs: Iterable<string>): string[] {
  return [...xs].sort();
}

describe('statement corpus', () => {
  beforeAll(async () => {
    await initSqlParser();
  });

  it('has at least 150 statements', () => {
    expect(cases.length).toBeGreaterThanOrEqual(150);
  });

  for (const [i, c] of cases.entries()) {
    const title = `#${i + 1} ${c.name ?? c.sql.replace(/\s+/g, ' ').slice(0, 80)}`;
    it(title, () => {
      const searchPath = c.search_path ?? ['public'];
      const prepared = new Map<string, Analysis>();
      for (const [name, sql] of Object.entries(c.prepared ?? {})) {
        const a = analyzeSql(sql, { searchPath });
        expect(a.ok, `prepared ${name} parses`).toBe(true);
        prepared.set(name, a);
      }
      const a = analyzeSql(c.sql, { searchPath, preparedStatements: prepared });
      if (c.error) {
        expect(a.ok).toBe(false);
        if (!a.ok) expect(a.error).toMatch(/\S/);
        return;
      }
      expect(a.ok, a.ok ? '' : a.error).toBe(true);
      if (!a.ok) return;
      if (c.kinds) expect(a.statements.map((s) => s.kind)).toEqual(c.kinds);
      if (c.classes) expect(sorted(a.classes)).toEqual(sorted(c.classes));
      expect(sorted(a.reads.map((r) => r.name))).toEqual(sorted(c.reads ?? []));
      expect(sorted(a.writes.map((r) => r.name))).toEqual(sorted(c.writes ?? []));
      expect(a.opaque, a.statements.flatMap((s) => s.opaqueReasons).join('; ')).toBe(c.opaque ?? false);
      if (c.columns) {
        const got = new Set(a.statements.flatMap((s) => s.columns.map(columnKey)));
        for (const col of c.columns) expect([...got], `column ${col}`).toContain(col);
      }
      if (c.functions) {
        const got = a.functions;
        for (const f of c.functions) expect(got).toContain(f);
      }
      if (c.sets) {
        const got = a.statements.flatMap((s) => s.sets.map((x) => x.name));
        for (const n of c.sets) expect(got).toContain(n);
      }
      expect(a.statements.some((s) => s.roleChange)).toBe(c.roleChange ?? false);
      expect(a.statements.some((s) => s.resetAll)).toBe(c.resetAll ?? false);
      expect(a.statements.some((s) => s.alterSystem)).toBe(c.alterSystem ?? false);
      for (const [name, cands] of Object.entries(c.candidates ?? {})) {
        const ref = [...a.reads, ...a.writes].find((r) => r.name === name);
        expect(ref, `relation ${name}`).toBeDefined();
        expect(sorted(ref!.candidates)).toEqual(sorted(cands));
      }
    });
  }
});
