/**
 * JSON-serializable forms of analyses (Sets become sorted arrays).
 *
 * @module
 */
import type {
  Analysis,
  ColumnRef,
  RelationRef,
  SettingChange,
  StatementAnalysis,
  StatementClass,
  StatementKind,
} from './types.js';

/** JSON form of a {@link StatementAnalysis}. */
export interface StatementAnalysisJSON {
  index: number;
  text: string;
  kind: StatementKind;
  classes: StatementClass[];
  opaque: boolean;
  opaqueReasons: string[];
  reads: RelationRef[];
  writes: RelationRef[];
  columns: ColumnRef[];
  functions: string[];
  sets: SettingChange[];
  roleChange: boolean;
  resetAll: boolean;
  alterSystem: boolean;
  prepare?: { name: string; statement: StatementAnalysisJSON };
  execute?: { name: string; found: boolean };
  deallocate?: { name: string | null };
  searchPath?: string[] | null;
  notes: string[];
}

/** JSON form of an {@link Analysis}. */
export type AnalysisJSON =
  | {
      ok: true;
      sql: string;
      statements: StatementAnalysisJSON[];
      classes: StatementClass[];
      opaque: boolean;
      reads: RelationRef[];
      writes: RelationRef[];
      functions: string[];
      usesPrepared: boolean;
    }
  | { ok: false; sql: string; error: string; position?: number };

/** Sorted array of a class set. */
export function classList(classes: ReadonlySet<StatementClass>): StatementClass[] {
  return [...classes].sort();
}

/** JSON form of one statement's analysis. */
export function statementToJSON(s: StatementAnalysis): StatementAnalysisJSON {
  return {
    index: s.index,
    text: s.text,
    kind: s.kind,
    classes: classList(s.classes),
    opaque: s.opaque,
    opaqueReasons: [...s.opaqueReasons],
    reads: [...s.reads],
    writes: [...s.writes],
    columns: [...s.columns],
    functions: [...s.functions],
    sets: [...s.sets],
    roleChange: s.roleChange,
    resetAll: s.resetAll,
    alterSystem: s.alterSystem,
    ...(s.prepare ? { prepare: { name: s.prepare.name, statement: statementToJSON(s.prepare.statement) } } : {}),
    ...(s.execute ? { execute: { ...s.execute } } : {}),
    ...(s.deallocate ? { deallocate: { ...s.deallocate } } : {}),
    ...(s.searchPath !== undefined ? { searchPath: s.searchPath === null ? null : [...s.searchPath] } : {}),
    notes: [...s.notes],
  };
}

/** JSON form of an analysis (no Sets; safe for JSON.stringify). */
export function analysisToJSON(a: Analysis): AnalysisJSON {
  if (!a.ok) return { ok: false, sql: a.sql, error: a.error, ...(a.position !== undefined ? { position: a.position } : {}) };
  return {
    ok: true,
    sql: a.sql,
    statements: a.statements.map(statementToJSON),
    classes: classList(a.classes),
    opaque: a.opaque,
    reads: [...a.reads],
    writes: [...a.writes],
    functions: [...a.functions],
    usesPrepared: a.usesPrepared,
  };
}
