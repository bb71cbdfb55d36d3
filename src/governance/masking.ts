/**
 * Masking on the wire: the verdict for a statement whose decision is `mask`.
 *
 * 1. A statement PostgreSQL's parser rejects, or one that uses a sensitive
 *    column where masking cannot follow it (masking/leaks.ts), is refused with
 *    42501 naming the rule and the reason. So is one that creates objects or runs
 *    code over masked columns, or runs code Warden cannot see (masking/session-code.ts).
 * 2. Otherwise it is forwarded with a {@link RowMasker}: sensitive base columns
 *    are recognised by the table OID and attribute number of each
 *    RowDescription, through a per-database map of sensitive columns read from
 *    the catalog (refreshed when older than {@link MAP_MAX_AGE_MS}, when the
 *    statement reads a relation the map does not know, and after DDL). While a
 *    database is in use its map is also re-read in the background every half
 *    of that age, so statements seldom wait for the catalog — and a read that
 *    must wait its turn (PGlite, behind another session's transaction) does
 *    not hold a statement up. A statement inside a transaction block whose map must be read
 *    reads it on its own connection, in the transaction (see `inTransaction`).
 */
import crypto from 'node:crypto';
import type { DatabaseConfig, MaskerName, WardenConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { Analysis, AnalysisOk, RelationRef } from '../sql/index.js';
import type { Decision } from '../policy/index.js';
import { compileSensitive } from '../policy/sensitive.js';
import { FORWARD, type SessionInfo, type Verdict } from '../contract/statement-hooks.js';
import { checkMaskable } from '../masking/leaks.js';
import { catalogColumns, createAllowlist } from '../masking/allowlist.js';
import { checkSessionCode } from '../masking/session-code.js';
import { checkMaskedDdl } from '../masking/ddl.js';
import { deriveMaskKey } from '../masking/maskers.js';
import { RowMasker } from '../masking/row-masker.js';
import { mayCarryValues } from '../masking/messages.js';
import { checkBackDoors, statisticsViews } from '../masking/back-doors.js';
import { copyOutOf, planCopy, type CopyMaskOptions } from '../masking/copy-out.js';
import { loadSensitiveMap, type SensitiveColumnMap } from '../masking/sensitive-catalog.js';
import type { CatalogReader } from './catalog-reader.js';

/** A transaction statement that only rolls back (its text as the parser gave it; a leading comment: not recognised). */
const ROLLS_BACK = /^(?:ROLLBACK|ABORT)\b/i;

/** A catalog read on the session's connection found it outside a transaction block. */
const NOT_IN_TRANSACTION = new Error('not in a transaction block');

/** The sensitive-column map is re-read when older than this. */
export const MAP_MAX_AGE_MS = 30_000;

export interface MaskingService {
  /** The verdict for a `mask` decision (synchronous when the sensitive-column map is at hand). */
  verdict(s: SessionInfo, analysis: Analysis, decision: Decision): Verdict | Promise<Verdict>;
  /** Forget a database's map (after DDL). */
  invalidate(database: string): void;
  /** Read a database's map ahead of its first statement (errors are logged, not thrown). */
  warm(db: DatabaseConfig): void;
  /** Stop the background refreshes. */
  close(): void;
}

export function createMaskingService(config: WardenConfig, catalog: CatalogReader, log: Logger): MaskingService {
  const sensitive = compileSensitive(config.sensitive?.columns);
  const detect = config.sensitive?.detect ?? [];
  const maskers = config.sensitive?.maskers ?? {};
  const maskerFor = (type: string): MaskerName => (Object.hasOwn(maskers, type) ? maskers[type]! : 'fake');
  let key: Buffer;
  if (config.sensitive?.key) key = deriveMaskKey(config.sensitive.key);
  else {
    key = deriveMaskKey(crypto.randomBytes(32));
    if (sensitive.entries.length > 0) log.warn('sensitive.key is not set: masked values are consistent only until Warden restarts');
  }
  const relaxedRules = new Set(config.rules.filter((r) => r.action === 'mask' && r.strict === false).map((r) => r.name));
  const relaxedFor = (d: Decision): boolean => {
    const masks = d.matched.filter((m) => m.action === 'mask');
    return masks.length > 0 && masks.every((m) => relaxedRules.has(m.rule));
  };
  /** Strict mode's allowlist (masking/allowlist.ts), cached per text and per catalog map. */
  const allowlist = createAllowlist(sensitive);
  const maps = new Map<string, Promise<SensitiveColumnMap>>();
  /** Maps already loaded, for the synchronous path. */
  const ready = new Map<string, SensitiveColumnMap>();
  /** Databases whose map a statement used since it was last read: those are refreshed in the background. */
  const used = new Set<string>();
  const timers = new Map<string, NodeJS.Timeout>();
  let closed = false;

  const load = (db: DatabaseConfig): Promise<SensitiveColumnMap> => {
    const p = loadSensitiveMap((sql, params) => catalog.query(db, sql, params), sensitive);
    maps.set(db.name, p);
    used.delete(db.name);
    p.then(
      (m) => {
        if (maps.get(db.name) !== p) return;
        ready.set(db.name, m);
        scheduleRefresh(db);
      },
      () => {
        if (maps.get(db.name) === p) maps.delete(db.name);
      },
    );
    return p;
  };

  const scheduleRefresh = (db: DatabaseConfig): void => {
    clearTimeout(timers.get(db.name));
    if (closed) return;
    const t = setTimeout(() => {
      timers.delete(db.name);
      if (closed || !used.has(db.name)) return; // idle: the next statement reads it again if needed
      load(db).catch((err: Error) => log.warn({ database: db.name, reason: err.message }, 'background refresh of the sensitive columns failed'));
    }, MAP_MAX_AGE_MS / 2);
    t.unref();
    timers.set(db.name, t);
  };

  // The relations DDL acts on count too (masking/ddl.ts judges them by the map: a partition made
  // around Warden since the map was read must be known before it can be renamed or detached).
  const unknown = (map: SensitiveColumnMap, rels: readonly RelationRef[]): boolean =>
    rels.some((r) => r.table !== '*' && !r.candidates.includes('*') && !r.candidates.some((c) => map.hasRelation(c, r.table)));
  const usable = (map: SensitiveColumnMap, analysis: Analysis): boolean =>
    Date.now() - map.loadedAt <= MAP_MAX_AGE_MS &&
    !(analysis.ok && (unknown(map, analysis.reads) || (analysis.statements.some((st) => st.classes.has('ddl')) && unknown(map, analysis.writes))));

  /**
   * Maps read in a session's transaction (see `inTransaction`), kept for its next statements
   * until a transaction statement (its transaction may end), DDL (`invalidate`) or their age.
   */
  const sessionMaps = new WeakMap<SessionInfo, { readonly map: SensitiveColumnMap; readonly epoch: number }>();
  /** Bumped by `invalidate`. */
  let epoch = 0;

  const mapFor = async (s: SessionInfo, analysis: Analysis): Promise<SensitiveColumnMap> => {
    const db = s.database;
    if (s.txStatus === 'T' && s.readInTransaction) {
      const kept = sessionMaps.get(s);
      if (kept && kept.epoch === epoch && usable(kept.map, analysis)) return kept.map;
      const at = epoch;
      const own = await inTransaction(s);
      if (own) {
        if (at === epoch) sessionMaps.set(s, { map: own, epoch: at });
        return own;
      }
    }
    const map = await (maps.get(db.name) ?? load(db));
    return usable(map, analysis) ? map : load(db);
  };

  /**
   * The map read on the session's own connection, inside its open transaction block
   * (SessionInfo.readInTransaction), for a statement of a session in a transaction whose shared
   * map is not usable: a read on the catalog connection could wait for this very transaction —
   * on PGlite, whose one backend serves one transaction at a time, it waits until it times out,
   * and every statement of the session, ROLLBACK and COMMIT included, would be refused. It also
   * sees the transaction's own objects. Not shared (it reflects uncommitted changes). Null when
   * it cannot be read there: not in a transaction block at that point, or a search_path that
   * does not put pg_catalog first (the session's own types or operators could then stand in
   * for the catalog's in the queries): the catalog connection then.
   */
  const inTransaction = async (s: SessionInfo): Promise<SensitiveColumnMap | null> => {
    const read = (sql: string, params: readonly unknown[]) =>
      s.readInTransaction!(sql, params.map((p) => (p === null || p === undefined ? null : Array.isArray(p) ? `{${p.join(',')}}` : String(p)))).then((r) => {
        if (r === null) throw NOT_IN_TRANSACTION;
        return r;
      });
    try {
      const path = await read('SELECT (pg_catalog.current_schemas(true))[1] AS first', []);
      if (path.rows[0]?.first !== 'pg_catalog') return null;
      return await loadSensitiveMap(read, sensitive);
    } catch (err) {
      if (err === NOT_IN_TRANSACTION) return null;
      throw err;
    }
  };

  /** What the checks decided for a statement: a refusal's reason, or how to mask its rows. */
  type Plan =
    | string
    | {
        readonly computedType: string | null;
        readonly scrubErrors: boolean;
        readonly withholdMessages: boolean;
        readonly deepScanComputed: boolean;
        readonly copy?: Pick<CopyMaskOptions, 'format' | 'plan'>;
      };

  /** The checks that need no catalog map: COPY, code and objects, the allowlist, the clause checks. */
  const preMap = (analysis: AnalysisOk, strict: boolean, database: string, encoding: string | undefined) => {
    let a = analysis;
    const copy = copyOutOf(a, encoding);
    if (copy && !copy.ok) return copy.reason;
    if (copy) a = copy.analysis;
    // Objects and code made in the session, code Warden cannot see (masking/session-code.ts): strict and relaxed.
    const code = checkSessionCode(a, sensitive, { strict, database });
    if (!code.ok) return code.reason;
    // DDL that reads masked values or moves masked columns out from under sensitive.columns (masking/ddl.ts): strict and relaxed.
    const ddl = checkMaskedDdl(a, sensitive);
    if (!ddl.ok) return ddl.reason;
    if (strict) {
      const al = allowlist(a);
      if (!al.ok) return al.reason;
    }
    let check = checkMaskable(a, sensitive);
    // Relaxed when every mask rule that applies says strict: false (outputs are still masked).
    // COPY output is never masked: not relaxed.
    if (!check.ok && !strict && !a.statements.some((x) => x.kind === 'copy')) check = { ok: true, sensitiveOutput: true, types: [...sensitive.types].sort() };
    if (!check.ok) return check.reason;
    return { a, copy, code, check };
  };

  /** All checks, with the catalog's map (memoized per analysis, mode, database, map and client encoding). */
  const plan = (analysis: AnalysisOk, strict: boolean, database: string, map: SensitiveColumnMap, encoding: string | undefined): Plan => {
    const pre = preMap(analysis, strict, database, encoding);
    if (typeof pre === 'string') return pre;
    const { a, copy, code, check } = pre;
    // Again with the catalog's masked columns (code and objects over views of sensitive columns).
    const c = checkSessionCode(a, sensitive, { strict, database, relationColumns: catalogColumns(map) });
    if (!c.ok) return c.reason;
    const ddl = checkMaskedDdl(a, sensitive, catalogColumns(map));
    if (!ddl.ok) return ddl.reason;
    if (strict) {
      const al = allowlist(a, map);
      if (!al.ok) return al.reason;
    }
    const codeReads = code.computedMasked || c.computedMasked;
    // Data outside the tables: statistics, settings, notifications (masking/back-doors.ts).
    const outside = checkBackDoors(a, statisticsViews(map));
    if (!outside.ok) return outside.reason;
    const computedType = check.sensitiveOutput ? (check.types.length === 1 ? check.types[0]! : 'text') : null;
    return {
      computedType: computedType ?? (outside.masksSettings || codeReads ? 'text' : null),
      scrubErrors: check.types.length > 0 || codeReads,
      withholdMessages: mayCarryValues(a, check.types.length > 0 || codeReads),
      deepScanComputed: a.reads.length > 0,
      ...(copy ? { copy: { format: copy.copy.format, plan: planCopy(copy, check.types, map) } } : {}),
    };
  };

  const plans = new WeakMap<AnalysisOk, Map<string, { readonly map: SensitiveColumnMap; readonly plan: Plan }>>();
  const planned = (analysis: AnalysisOk, strict: boolean, database: string, map: SensitiveColumnMap, encoding: string | undefined): Plan => {
    const key = `${strict ? 's' : 'r'}\u0000${database}\u0000${encoding ?? ''}`;
    let byKey = plans.get(analysis);
    const hit = byKey?.get(key);
    if (hit && hit.map === map) return hit.plan;
    const p = plan(analysis, strict, database, map, encoding);
    // COPY plans are not kept (rare, and their plan is the row masker's own).
    if (typeof p === 'string' || !p.copy) {
      if (!byKey) plans.set(analysis, (byKey = new Map()));
      if (byKey.size >= 8) byKey.clear();
      byKey.set(key, { map, plan: p });
    }
    return p;
  };

  /** The verdict of one run: a refusal, or a fresh row masker (it keeps per-run state). */
  const verdictOf = (s: SessionInfo, decision: Decision, map: SensitiveColumnMap, p: Plan): Verdict => {
    if (typeof p === 'string') return refuse(decision, p);
    const columns: string[] = [];
    const rows = new RowMasker({
      map,
      computedType: p.computedType,
      detect,
      key,
      maskerFor,
      scrubErrors: p.scrubErrors,
      withholdMessages: p.withholdMessages,
      onWithheldNotice: (r, id) => log.info({ session: s.id, identity: s.identity.name, request: id, sqlstate: r.code, severity: r.severity, text: r.message }, 'notice withheld from a masked identity'),
      onPlan: (m) => columns.push(...m),
      copy: p.copy ? { format: p.copy.format, plan: p.copy.plan, detect, key, maskerFor } : undefined,
      deepScanComputed: p.deepScanComputed,
    });
    return { action: 'forward', rows, masking: { columns } };
  };

  const refuse = (decision: Decision, why: string): Verdict => ({
    action: 'error',
    error: { code: '42501', message: `rule "${decision.decisive}" masks sensitive data, and ${why}` },
  });

  return {
    verdict(s, analysis, decision) {
      if (!analysis.ok) return refuse(decision, `the statement could not be parsed (${analysis.error})`);
      // ROLLBACK (ABORT, ROLLBACK TO SAVEPOINT, ...) shows no data and runs nothing that could
      // (unlike COMMIT: deferred triggers and constraints): nothing to mask, in any state, and no
      // catalog to wait for. A failed transaction can always end: its map cannot be read in it,
      // and on PGlite the catalog connection waits behind this very transaction.
      if (analysis.statements.some((x) => x.kind === 'transaction')) sessionMaps.delete(s);
      if (analysis.statements.length > 0 && analysis.statements.every((x) => x.kind === 'transaction' && ROLLS_BACK.test(x.text))) return FORWARD;
      const strict = !relaxedFor(decision);
      const encoding = s.parameters.get('client_encoding');
      used.add(s.database.name);
      const at = ready.get(s.database.name);
      // The common case: the map is at hand and this statement was planned before (analyses are
      // shared and immutable, so their plan is memoized): only the per-run row masker is new.
      if (at && usable(at, analysis)) return verdictOf(s, decision, at, planned(analysis, strict, s.database.name, at, encoding));
      // Refusals that need no catalog come at once.
      const early = preMap(analysis, strict, s.database.name, encoding);
      if (typeof early === 'string') return refuse(decision, early);
      return mapFor(s, analysis).then(
        (map) => verdictOf(s, decision, map, planned(analysis, strict, s.database.name, map, encoding)),
        (err: Error) => {
          log.error({ database: s.database.name, reason: err.message }, 'cannot read the sensitive columns from the catalog');
          return refuse(decision, 'Warden could not read which columns are sensitive from the catalog, so it cannot mask the result');
        },
      );
    },
    invalidate(database) {
      epoch++;
      maps.delete(database);
      ready.delete(database);
    },
    warm(db) {
      if (maps.has(db.name) || closed) return;
      load(db).catch((err: Error) => log.warn({ database: db.name, reason: err.message }, 'cannot read the sensitive columns from the catalog yet'));
    },
    close() {
      closed = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}
