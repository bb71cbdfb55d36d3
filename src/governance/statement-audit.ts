/**
 * Audit on the wire: turns sessions, statements, their decisions and outcomes
 * into audit events, write-ahead.
 *
 * - A statement that will run gets a `statement.begin` record that is durable
 *   *before* the statement is forwarded; when the audit log cannot write it
 *   (`on_failure: block`) the statement is refused with 58030 and the reason.
 *   Its completion (`statement.end`: tags, rows, duration, SQLSTATE) follows.
 * - A statement Warden refuses gets one `statement.refused` record.
 * - DDL: the affected objects' catalog definitions are read before the
 *   statement runs and again once the session is outside a transaction
 *   (`schema.change`, with a short diff), so "who changed this table, when and
 *   why" is one search.
 *
 * Sensitive values: when a statement touches a column classified sensitive,
 * its text is recorded with constants replaced by `$n` and its bind parameters
 * as `<masked>`. Secrets (passwords, connection strings: src/sql/secrets.ts) are
 * replaced by `'<redacted>'` in every record, and the parameters of a statement
 * carrying one are `<masked>`.
 */
import type { WardenConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { CanonicalText, canonicalJson, type JsonValue } from '../audit/canonical.js';
import { membersOf, RecordFields, statementEndText, Template, TemplateData, type Member, type RecordData } from './audit-fields.js';
import { AuditUnavailableError, type AuditData, type AuditLog } from '../audit/log.js';
import type { Analysis, AnalysisOk, RelationRef } from '../sql/index.js';
import { quoteIdent } from '../sql/search-path.js';
import { normalizeSql } from '../sql/normalize.js';
import { redactJsonSecrets, redactMessage, redactParseError, redactSecrets } from '../sql/secrets.js';
import type { Decision } from '../policy/index.js';
import { intentOf } from '../intent/sqlcommenter.js';
import type { SessionInfo, StatementOutcome, StatementSource, Verdict } from '../contract/statement-hooks.js';
import type { LoginFailure } from '../contract/statement-hooks.js';
import { ddlTargets, snapshotObjects, targetKey, type ObjectDefinition } from '../audit/catalog-snapshot.js';
import { diffDefinitions } from '../audit/catalog-diff.js';
import type { CatalogReader } from './catalog-reader.js';
import { APPROVAL_TEXT_CAP, shownText } from './approval-text.js';

/**
 * Longest statement text kept in a record (characters): the approvals' cap, so a statement an
 * approver saw whole is recorded whole. Above it the record holds the start, then a visible
 * marker with the full length and the SHA-256 of the full text (and `sql_length`/`sql_sha256`).
 */
export const MAX_SQL = APPROVAL_TEXT_CAP;
/** Longest bind parameter kept (characters of text, or bytes of binary shown as hex). */
export const MAX_PARAM = 256;
export const MASKED = '<masked>';

export interface StatementAuditor {
  /** Record a decided statement; for a forwarded one, resolves once its record is durable. */
  statement(s: SessionInfo, stmt: StatementSource, analysis: Analysis, decision: Decision | null, verdict: Verdict): Verdict | Promise<Verdict>;
  sessionStart(s: SessionInfo): void;
  sessionEnd(s: SessionInfo, reason: string): void;
  loginFailed(e: LoginFailure): void;
}

interface SessionAudit {
  readonly started: number;
  statements: number;
  refused: number;
  /** DDL whose after-state is read once the session is outside a transaction. */
  pendingDdl: PendingDdl[];
  /** DDL that ran inside a transaction block: its after-state is read in that transaction, before the session's next statement runs. */
  afterInTransaction: PendingDdl[];
}

interface PendingDdl {
  seq: number;
  targets: readonly DdlTarget[];
  before: Record<string, ObjectDefinition | null>;
  /** Where the definitions were read: in the session's transaction, or on the catalog connection. */
  read: 'transaction' | 'catalog';
}

/** The session was not in a transaction block at a quiet point: read on the catalog connection instead. */
class NotInTransaction extends Error {}

/**
 * Definitions as the session itself sees them (its uncommitted changes, no
 * waiting on its own locks) when it is in a transaction block; otherwise on
 * the catalog connection, where everything is committed.
 */
async function snapshotFor(
  s: SessionInfo,
  catalog: CatalogReader,
  targets: readonly DdlTarget[],
): Promise<{ defs: Record<string, ObjectDefinition | null>; read: PendingDdl['read'] }> {
  const inTx = s.readInTransaction;
  if (inTx && s.txStatus === 'T') {
    try {
      const defs = await snapshotObjects(async (sql, params) => {
        const r = await inTx.call(s, sql, params.map((p) => (p === null || p === undefined ? null : String(p))));
        if (r === null) throw new NotInTransaction();
        return r;
      }, targets);
      return { defs, read: 'transaction' };
    } catch (err) {
      if (!(err instanceof NotInTransaction)) throw err;
    }
  }
  return { defs: await catalog.snapshot(s.database, targets), read: 'catalog' };
}

function cap(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;
}

/**
 * Whether a statement's effects are invisible to everyone but its client until
 * the client sees its result: only plain SELECTs of known code (no writing
 * function, no sequence change, no row lock, nothing opaque). Such a statement
 * may run while its audit record is being made durable (`durability: fsync`);
 * its result is held until then. Anything else — writes, COMMIT, DDL, SET,
 * locks, calls — runs only once its record is durable.
 */
export function unobservable(analysis: Analysis): boolean {
  if (!analysis.ok || analysis.opaque || analysis.statements.length === 0) return false;
  for (const c of analysis.classes) if (c !== 'read' && c !== 'select') return false;
  for (const st of analysis.statements) if (st.kind !== 'select') return false;
  return true;
}

/** A bind parameter as recorded: text, `\x…` hex for binary, null. */
export function formatParam(value: Buffer | null, format: number): string | null {
  if (value === null) return null;
  if (format === 1) {
    const hex = value.subarray(0, MAX_PARAM).toString('hex');
    return `\\x${hex}${value.length > MAX_PARAM ? `…(${value.length} bytes)` : ''}`;
  }
  return cap(value.toString('utf8'), MAX_PARAM);
}

function paramFormat(formats: readonly number[], i: number): number {
  return formats.length === 0 ? 0 : formats.length === 1 ? formats[0] : (formats[i] ?? 0);
}

/** Affected rows from a command tag (`UPDATE 3`, `INSERT 0 1`, `SELECT 5`, `COPY 7`). */
export function rowsOfTag(tag: string): number | null {
  const m = /^(?:INSERT \d+|UPDATE|DELETE|SELECT|MOVE|FETCH|COPY|MERGE) (\d+)$/.exec(tag);
  return m ? Number(m[1]) : null;
}

/**
 * The names a relation reference is recorded under: as qualified, or for an
 * unqualified name every schema it could resolve to (so a search by
 * `schema.table` finds it whichever the search_path picked).
 */
export function relationNames(r: RelationRef): string[] {
  if (r.qualified) return [r.name];
  const schemas = r.candidates.filter((c) => c !== '*');
  if (schemas.length === 0) return [r.name];
  return schemas.map((c) => `${quoteIdent(c)}.${r.table === '*' ? '*' : quoteIdent(r.table)}`);
}

/**
 * Objects whose definitions a DDL statement may change: the analysis' targets,
 * with an unqualified relation name expanded to every schema it could resolve
 * to (the ones that do not exist read as null before and after, and are left
 * out of the record).
 */
function schemaTargets(statements: AnalysisOk['statements']): DdlTarget[] {
  const base: DdlTarget[] = ddlTargets(statements).map((t) => ({ ...t, guess: false }));
  if (base.length === 0) return base;
  const seen = new Set(base.map((t) => `${t.schema}\u0000${t.name}`));
  const out = [...base];
  for (const st of statements) {
    if (!st.classes.has('ddl') && !st.classes.has('drop')) continue;
    for (const w of st.writes) {
      if (w.table === '*' || w.qualified) continue;
      for (const c of w.candidates) {
        const k = `${c}\u0000${w.table}`;
        if (c === '*' || seen.has(k)) continue;
        seen.add(k);
        out.push({ schema: c, name: w.table, guess: true });
      }
    }
  }
  return out;
}

const NO_TARGETS: readonly DdlTarget[] = Object.freeze([]);
/** Per analysis (shared by every run of a statement shape): its schema-change targets, computed once. */
const targetsByAnalysis = new WeakMap<AnalysisOk, readonly DdlTarget[]>();
function targetsOf(analysis: AnalysisOk): readonly DdlTarget[] {
  let t = targetsByAnalysis.get(analysis);
  if (!t) {
    const found = schemaTargets(analysis.statements);
    t = found.length === 0 ? NO_TARGETS : found;
    targetsByAnalysis.set(analysis, t);
  }
  return t;
}

interface DdlTarget {
  schema: string;
  name: string;
  /** Added because the name could resolve there; left out of the record when unchanged. */
  guess: boolean;
}

export function createStatementAuditor(o: {
  audit: AuditLog;
  config: WardenConfig;
  log: Logger;
  catalog?: CatalogReader;
}): StatementAuditor {
  const { audit, log, catalog } = o;
  const sessions = new WeakMap<SessionInfo, SessionAudit>();
  const stateOf = (s: SessionInfo): SessionAudit => {
    let st = sessions.get(s);
    if (!st) {
      st = { started: Date.now(), statements: 0, refused: 0, pendingDdl: [], afterInTransaction: [] };
      sessions.set(s, st);
    }
    return st;
  };

  const who = (s: SessionInfo): AuditData => ({
    session: s.id,
    identity: s.identity.name,
    kind: s.identity.kind,
    on_behalf_of: s.auth.onBehalfOf,
    database: s.database.name,
    environment: s.database.environment,
  });

  // Parts of statement records that repeat, encoded once (audit-fields.ts): per session, per
  // analysis (shared by every run of a statement shape) and per decision (memoized with it).
  const sessionParts = new WeakMap<SessionInfo, { members: Member[]; intent: string }>();
  const analysisParts = new WeakMap<Analysis, Member[]>();
  const decisionParts = new WeakMap<Decision, Member[]>();

  const sessionPart = (s: SessionInfo): { members: Member[]; intent: string } => {
    let p = sessionParts.get(s);
    if (!p) {
      p = {
        members: membersOf({ ...who(s), application_name: s.startupParams.get('application_name') }),
        intent: canonicalJson(intentOf(s.wardenSettings, '')),
      };
      sessionParts.set(s, p);
    }
    return p;
  };

  const analysisPart = (analysis: AnalysisOk): Member[] => {
    let p = analysisParts.get(analysis);
    if (!p) {
      const names = (l: readonly RelationRef[]) => [...new Set(l.flatMap(relationNames))];
      const reads = names(analysis.reads);
      const writes = names(analysis.writes);
      p = membersOf({
        tables: [...new Set([...reads, ...writes])],
        reads,
        writes,
        classes: [...analysis.classes].sort(),
        kinds: [...new Set(analysis.statements.map((x) => x.kind))],
        opaque: analysis.opaque ? true : undefined,
      });
      analysisParts.set(analysis, p);
    }
    return p;
  };

  const decisionPart = (decision: Decision, withheld: boolean): Member[] => {
    let p = withheld ? undefined : decisionParts.get(decision);
    if (!p) {
      p = membersOf({
        decision: {
          action: decision.action,
          rule: decision.decisive,
          reason: withheld ? redactParseError(decision.reason) : decision.reason,
          matched: decision.matched.map((m) => ({ rule: m.rule, action: m.action, certain: m.certain })),
        },
        sensitive: decision.sensitiveTypes.length > 0 ? [...decision.sensitiveTypes] : undefined,
      });
      if (!withheld) decisionParts.set(decision, p);
    }
    return p;
  };

  /** A statement's record data: the text as it may be kept (redacted, normalized, capped) and the fields. */
  // Whole records of one shape (session, analysis, decision, protocol) as templates: a run of a
  // statement shape costs the JSON of its text and parameters and a few concatenations.
  const templates = new WeakMap<SessionInfo, WeakMap<object, WeakMap<object, Map<string, Template>>>>();
  const NO_DECISION = {};
  const templateFor = (s: SessionInfo, analysis: Analysis, decision: Decision | null, variant: string, make: () => RecordFields): Template => {
    let bySession = templates.get(s);
    if (!bySession) templates.set(s, (bySession = new WeakMap()));
    let byAnalysis = bySession.get(analysis);
    if (!byAnalysis) bySession.set(analysis, (byAnalysis = new WeakMap()));
    const dk = decision ?? NO_DECISION;
    let byVariant = byAnalysis.get(dk);
    if (!byVariant) byAnalysis.set(dk, (byVariant = new Map()));
    let t = byVariant.get(variant);
    if (!t) {
      t = new Template(make(), variant === 'params' ? ['params', 'sql'] : ['sql']);
      byVariant.set(variant, t);
    }
    return t;
  };

  const describe = (s: SessionInfo, stmt: StatementSource, analysis: Analysis, decision: Decision | null): { sql: string; fields: RecordData } => {
    const sensitive = decision !== null && decision.sensitiveTypes.length > 0;
    const secret = redactSecrets(stmt.sql, analysis); // passwords, connection strings: src/sql/secrets.ts
    const withheld = secret?.how === 'withheld';
    let sql = secret ? secret.text : stmt.sql;
    if (sensitive && !withheld) sql = normalizeSql(sql) ?? '<statement withheld: touches sensitive columns and could not be normalized>';
    const shown = sql.length > MAX_SQL ? shownText(sql, MAX_SQL, 'not kept by Warden beyond this record') : undefined;
    // The common shape: no secret, no comment (intent from the session), an unnamed statement.
    if (analysis.ok && !secret && !shown && !stmt.sql.includes('/*') && (stmt.protocol === 'simple' || stmt.statementName === '')) {
      const ext = stmt.protocol === 'extended' ? stmt : null;
      const params = ext && ext.params.length > 0 ? ext.params : null;
      const general = (): RecordFields => describeFields(s, stmt, analysis, decision, sql, undefined, secret, withheld, sensitive);
      const shapeOnly = (): RecordFields => {
        const f = new RecordFields([sessionPart(s).members, analysisPart(analysis), ...(decision ? [decisionPart(decision, false)] : [])]);
        return f.set('protocol', stmt.protocol).set('intent', new CanonicalText(sessionPart(s).intent));
      };
      const template = templateFor(s, analysis, decision, params ? 'params' : stmt.protocol, shapeOnly);
      const values = params
        ? [canonicalJson(params.map((p, i) => (sensitive && p !== null ? MASKED : formatParam(p, paramFormat(ext!.paramFormats, i))))), JSON.stringify(sql)]
        : [JSON.stringify(sql)];
      return { sql, fields: new TemplateData(template, values, general) };
    }
    return { sql, fields: describeFields(s, stmt, analysis, decision, sql, shown, secret, withheld, sensitive) };
  };

  const describeFields = (
    s: SessionInfo,
    stmt: StatementSource,
    analysis: Analysis,
    decision: Decision | null,
    sql: string,
    shown: ReturnType<typeof shownText> | undefined,
    secret: ReturnType<typeof redactSecrets>,
    withheld: boolean,
    sensitive: boolean,
  ): RecordFields => {
    const sess = sessionPart(s);
    const fixed: Member[][] = [sess.members];
    if (analysis.ok) fixed.push(analysisPart(analysis));
    if (decision) fixed.push(decisionPart(decision, withheld));
    const fields = new RecordFields(fixed);
    fields.set('protocol', stmt.protocol).set('sql', shown ? shown.text : sql);
    fields.set('intent', stmt.sql.includes('/*') ? intentOf(s.wardenSettings, stmt.sql) : new CanonicalText(sess.intent));
    if (shown) fields.set('sql_length', shown.length).set('sql_sha256', shown.sha256);
    if (stmt.protocol === 'extended') {
      if (stmt.statementName !== '') fields.set('statement_name', stmt.statementName);
      if (stmt.params.length > 0) fields.set('params', stmt.params.map((p, i) => ((sensitive || secret?.maskParams) && p !== null ? MASKED : formatParam(p, paramFormat(stmt.paramFormats, i)))));
    }
    if (!analysis.ok) fields.set('parse_error', withheld ? redactParseError(analysis.error) : analysis.error);
    return fields;
  };

  const flushDdl = (s: SessionInfo, st: SessionAudit): void => {
    if (!catalog || st.pendingDdl.length === 0) return;
    const pending = st.pendingDdl;
    st.pendingDdl = [];
    for (const p of pending) {
      void catalog
        .snapshot(s.database, p.targets)
        .then((after) => schemaChange(s, p, after))
        .catch((err: Error) => schemaChange(s, p, null, err.message));
    }
  };

  /**
   * Read the after-state of DDL that ran in the still-open transaction, in it,
   * before the session's next statement runs (so each statement's record has
   * the state right after it, not after the whole transaction).
   */
  const afterInTransaction = async (s: SessionInfo, st: SessionAudit): Promise<void> => {
    const pending = st.afterInTransaction;
    st.afterInTransaction = [];
    for (const p of pending) {
      if (!catalog) continue;
      try {
        const { defs, read } = await snapshotFor(s, catalog, p.targets);
        if (read === 'transaction') schemaChange(s, p, defs, undefined, 'transaction');
        // The transaction ended meanwhile (read would show the committed state of something later): once outside it.
        else st.pendingDdl.push(p);
      } catch (err) {
        schemaChange(s, p, null, (err as Error).message);
      }
    }
    if (st.pendingDdl.length > 0 && s.txStatus === 'I') flushDdl(s, st);
  };

  const schemaChange = (
    s: SessionInfo,
    p: PendingDdl,
    after: Record<string, ObjectDefinition | null> | null,
    error?: string,
    afterRead: PendingDdl['read'] = 'catalog',
  ): void => {
    const objects: Record<string, JsonValue> = {};
    const tables: string[] = [];
    for (const t of p.targets) {
      const key = targetKey(t);
      // Definitions read from the catalog (function bodies, options) carry secrets too: src/sql/secrets.ts.
      const b = redactJsonSecrets(p.before[key] ?? null);
      const a = after ? redactJsonSecrets(after[key] ?? null) : null;
      if (b === null && a === null && p.targets.length > 1) continue;
      if (t.guess && after && canonicalJson(b as unknown as JsonValue) === canonicalJson(a as unknown as JsonValue)) continue;
      tables.push(key);
      objects[key] = {
        before: b as unknown as JsonValue,
        after: after ? (a as unknown as JsonValue) : undefined,
        changes: after ? diffDefinitions(b, a) : undefined,
      };
    }
    audit.record('schema.change', { ...who(s), statement_seq: p.seq, tables, objects, read: { before: p.read, after: afterRead }, error });
  };

  const statement = (s: SessionInfo, stmt: StatementSource, analysis: Analysis, decision: Decision | null, verdict: Verdict): Verdict | Promise<Verdict> => {
    const st = stateOf(s);
    if (st.pendingDdl.length > 0 && s.txStatus === 'I') flushDdl(s, st);
    if (verdict.action === 'error') {
      st.refused++;
      const { sql, fields } = describe(s, stmt, analysis, decision);
      audit.record('statement.refused', fields.text({ sqlstate: verdict.error.code, error: sql === stmt.sql ? verdict.error.message : redactMessage(verdict.error.message, stmt.sql, redactSecrets(stmt.sql, analysis)) }));
      return verdict;
    }
    st.statements++;
    const { sql, fields } = describe(s, stmt, analysis, decision);
    const targets = catalog && analysis.ok ? targetsOf(analysis) : NO_TARGETS;
    const begin = async (): Promise<Verdict> => {
      if (st.afterInTransaction.length > 0) await afterInTransaction(s, st);
      let before: Record<string, ObjectDefinition | null> | null = null;
      let read: PendingDdl['read'] = 'catalog';
      if (targets.length > 0 && catalog) {
        try {
          ({ defs: before, read } = await snapshotFor(s, catalog, targets));
        } catch (err) {
          fields.set('catalog_error', (err as Error).message);
        }
      }
      let seq: number;
      try {
        seq = await audit.writeAhead('statement.begin', fields.text());
      } catch (err) {
        return refuse(err);
      }
      return running(seq, before, read);
    };

    /** The statement cannot be recorded: it is refused, and the refusal recorded once the store is back. */
    const refuse = (err: unknown): Verdict => {
      {
        const reason = err instanceof AuditUnavailableError ? err.message : `audit log failed (${(err as Error).message})`;
        log.warn({ session: s.id, identity: s.identity.name, reason }, 'statement refused: not recorded');
        // Under `continue` a record is only ever refused when it is lost (shutting down, backlog full,
        // not encodable), never because the store fails: say so instead of naming `block`.
        const blocking = audit.onFailure === 'block';
        const refusal: Verdict = {
          action: 'error',
          error: {
            code: '58030',
            message: `${reason}; the statement was not run${blocking ? ' because audit.on_failure is block' : ''}`,
            hint: blocking
              ? 'Warden runs no statement it cannot record. Try again when the audit store is writable.'
              : 'With audit.on_failure: continue a statement runs without its record while the audit store fails, but this record was lost. Try again.',
          },
        };
        // The refusal itself is kept and written once the store is back (like other records that
        // nobody waits for), so an attempt made while the log was down still leaves a trace.
        st.statements--;
        st.refused++;
        audit.record('statement.refused', fields.text({ sqlstate: refusal.error.code, error: refusal.error.message, refused_while: 'audit-unavailable' }));
        return refusal;
      }
    };

    /** Recorded as `seq`: the statement goes on, and its completion is recorded when it is done. */
    const running = (seq: number, before: Record<string, ObjectDefinition | null> | null, read: PendingDdl['read'], durable?: Promise<void>): Verdict => {
      const started = process.hrtime.bigint();
      const inner = verdict.onDone;
      const onDone = (out: StatementOutcome): void => {
        inner?.(out);
        let affected: number | undefined;
        for (const tag of out.tags) {
          const n = rowsOfTag(tag);
          if (n !== null) affected = (affected ?? 0) + n;
        }
        audit.record(
          'statement.end',
          statementEndText({
            session: s.id,
            identity: s.identity.name,
            beginSeq: seq,
            tags: out.tags,
            rows: out.rows,
            affected,
            durationMs: Number(process.hrtime.bigint() - started) / 1e6,
            sqlstate: out.error?.code,
            error: out.error ? cap(sql === stmt.sql ? out.error.message : redactMessage(out.error.message, stmt.sql, redactSecrets(stmt.sql, analysis)), 1024) : undefined,
            masked: verdict.action === 'forward' && verdict.masking && verdict.masking.columns.length > 0 ? verdict.masking.columns : undefined,
          }),
        );
        if (targets.length > 0 && catalog) {
          const p: PendingDdl = { seq, targets, before: before ?? {}, read };
          // Ran and left a transaction block open: read its after-state in it, before the next statement.
          if (!out.error && s.txStatus === 'T' && stmt.protocol === 'simple' && s.readInTransaction) st.afterInTransaction.push(p);
          else {
            st.pendingDdl.push(p);
            if (s.txStatus === 'I' && stmt.protocol === 'simple') flushDdl(s, st);
          }
        }
      };
      return durable ? { ...verdict, onDone, durable } : { ...verdict, onDone };
    };

    // The hot path: nothing to read first, and the store has a journal. The record is staged now
    // and written with the rest of this event-loop turn's records by one write() at its end (then,
    // at fsync, one shared fdatasync). No statement reaches PostgreSQL before its record is in the
    // OS; at fsync a plain read goes on then, its result held until the sync covers the record,
    // and anything else waits for the sync.
    if (st.afterInTransaction.length === 0 && targets.length === 0) {
      const now = audit.writeNow('statement.begin', fields.text());
      if (now) {
        const early = now.written !== now.durable && unobservable(analysis);
        return (early ? now.written : now.durable).then(
          () => running(now.seq, null, 'catalog', early ? now.durable : undefined),
          (err: unknown) => refuse(err),
        );
      }
    }
    return begin();
  };

  return {
    statement,
    sessionStart(s) {
      stateOf(s);
      audit.record('session.start', {
        ...who(s),
        groups: [...s.identity.groups],
        client_address: s.clientAddress,
        client_port: s.clientPort,
        tls: s.tls,
        auth: s.auth.method,
        token: s.auth.tokenId,
        credential_expires_at: s.auth.expiresAt?.toISOString(),
        application_name: s.startupParams.get('application_name'),
        intent: Object.fromEntries(s.wardenSettings),
      });
    },
    sessionEnd(s, reason) {
      const st = stateOf(s);
      st.pendingDdl.push(...st.afterInTransaction);
      st.afterInTransaction = [];
      flushDdl(s, st);
      audit.record('session.end', {
        ...who(s),
        reason,
        duration_ms: Date.now() - st.started,
        statements: st.statements,
        refused: st.refused,
      });
    },
    loginFailed(e) {
      audit.record('login.failed', {
        identity: e.identity,
        client_address: e.clientAddress,
        database: e.database,
        reason: e.reason,
        tls: e.tls,
      });
    },
  };
}
