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
 *    not hold a statement up.
 */
import crypto from 'node:crypto';
import type { DatabaseConfig, MaskerName, WardenConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { Analysis } from '../sql/index.js';
import type { Decision } from '../policy/index.js';
import { compileSensitive } from '../policy/sensitive.js';
import type { SessionInfo, Verdict } from '../contract/statement-hooks.js';
import { checkMaskable } from '../masking/leaks.js';
import { catalogColumns, createAllowlist } from '../masking/allowlist.js';
import { checkSessionCode } from '../masking/session-code.js';
import { deriveMaskKey } from '../masking/maskers.js';
import { RowMasker } from '../masking/row-masker.js';
import { mayCarryValues } from '../masking/messages.js';
import { checkBackDoors, statisticsViews } from '../masking/back-doors.js';
import { copyOutOf, planCopy } from '../masking/copy-out.js';
import { loadSensitiveMap, type SensitiveColumnMap } from '../masking/sensitive-catalog.js';
import type { CatalogReader } from './catalog-reader.js';

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

  const usable = (map: SensitiveColumnMap, analysis: Analysis): boolean =>
    Date.now() - map.loadedAt <= MAP_MAX_AGE_MS &&
    !(analysis.ok && analysis.reads.some((r) => r.table !== '*' && !r.candidates.includes('*') && !r.candidates.some((c) => map.hasRelation(c, r.table))));

  const mapFor = async (db: DatabaseConfig, analysis: Analysis): Promise<SensitiveColumnMap> => {
    const map = await (maps.get(db.name) ?? load(db));
    return usable(map, analysis) ? map : load(db);
  };

  const refuse = (decision: Decision, why: string): Verdict => ({
    action: 'error',
    error: { code: '42501', message: `rule "${decision.decisive}" masks sensitive data, and ${why}` },
  });

  return {
    verdict(s, analysis, decision) {
      if (!analysis.ok) return refuse(decision, `the statement could not be parsed (${analysis.error})`);
      // COPY ... TO STDOUT: checked as its query, its output masked like a result (masking/copy-out.ts).
      const copy = copyOutOf(analysis, s.parameters.get('client_encoding'));
      if (copy && !copy.ok) return refuse(decision, copy.reason);
      if (copy) analysis = copy.analysis;
      const strict = !relaxedFor(decision);
      // Objects and code made in the session, code Warden cannot see (masking/session-code.ts): strict and relaxed.
      const code = checkSessionCode(analysis, sensitive, { strict, database: s.database.name });
      if (!code.ok) return refuse(decision, code.reason);
      if (strict) {
        const a = allowlist(analysis);
        if (!a.ok) return refuse(decision, a.reason);
      }
      let check = checkMaskable(analysis, sensitive);
      // Relaxed when every mask rule that applies says strict: false (outputs are still masked).
      // COPY output is never masked: not relaxed.
      if (!check.ok && relaxedFor(decision) && !analysis.statements.some((x) => x.kind === 'copy')) check = { ok: true, sensitiveOutput: true, types: [...sensitive.types].sort() };
      if (!check.ok) return refuse(decision, check.reason);
      const computedType = check.sensitiveOutput ? (check.types.length === 1 ? check.types[0]! : 'text') : null;
      const forward = (map: SensitiveColumnMap, codeReads: boolean): Verdict => {
        // Data outside the tables: statistics, settings, notifications (masking/back-doors.ts).
        const outside = checkBackDoors(analysis, statisticsViews(map));
        if (!outside.ok) return refuse(decision, outside.reason);
        const columns: string[] = [];
        const rows = new RowMasker({
          map,
          computedType: computedType ?? (outside.masksSettings || codeReads ? 'text' : null),
          detect,
          key,
          maskerFor,
          scrubErrors: check.types.length > 0 || codeReads,
          withholdMessages: mayCarryValues(analysis, check.types.length > 0 || codeReads),
          onWithheldNotice: (r, id) => log.info({ session: s.id, identity: s.identity.name, request: id, sqlstate: r.code, severity: r.severity, text: r.message }, 'notice withheld from a masked identity'),
          onPlan: (m) => columns.push(...m),
          copy: copy ? { format: copy.copy.format, plan: planCopy(copy, check.types, map), detect, key, maskerFor } : undefined,
          deepScanComputed: analysis.reads.length > 0,
        });
        return { action: 'forward', rows, masking: { columns } };
      };
      used.add(s.database.name);
      const at = ready.get(s.database.name);
      // Strict: checked again with the catalog's masked columns (views over sensitive columns).
      const checked = (map: SensitiveColumnMap): Verdict => {
        // Again with the catalog's masked columns (code and objects over views of sensitive columns).
        const c = checkSessionCode(analysis, sensitive, { strict, database: s.database.name, relationColumns: catalogColumns(map) });
        if (!c.ok) return refuse(decision, c.reason);
        const a = strict ? allowlist(analysis, map) : undefined;
        return a && !a.ok ? refuse(decision, a.reason) : forward(map, code.computedMasked || c.computedMasked);
      };
      if (at && usable(at, analysis)) return checked(at);
      return mapFor(s.database, analysis).then(checked, (err: Error) => {
        log.error({ database: s.database.name, reason: err.message }, 'cannot read the sensitive columns from the catalog');
        return refuse(decision, 'Warden could not read which columns are sensitive from the catalog, so it cannot mask the result');
      });
    },
    invalidate(database) {
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
