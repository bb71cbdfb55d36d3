/**
 * Human-readable and JSON explanations of an analysis and its decision
 * (for `warden explain`, the console and audit).
 *
 * @module
 */
import { analysisToJSON, type AnalysisJSON } from '../sql/json.js';
import type { Analysis, RelationRef, StatementAnalysis } from '../sql/types.js';
import type { Decision, StatementDecision } from './types.js';
import type { LimitConfig } from '../config/types.js';

function list(xs: readonly string[]): string {
  return xs.length ? xs.join(', ') : '-';
}

function oneLine(s: string, max = 100): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

function relList(rs: readonly RelationRef[]): string {
  return list(rs.map((r) => (r.qualified || r.candidates.length <= 1 ? r.name : `${r.name} (or in ${r.candidates.filter((c) => c !== r.schema).join(', ')})`)));
}

function statementLines(s: StatementAnalysis, d: StatementDecision | undefined): string[] {
  const lines: string[] = [];
  lines.push(`Statement ${s.index + 1}: ${oneLine(s.text)}`);
  lines.push(`  kind: ${s.kind}   classes: ${list([...s.classes].sort())}`);
  if (s.reads.length) lines.push(`  reads: ${relList(s.reads)}`);
  if (s.writes.length) lines.push(`  writes: ${relList(s.writes)}`);
  if (s.columns.length) {
    lines.push(
      `  columns: ${list(
        s.columns.map((c) => `${c.relation ?? (c.from.length === 1 ? c.from[0]!.name : c.from.length ? `{${c.from.map((r) => r.name).join('|')}}` : '?')}.${c.column} (${c.usage})`),
      )}`,
    );
  }
  if (s.functions.length) lines.push(`  functions: ${list(s.functions)}`);
  if (s.sets.length) lines.push(`  settings: ${list(s.sets.map((c) => `${c.name}${c.value === null ? ' reset' : c.value !== undefined ? `=${c.value}` : ''} (${c.via}${c.local ? ', local' : ''})`))}`);
  if (s.opaque) for (const r of s.opaqueReasons) lines.push(`  opaque: ${r}`);
  if (s.prepare) lines.push(`  prepares: "${s.prepare.name}"`);
  if (s.execute) lines.push(`  executes: "${s.execute.name}"${s.execute.found ? '' : ' (unknown)'}`);
  for (const n of s.notes) lines.push(`  note: ${n}`);
  if (d) {
    if (d.sensitiveTypes.length) lines.push(`  sensitive: ${list(d.sensitiveTypes)}`);
    for (const m of d.matched) {
      lines.push(`  rule ${m.rule} → ${m.action}${m.certain ? '' : ' (possible match, fail-closed)'}${m.reason ? `: ${m.reason}` : ''}`);
      for (const w of m.why) lines.push(`      ${w}`);
    }
    lines.push(`  → ${d.action.toUpperCase()} (${d.decisive})`);
  }
  return lines;
}

/** A limit's figures, as the config names them. */
export function limitFigures(l: LimitConfig): string {
  const f: string[] = [];
  if (l.maxRows !== undefined) f.push(`max_rows ${l.maxRows}`);
  if (l.maxBytes !== undefined) f.push(`max_bytes ${l.maxBytes}`);
  if (l.rowsPerHour !== undefined) f.push(`rows_per_hour ${l.rowsPerHour}`);
  if (l.statementsPerMinute !== undefined) f.push(`statements_per_minute ${l.statementsPerMinute}`);
  f.push(`on_exceed ${l.onExceed}`);
  return f.join(', ');
}

/**
 * A multi-line text explaining how a query string was classified and decided; `limits` (the
 * config's) adds each applying limit's figures.
 */
export function formatExplain(analysis: Analysis, decision: Decision, limits: readonly LimitConfig[] = []): string {
  const lines: string[] = [];
  lines.push(`Decision: ${decision.action.toUpperCase()} — ${decision.reason}`);
  for (const name of decision.limits ?? []) {
    const l = limits.find((x) => x.name === name);
    lines.push(`Limit: ${name}${l ? ` — ${limitFigures(l)}` : ''}`);
  }
  if (decision.masked && decision.action !== 'mask') lines.push('Output is masked too (a mask rule applies).');
  for (const a of decision.approvals) {
    lines.push(`Approval: rule ${a.rule}${a.approvers ? ` — ${a.approvers.count} of groups ${list([...a.approvers.groups])}` : ''}`);
  }
  if (!analysis.ok) {
    lines.push(`Parse error: ${analysis.error}`);
    return lines.join('\n');
  }
  if (analysis.statements.length === 0) lines.push('(empty query)');
  for (const s of analysis.statements) lines.push(...statementLines(s, decision.statements.find((d) => d.index === s.index)));
  return lines.join('\n');
}

/** JSON form of an explanation: the analysis (Sets as arrays) and the decision (already plain data). */
export interface ExplainJSON {
  analysis: AnalysisJSON;
  decision: Decision;
}

/** The JSON-serializable explanation. */
export function explainToJSON(analysis: Analysis, decision: Decision): ExplainJSON {
  return { analysis: analysisToJSON(analysis), decision };
}

/** The decision as plain JSON data (a deep copy; Decision objects hold no Sets). */
export function decisionToJSON(decision: Decision): Decision {
  return JSON.parse(JSON.stringify(decision)) as Decision;
}
