/**
 * Code: DO blocks, CALL, and the statements that define code which runs later
 * (CREATE FUNCTION / PROCEDURE, CREATE RULE). The SQL inside a body is parsed
 * and analysed as statements of its own (to a bounded depth) and what it does
 * is carried by the statement; what cannot be seen (dynamic SQL, other
 * languages) makes it opaque.
 *
 * @module
 */
import { Builder, MAX_DEPTH, type Env, type StatementHandlers } from './builder.js';
import { recordFuncCall, walkExpr } from './analyze-dml.js';
import { analyzeRoutineBody, routineSource, type BodyAnalysis, type NestedAnalyzer } from './code.js';
import { parseStatements, scanTokens, sliceBytes } from './parser.js';
import { extractPlpgsql } from './plpgsql.js';
import { arr, constValue, obj, strings, strVal, unwrapAs, type Obj } from './tree.js';
import type { StatementAnalysis } from './types.js';

function analyzeNested(sql: string, env: Env, variables?: ReadonlySet<string>): StatementAnalysis[] | string {
  if (env.depth >= MAX_DEPTH) return 'nested too deeply to analyse';
  const parsed = parseStatements(sql);
  if (!parsed.ok) return parsed.failure.message;
  env.depth++;
  try {
    return parsed.statements.map((raw, i) => {
      const b = new Builder(env);
      if (variables) b.variables = variables;
      const text = sliceBytes(sql, raw.location, raw.length ? raw.location + raw.length : undefined).trim();
      env.analyzeNode(raw.stmt, b, text);
      return b.finish(i, text);
    });
  } finally {
    env.depth--;
  }
}

/** Text after the assignment operator of a PL/pgSQL assignment (`x := expr`). */
function assignmentValue(sql: string): string | undefined {
  let tokens;
  try {
    tokens = scanTokens(sql);
  } catch {
    return undefined;
  }
  let depth = 0;
  for (const t of tokens) {
    if (t.text === '(' || t.text === '[') depth++;
    else if (t.text === ')' || t.text === ']') depth--;
    else if (depth === 0 && (t.text === ':=' || t.text === '=')) return sliceBytes(sql, t.end);
  }
  return undefined;
}

function analyzeDo(n: Obj, b: Builder): void {
  let language = 'plpgsql';
  let body: string | undefined;
  for (const a of arr(n['args'])) {
    const d = unwrapAs(a, 'DefElem');
    if (!d) continue;
    if (d['defname'] === 'language') language = (strVal(d['arg']) ?? language).toLowerCase();
    if (d['defname'] === 'as') body = strVal(d['arg']);
  }
  if (language !== 'plpgsql') {
    b.opaque(`DO block in language ${language}`);
    return;
  }
  if (b.env.depth >= MAX_DEPTH) {
    b.opaque('DO block nested too deeply to analyse');
    return;
  }
  const ex = extractPlpgsql(body ?? '');
  if (!ex.ok) {
    b.opaque(`DO block that PL/pgSQL cannot parse: ${ex.error}`);
    return;
  }
  let dynamic = false;
  for (const piece of ex.pieces) {
    let sql: string | undefined;
    let asStatement = false;
    if (piece.mode === 'statement') {
      sql = piece.sql;
      asStatement = true;
    } else if (piece.mode === 'expression') sql = `SELECT ${piece.sql}`;
    else if (piece.mode === 'assignment') {
      const v = assignmentValue(piece.sql);
      sql = v === undefined ? undefined : `SELECT ${v}`;
    } else {
      // Dynamic SQL: analysable only when the command string is a constant.
      const expr = analyzeConstantString(piece.sql);
      if (expr === undefined) {
        dynamic = true;
        b.opaque(`DO block runs dynamic SQL: EXECUTE ${piece.sql.trim()}`);
        // Still record what computing the string touches.
        const r = analyzeNested(`SELECT ${piece.sql}`, b.env, ex.variables);
        if (typeof r !== 'string') for (const s of r) b.absorb(s, { kinds: false, effects: true });
        continue;
      }
      sql = expr;
      asStatement = true;
      b.note('DO block EXECUTEs a constant string: analysed as SQL');
    }
    if (sql === undefined) {
      b.opaque(`DO block with an assignment Warden cannot read: ${piece.sql.trim()}`);
      continue;
    }
    const res = analyzeNested(sql, b.env, ex.variables);
    if (typeof res === 'string') {
      b.opaque(`DO block contains SQL Warden cannot parse (${res}): ${sql.trim()}`);
      continue;
    }
    for (const s of res) b.absorb(s, { kinds: asStatement, effects: true });
  }
  if (!dynamic) b.note('DO block of static SQL: analysed as that SQL');
}

/** The statement analyser for SQL inside code (function bodies, rule actions): texts or parsed statements. */
function nestedAnalyzer(env: Env): NestedAnalyzer {
  return (sql, variables) => {
    if (typeof sql === 'string') return analyzeNested(sql, env, variables);
    if (env.depth >= MAX_DEPTH) return 'nested too deeply to analyse';
    env.depth++;
    try {
      const nb = new Builder(env);
      if (variables) nb.variables = variables;
      env.analyzeNode(sql, nb, '');
      return [nb.finish(0, '')];
    } finally {
      env.depth--;
    }
  };
}

/** One statement (kind `do`) holding what a body does; settings it changes stay inside it. */
function bodyStatement(parts: BodyAnalysis, env: Env, fill?: (body: Builder) => void): StatementAnalysis {
  const saved = env.searchPath;
  const body = new Builder(env);
  body.kind = 'do';
  try {
    for (const p of parts.parts) body.absorb(p.sa, { kinds: p.asStatement, effects: true });
    fill?.(body);
  } finally {
    env.searchPath = saved;
  }
  for (const r of parts.opaque) body.opaque(r);
  for (const n of parts.notes) body.note(n);
  body.searchPath = undefined;
  return body.finish(0, '');
}

/** CREATE FUNCTION / PROCEDURE: the statement carries what its body does. */
function defineRoutine(n: Obj, b: Builder, text: string): void {
  const src = routineSource(n);
  const saved = b.env.searchPath;
  let parts: BodyAnalysis;
  try {
    parts = analyzeRoutineBody(src, text, nestedAnalyzer(b.env));
  } finally {
    b.env.searchPath = saved;
  }
  const body = bodyStatement(parts, b.env);
  b.body = body;
  b.defines = src.name;
  b.absorb(body, { kinds: false, effects: true });
  b.searchPath = undefined;
  b.note(`${src.kind} ${src.name}(): classified by what its body does when called`);
}

/** CREATE RULE: the statement carries what the rule's actions do. */
function defineRule(n: Obj, b: Builder, text: string): void {
  const r = b.rangeVar(n['relation']);
  if (r) b.addWrite(r);
  const name = typeof n['rulename'] === 'string' ? n['rulename'] : '?';
  const body = bodyStatement({ parts: [], opaque: [], notes: [] }, b.env, (body) => {
    for (const act of arr(n['actions'])) body.absorb(b.nested(obj(act) ?? {}, text), { kinds: true, effects: true });
    walkExpr(n['whereClause'], 'predicate', null, body);
  });
  b.body = body;
  b.absorb(body, { kinds: false, effects: true });
  b.searchPath = undefined;
  b.note(`rule ${name}: classified by what its actions do when they fire`);
}

/** For a dynamic EXECUTE: the command string when the expression is a constant. */
function analyzeConstantString(expr: string): string | undefined {
  const parsed = parseStatements(`SELECT ${expr}`);
  if (!parsed.ok || parsed.statements.length !== 1) return undefined;
  const sel = unwrapAs(parsed.statements[0]!.stmt, 'SelectStmt');
  const targets = arr(sel?.['targetList']);
  if (!sel || targets.length !== 1 || sel['fromClause']) return undefined;
  const v = constValue(unwrapAs(targets[0], 'ResTarget')?.['val']);
  return typeof v === 'string' ? v : undefined;
}

/** DO, CALL, CREATE FUNCTION / PROCEDURE and CREATE RULE, by parse-node type. */
export const CODE_STATEMENTS: StatementHandlers = {
  DoStmt: (n, b) => {
    b.kind = 'do';
    analyzeDo(n, b);
  },
  CallStmt: (n, b) => {
    b.kind = 'call';
    const fc = obj(n['funccall']);
    const fname = fc ? strings(fc['funcname']).join('.') : '?';
    b.opaque(`CALL ${fname}(): a procedure's body is not visible`);
    if (fc) recordFuncCall(fc, null, b);
  },
  CreateFunctionStmt: (n, b, text) => {
    b.kind = 'create';
    b.classes.add('code');
    defineRoutine(n, b, text);
  },
  RuleStmt: (n, b, text) => {
    b.kind = 'create';
    b.classes.add('code');
    defineRule(n, b, text);
  },
};
