/**
 * Compiles the rules of a config into matchers.
 *
 * A `match` block holds when every key in it holds (AND); a key with a list
 * holds when any element matches (OR); `not` negates a block; `any` holds when
 * any of its blocks holds; an empty block always holds.
 *
 * Matching is three-valued (yes / maybe / no, Kleene logic: AND = min, OR = max,
 * NOT swaps yes and no). "Maybe" arises only from what static analysis cannot
 * know: an opaque statement (counts as every kind, class, table, column and
 * sensitive type), an unqualified name that several schemas of the search_path
 * could hold, `*` columns, and an unparsable statement. See decide.ts for how
 * "maybe" is applied (fail-closed).
 *
 * @module
 */
import { BlockList, isIP } from 'node:net';
import type { LimitConfig, RuleAction, RuleConfig, RuleMatch, SensitiveConfig, WardenConfig } from '../config/types.js';
import { STATEMENT_CLASSES, type StatementAnalysis, type StatementClass } from '../sql/types.js';
import {
  columnPattern,
  matchRelation,
  MAYBE,
  nameGlob,
  NO,
  PolicyError,
  relationPattern,
  YES,
  type NameGlob,
  type RelationPattern,
  type Tri,
} from './patterns.js';
import { compileSensitive, matchColumn, type CompiledSensitive } from './sensitive.js';
import { compileTime } from './time.js';
import type { PolicyIdentity, PolicySession } from './types.js';

/** What a match block is evaluated against. */
export interface EvalContext {
  readonly identity: PolicyIdentity;
  readonly session: PolicySession;
  /** The statement, or `null` when unknown (unparsable): statement-dependent keys are then "maybe". */
  readonly statement: StatementAnalysis | null;
  /** Sensitive types of the statement (type → certain), or `null` when unknown. */
  readonly sensitive: ReadonlyMap<string, boolean> | null;
}

/** Result of evaluating a match block. */
export interface MatchResult {
  readonly tri: Tri;
  /** One explanation per key. */
  readonly why: readonly string[];
}

/** A compiled match block. */
export interface CompiledMatch {
  evaluate(ctx: EvalContext): MatchResult;
}

/** A compiled rule. */
export interface CompiledRule {
  readonly name: string;
  readonly action: RuleAction;
  readonly reason?: string;
  readonly approvers?: { readonly groups: readonly string[]; readonly count: number };
  readonly match: CompiledMatch;
  /** The `statement` list at the top level of `match` (used for explicit session-safety overrides). */
  readonly statementList: ReadonlySet<string>;
  readonly config: RuleConfig;
}

/** A compiled `limits:` entry: its name, match and figures (enforced by governance/limits.ts). */
export interface CompiledLimit {
  readonly name: string;
  readonly match: CompiledMatch;
  readonly config: LimitConfig;
}

/** A compiled policy: rules in config order, the default, and sensitive columns. */
export interface CompiledPolicy {
  readonly rules: readonly CompiledRule[];
  /** The limits, in config order (none: empty). */
  readonly limits: readonly CompiledLimit[];
  readonly defaultAction: 'allow' | 'deny';
  readonly sensitive: CompiledSensitive;
}

const ACTIONS: readonly RuleAction[] = ['allow', 'deny', 'mask', 'approve'];
const KINDS = ['human', 'service', 'agent'];
const MATCH_KEYS = new Set([
  'statement',
  'identity',
  'kind',
  'groups',
  'database',
  'environment',
  'tables',
  'columns',
  'sensitive',
  'intent',
  'client',
  'time',
  'not',
  'any',
]);

type KeyEval = (ctx: EvalContext) => { tri: Tri; why: string };

function list(where: string, v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new PolicyError(`${where}: expected a list of strings`);
  return v as string[];
}

function fmtList(xs: readonly string[]): string {
  return `[${xs.join(', ')}]`;
}

function globs(xs: readonly string[]): NameGlob[] {
  return xs.map(nameGlob);
}

function anyGlob(gs: readonly NameGlob[], v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  return gs.some((g) => g.test(v)) ? v : undefined;
}

function nonEmpty(v: string | undefined): boolean {
  return typeof v === 'string' && v.trim() !== '';
}

/** Normalizes `::ffff:1.2.3.4` to `1.2.3.4`. */
function normalizeAddress(a: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  let addr = a.trim();
  const zone = addr.indexOf('%');
  if (zone >= 0) addr = addr.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (mapped) addr = mapped[1]!;
  const fam = isIP(addr);
  if (fam === 4) return { address: addr, family: 'ipv4' };
  if (fam === 6) return { address: addr, family: 'ipv6' };
  return undefined;
}

function compileClient(where: string, entries: string[]): KeyEval {
  const bl = new BlockList();
  for (const e of entries) {
    const [addr, prefix, extra] = e.trim().split('/');
    if (extra !== undefined || !addr) throw new PolicyError(`${where}: invalid address range ${JSON.stringify(e)}`);
    const n = normalizeAddress(addr);
    if (!n) throw new PolicyError(`${where}: invalid address ${JSON.stringify(e)}`);
    if (prefix === undefined) bl.addAddress(n.address, n.family);
    else {
      const p = Number(prefix);
      const max = n.family === 'ipv4' ? 32 : 128;
      if (!/^\d+$/.test(prefix) || p > max) throw new PolicyError(`${where}: invalid prefix length in ${JSON.stringify(e)}`);
      bl.addSubnet(n.address, p, n.family);
    }
  }
  return (ctx) => {
    const a = ctx.session.clientAddress;
    const n = a === undefined ? undefined : normalizeAddress(a);
    if (!n) return { tri: NO, why: `client: ${a ?? 'no IP address (local socket)'} not in ${fmtList(entries)}` };
    const inside = bl.check(n.address, n.family);
    return { tri: inside ? YES : NO, why: `client: ${n.address} ${inside ? 'in' : 'not in'} ${fmtList(entries)}` };
  };
}

function describeStatement(s: StatementAnalysis): string {
  return s.kind;
}

function compileStatementKey(where: string, names: string[]): KeyEval {
  for (const n of names) {
    if (!(STATEMENT_CLASSES as readonly string[]).includes(n)) {
      throw new PolicyError(`${where}: unknown statement class ${JSON.stringify(n)} (one of ${STATEMENT_CLASSES.join(', ')})`);
    }
  }
  const set = new Set(names as StatementClass[]);
  return (ctx) => {
    const s = ctx.statement;
    if (!s) return { tri: MAYBE, why: `statement: unparsable, may be any of ${fmtList(names)}` };
    const hit = [...s.classes].filter((c) => set.has(c));
    if (hit.length) return { tri: YES, why: `statement: ${describeStatement(s)} is ${hit.join(', ')} ∈ ${fmtList(names)}` };
    if (s.opaque) return { tri: MAYBE, why: `statement: opaque ${s.kind} (${s.opaqueReasons[0] ?? 'effect not visible'}) may be any of ${fmtList(names)}` };
    return { tri: NO, why: `statement: ${s.kind} (${[...s.classes].join(', ')}) ∉ ${fmtList(names)}` };
  };
}

function compileTables(where: string, pats: string[]): KeyEval {
  let compiled: RelationPattern[];
  try {
    compiled = pats.map(relationPattern);
  } catch (e) {
    throw new PolicyError(`${where}: ${(e as Error).message}`);
  }
  return (ctx) => {
    const s = ctx.statement;
    if (!s) return { tri: MAYBE, why: `tables: unparsable, may touch ${fmtList(pats)}` };
    let best: Tri = NO;
    let why = '';
    for (const r of [...s.reads, ...s.writes]) {
      for (const p of compiled) {
        const t = matchRelation(p, r);
        if (t > best) {
          best = t;
          why =
            t === YES
              ? `tables: ${r.name} matches ${p.text}`
              : `tables: ${r.name}${r.qualified ? '' : ` (unqualified; could be in ${r.candidates.join(', ')})`} may match ${p.text}`;
        }
        if (best === YES) break;
      }
      if (best === YES) break;
    }
    if (best === NO && s.opaque) return { tri: MAYBE, why: `tables: opaque statement may touch ${fmtList(pats)}` };
    if (best === NO) return { tri: NO, why: `tables: none of ${fmtList([...s.reads, ...s.writes].map((r) => r.name))} matches ${fmtList(pats)}` };
    return { tri: best, why };
  };
}

function compileColumns(where: string, pats: string[]): KeyEval {
  let compiled: RelationPattern[];
  try {
    compiled = pats.map(columnPattern);
  } catch (e) {
    throw new PolicyError(`${where}: ${(e as Error).message}`);
  }
  return (ctx) => {
    const s = ctx.statement;
    if (!s) return { tri: MAYBE, why: `columns: unparsable, may touch ${fmtList(pats)}` };
    let best: Tri = NO;
    let why = '';
    for (const c of s.columns) {
      for (const p of compiled) {
        const t = matchColumn(p, c);
        if (t > best) {
          best = t;
          const rel = c.relation ?? (c.from.length ? c.from.map((r) => r.name).join('|') : '?');
          why = `columns: ${rel}.${c.column} (${c.usage}) ${t === YES ? 'matches' : 'may match'} ${p.text}`;
        }
        if (best === YES) break;
      }
      if (best === YES) break;
    }
    if (best === NO && s.opaque) return { tri: MAYBE, why: `columns: opaque statement may touch ${fmtList(pats)}` };
    if (best === NO) return { tri: NO, why: `columns: no column matches ${fmtList(pats)}` };
    return { tri: best, why };
  };
}

function compileSensitiveKey(names: string[]): KeyEval {
  const gs = globs(names);
  return (ctx) => {
    if (!ctx.sensitive) return { tri: MAYBE, why: `sensitive: unknown statement may touch ${fmtList(names)}` };
    let best: Tri = NO;
    const found: string[] = [];
    for (const [type, certain] of ctx.sensitive) {
      if (!gs.some((g) => g.test(type))) continue;
      found.push(certain ? type : `${type}?`);
      const t: Tri = certain ? YES : MAYBE;
      if (t > best) best = t;
    }
    if (best === NO) return { tri: NO, why: `sensitive: none of ${fmtList(names)} touched` };
    return { tri: best, why: `sensitive: touches ${found.join(', ')}${best === MAYBE ? ' (possibly)' : ''}` };
  };
}

function compileIntent(where: string, v: unknown): KeyEval {
  if (typeof v === 'boolean') {
    return (ctx) => {
      const given = nonEmpty(ctx.session.intent['ticket']) || nonEmpty(ctx.session.intent['reason']);
      return { tri: given === v ? YES : NO, why: `intent: ${given ? 'a ticket or reason was given' : 'no ticket or reason given'}` };
    };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PolicyError(`${where}: expected true, false or a map`);
  const req = Object.entries(v as Record<string, unknown>).map(([k, want]) => {
    if (typeof want !== 'boolean' && typeof want !== 'string') throw new PolicyError(`${where}.${k}: expected a string or boolean`);
    return { k, want, glob: typeof want === 'string' ? nameGlob(want) : undefined };
  });
  return (ctx) => {
    const why: string[] = [];
    let ok = true;
    for (const { k, want, glob } of req) {
      const got = ctx.session.intent[k];
      let holds: boolean;
      if (typeof want === 'boolean') holds = nonEmpty(got) === want;
      else holds = got !== undefined && glob!.test(got);
      if (!holds) ok = false;
      why.push(`${k}=${got === undefined ? '(none)' : JSON.stringify(got)}${holds ? '' : ` (want ${typeof want === 'boolean' ? (want ? 'any' : 'none') : JSON.stringify(want)})`}`);
    }
    return { tri: ok ? YES : NO, why: `intent: ${why.join(', ')}` };
  };
}

/** Compiles a match block. `where` locates errors (`rule "x": match.tables`). */
export function compileMatch(m: RuleMatch, where: string): CompiledMatch {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new PolicyError(`${where}: expected a map`);
  const keys: KeyEval[] = [];
  for (const k of Object.keys(m)) {
    if (!MATCH_KEYS.has(k)) throw new PolicyError(`${where}: unknown match key ${JSON.stringify(k)}`);
  }
  const w = (k: string) => `${where}.${k}`;
  if (m.statement !== undefined) {
    keys.push(compileStatementKey(w('statement'), list(w('statement'), m.statement).map((x) => x.toLowerCase())));
  }
  if (m.identity !== undefined) {
    const xs = list(w('identity'), m.identity);
    const gs = globs(xs);
    keys.push((ctx) => {
      const hit = anyGlob(gs, ctx.identity.name);
      return { tri: hit ? YES : NO, why: `identity: ${ctx.identity.name} ${hit ? '∈' : '∉'} ${fmtList(xs)}` };
    });
  }
  if (m.kind !== undefined) {
    const xs = list(w('kind'), m.kind);
    for (const k of xs) if (!KINDS.includes(k)) throw new PolicyError(`${w('kind')}: unknown identity kind ${JSON.stringify(k)} (human, service, agent)`);
    keys.push((ctx) => {
      const hit = xs.includes(ctx.identity.kind);
      return { tri: hit ? YES : NO, why: `kind: ${ctx.identity.kind} ${hit ? '∈' : '∉'} ${fmtList(xs)}` };
    });
  }
  if (m.groups !== undefined) {
    const xs = list(w('groups'), m.groups);
    const gs = globs(xs);
    keys.push((ctx) => {
      const hit = ctx.identity.groups.filter((g) => gs.some((p) => p.test(g)));
      return hit.length
        ? { tri: YES, why: `groups: ${hit.join(', ')} ∈ ${fmtList(xs)}` }
        : { tri: NO, why: `groups: ${fmtList([...ctx.identity.groups])} ∩ ${fmtList(xs)} = ∅` };
    });
  }
  if (m.database !== undefined) {
    const xs = list(w('database'), m.database);
    const gs = globs(xs);
    keys.push((ctx) => {
      const hit = anyGlob(gs, ctx.session.database);
      return { tri: hit ? YES : NO, why: `database: ${ctx.session.database} ${hit ? '∈' : '∉'} ${fmtList(xs)}` };
    });
  }
  if (m.environment !== undefined) {
    const xs = list(w('environment'), m.environment);
    const gs = globs(xs);
    keys.push((ctx) => {
      const env = ctx.session.environment;
      const hit = anyGlob(gs, env);
      return { tri: hit ? YES : NO, why: `environment: ${env ?? '(none)'} ${hit ? '∈' : '∉'} ${fmtList(xs)}` };
    });
  }
  if (m.tables !== undefined) keys.push(compileTables(w('tables'), list(w('tables'), m.tables)));
  if (m.columns !== undefined) keys.push(compileColumns(w('columns'), list(w('columns'), m.columns)));
  if (m.sensitive !== undefined) keys.push(compileSensitiveKey(list(w('sensitive'), m.sensitive)));
  if (m.intent !== undefined) keys.push(compileIntent(w('intent'), m.intent));
  if (m.client !== undefined) keys.push(compileClient(w('client'), list(w('client'), m.client)));
  if (m.time !== undefined) {
    if (typeof m.time !== 'object' || m.time === null) throw new PolicyError(`${w('time')}: expected a map with days, hours, tz`);
    for (const k of Object.keys(m.time)) if (!['days', 'hours', 'tz'].includes(k)) throw new PolicyError(`${w('time')}: unknown key ${JSON.stringify(k)}`);
    let tw;
    try {
      tw = compileTime({
        ...(m.time.days !== undefined ? { days: list(w('time.days'), m.time.days) } : {}),
        ...(m.time.hours !== undefined ? { hours: String(m.time.hours) } : {}),
        ...(m.time.tz !== undefined ? { tz: String(m.time.tz) } : {}),
      });
    } catch (e) {
      throw new PolicyError(`${w('time')}: ${(e as Error).message}`);
    }
    const text = tw.text;
    keys.push((ctx) => {
      const r = tw.test(ctx.session.now);
      return { tri: r.inside ? YES : NO, why: `time: ${r.local} ${r.inside ? 'within' : 'outside'} ${text}` };
    });
  }
  if (m.not !== undefined) {
    const inner = compileMatch(m.not, w('not'));
    keys.push((ctx) => {
      const r = inner.evaluate(ctx);
      return { tri: (YES - r.tri) as Tri, why: `not(${r.why.join('; ')})` };
    });
  }
  if (m.any !== undefined) {
    if (!Array.isArray(m.any)) throw new PolicyError(`${w('any')}: expected a list of match blocks`);
    const branches = m.any.map((b, i) => compileMatch(b, `${w('any')}[${i}]`));
    keys.push((ctx) => {
      let best: MatchResult | undefined;
      for (const b of branches) {
        const r = b.evaluate(ctx);
        if (!best || r.tri > best.tri) best = r;
        if (best.tri === YES) break;
      }
      return best ? { tri: best.tri, why: `any(${best.why.join('; ')})` } : { tri: NO, why: 'any: no branches' };
    });
  }
  return {
    evaluate(ctx) {
      let tri: Tri = YES;
      const why: string[] = [];
      for (const k of keys) {
        const r = k(ctx);
        why.push(r.why);
        if (r.tri < tri) tri = r.tri;
        if (tri === NO) break;
      }
      if (keys.length === 0) why.push('empty match: every statement');
      return { tri, why };
    },
  };
}

/**
 * Compiles rules (validating them).
 *
 * @param rules the config's rules, in order
 * @param defaultAction applied when no rule matches
 * @param options `sensitive`: the config's `sensitive` section or its `columns` map
 * @throws PolicyError naming the rule and key when a rule is invalid
 */
export function compilePolicy(
  rules: readonly RuleConfig[],
  defaultAction: 'allow' | 'deny',
  options: { sensitive?: SensitiveConfig | Readonly<Record<string, string>>; limits?: readonly LimitConfig[] } = {},
): CompiledPolicy {
  if (defaultAction !== 'allow' && defaultAction !== 'deny') throw new PolicyError(`default must be allow or deny, not ${JSON.stringify(defaultAction)}`);
  const names = new Set<string>();
  const compiled = rules.map((r, i) => {
    const where = `rule ${r && typeof r.name === 'string' ? JSON.stringify(r.name) : `#${i + 1}`}`;
    if (!r || typeof r.name !== 'string' || r.name === '') throw new PolicyError(`${where}: a rule needs a name`);
    if (names.has(r.name)) throw new PolicyError(`${where}: duplicate rule name`);
    if (r.name.startsWith('warden.') || r.name === 'default') throw new PolicyError(`${where}: the name is reserved`);
    names.add(r.name);
    if (!ACTIONS.includes(r.action)) throw new PolicyError(`${where}: action must be one of ${ACTIONS.join(', ')}`);
    const match = compileMatch(r.match ?? {}, `${where}: match`);
    const statementList = new Set<string>(
      r.match?.statement ? list(`${where}: match.statement`, r.match.statement).map((x) => x.toLowerCase()) : [],
    );
    return {
      name: r.name,
      action: r.action,
      ...(r.reason !== undefined ? { reason: r.reason } : {}),
      ...(r.approvers !== undefined ? { approvers: r.approvers } : {}),
      match,
      statementList,
      config: r,
    } satisfies CompiledRule;
  });
  const s = options.sensitive;
  const columns = s && 'columns' in s && typeof s.columns === 'object' ? (s as SensitiveConfig).columns : (s as Readonly<Record<string, string>> | undefined);
  let sensitive: CompiledSensitive;
  try {
    sensitive = compileSensitive(columns);
  } catch (e) {
    throw new PolicyError(`sensitive.columns: ${(e as Error).message}`);
  }
  const limitNames = new Set<string>();
  const limits = (options.limits ?? []).map((l): CompiledLimit => {
    const where = `limit ${JSON.stringify(l.name)}`;
    if (limitNames.has(l.name)) throw new PolicyError(`${where}: duplicate limit name`);
    limitNames.add(l.name);
    return { name: l.name, match: compileMatch(l.match ?? {}, `${where}: match`), config: l };
  });
  return { rules: compiled, limits, defaultAction, sensitive };
}

/** Compiles the `rules`, `default`, `sensitive` and `limits` sections of a loaded config. */
export function policyFromConfig(config: Pick<WardenConfig, 'rules' | 'default' | 'sensitive'> & { readonly limits?: readonly LimitConfig[] }): CompiledPolicy {
  return compilePolicy(config.rules, config.default, { ...(config.sensitive ? { sensitive: config.sensitive } : {}), limits: config.limits ?? [] });
}
