/**
 * Data outside the tables, for a masked identity: what a statement may not
 * read or write even though no sensitive column appears in its result.
 *
 * - **Column statistics** hold real values (`pg_stats.most_common_vals`,
 *   `histogram_bounds`, extended statistics' MCV lists). A statement that
 *   reads `pg_stats`, `pg_stats_ext`, `pg_stats_ext_exprs`, `pg_statistic`,
 *   `pg_statistic_ext`, `pg_statistic_ext_data`, or a view the catalog says is
 *   built over them (see sensitive-catalog.ts), or calls `pg_mcv_list_items`,
 *   is refused — in any clause, at any depth (the analysis lists every
 *   relation read and every function called). ANALYZE stays allowed: it only
 *   refreshes what cannot be read.
 * - **Settings as a stash.** `set_config(name, value)` whose value is not a
 *   constant or a parameter, in a statement that reads any relation or runs
 *   code Warden cannot see, is refused (the value could be computed from a
 *   sensitive column and read back with SHOW, current_setting(), pg_settings,
 *   or — for `application_name` — a ParameterStatus message to every client).
 *   `pg_notify` in such a statement is refused likewise (its payload reaches
 *   every listener).
 * - **Other sessions' statements**: `pg_stat_activity`, `pg_stat_statements` and the functions
 *   behind them are refused (every Warden session is the same upstream role, so they show the
 *   texts — and literal values — of other identities' statements).
 * - **Reading settings back.** `pg_settings` and `pg_show_all_settings()` are
 *   refused; `SHOW` of a custom (dotted) setting or `SHOW ALL`, and
 *   `current_setting()` of anything but a constant built-in name, get their
 *   outputs masked whole (`masksSettings`).
 *
 * Pure.
 */
import type { AnalysisOk, RelationRef, StatementAnalysis } from '../sql/types.js';
import type { SensitiveColumnMap } from './sensitive-catalog.js';

/** The catalog's views over the statistics, as `checkBackDoors` takes them. */
export function statisticsViews(map: SensitiveColumnMap): ((r: RelationRef) => boolean) | undefined {
  const reads = map.readsStatistics?.bind(map);
  return reads ? (r) => r.candidates.some((c) => reads(c, r.table)) : undefined;
}

/** Catalog relations that hold column values (statistics). */
export const STATISTICS_RELATIONS: ReadonlySet<string> = new Set([
  'pg_stats',
  'pg_stats_ext',
  'pg_stats_ext_exprs',
  'pg_statistic',
  'pg_statistic_ext',
  'pg_statistic_ext_data',
]);

/** Functions that return values kept in statistics. */
const STATISTICS_FUNCTIONS: ReadonlySet<string> = new Set(['pg_mcv_list_items', 'pg_mcv_list_in', 'pg_mcv_list_out', 'pg_mcv_list_send', 'pg_ndistinct_out', 'pg_dependencies_out']);

/**
 * Other sessions' statement texts: every Warden session runs as the same upstream role, so
 * `pg_stat_activity.query` shows what the other sessions run — an unmasked identity's
 * `INSERT ... VALUES ('123-45-6789')` included.
 */
const ACTIVITY_RELATIONS: ReadonlySet<string> = new Set(['pg_stat_activity', 'pg_stat_statements', 'pg_stat_statements_info']);
const ACTIVITY_FUNCTIONS: ReadonlySet<string> = new Set(['pg_stat_get_activity', 'pg_stat_get_backend_activity', 'pg_stat_statements']);

/** Relations and functions that list every setting, custom ones included. */
const SETTINGS_RELATIONS: ReadonlySet<string> = new Set(['pg_settings']);
const SETTINGS_FUNCTIONS: ReadonlySet<string> = new Set(['pg_show_all_settings']);

export type BackDoorCheck =
  | {
      readonly ok: true;
      /** The statement reads custom settings back (SHOW x.y, SHOW ALL, current_setting(...)): its outputs are masked whole. */
      readonly masksSettings: boolean;
    }
  | { readonly ok: false; readonly reason: string };

const bare = (fn: string): string => {
  const dot = fn.lastIndexOf('.');
  return (dot >= 0 ? fn.slice(dot + 1) : fn).replace(/^"|"$/g, '').toLowerCase();
};

/** The relation could be the catalog's (its schema is pg_catalog, or an unqualified name that resolves there first). */
const catalogNamed = (r: RelationRef, names: ReadonlySet<string>): boolean => names.has(r.table.toLowerCase());

/**
 * A constant setting name that is not custom: `current_setting('search_path')`, or one of the
 * settings Warden itself gives every session for row-level security (`warden.identity`, ...),
 * which clients cannot change and which hold no table data.
 */
const WARDEN_SETTINGS = '(?:warden\\.(?:identity|kind|groups|on_behalf_of))';
const PLAIN_CURRENT_SETTING = new RegExp(`\\bcurrent_setting\\s*\\(\\s*'(${WARDEN_SETTINGS}|[a-z_][a-z0-9_]*)'\\s*(?:,\\s*(?:true|false)\\s*)?\\)`, 'gi');
const WARDEN_SETTING_NAME = new RegExp(`^${WARDEN_SETTINGS}$`, 'i');

function readsCustomSettings(st: StatementAnalysis): boolean {
  if (st.kind === 'other' && /^\s*show\b/i.test(st.text)) {
    const m = /^\s*show\s+(.+?)\s*;?\s*$/is.exec(st.text);
    const name = m?.[1]?.trim() ?? '';
    if (WARDEN_SETTING_NAME.test(name)) return false;
    return name.toLowerCase() === 'all' || name.includes('.') || !/^[a-z_][a-z0-9_ ]*$/i.test(name);
  }
  if (!st.functions.some((f) => bare(f) === 'current_setting')) return false;
  // Every call names a built-in setting as a constant: nothing custom is read.
  const calls = st.text.match(/\bcurrent_setting\s*\(/gi)?.length ?? 0;
  const plain = [...st.text.matchAll(PLAIN_CURRENT_SETTING)].length;
  return plain < calls || calls === 0;
}

/**
 * `statsRelation(schema, table)` says whether a relation is a view built over the statistics
 * (from the catalog); absent: only the catalog's own relations are known.
 */
export function checkBackDoors(analysis: AnalysisOk, statsRelation?: (r: RelationRef) => boolean): BackDoorCheck {
  let masksSettings = false;
  for (const st of analysis.statements) {
    const stats = st.reads.find((r) => catalogNamed(r, STATISTICS_RELATIONS) || statsRelation?.(r));
    if (stats) {
      return {
        ok: false,
        reason: `it reads ${stats.name}, which holds real column values (statistics); ask an identity that is not masked`,
      };
    }
    const fn = st.functions.find((f) => STATISTICS_FUNCTIONS.has(bare(f)));
    if (fn) return { ok: false, reason: `it calls ${fn}, which returns real column values (statistics)` };
    const activity = st.reads.find((r) => catalogNamed(r, ACTIVITY_RELATIONS));
    const activityFn = st.functions.find((f) => ACTIVITY_FUNCTIONS.has(bare(f)));
    if (activity || activityFn) {
      return {
        ok: false,
        reason: `it reads ${activity ? activity.name : activityFn}, the statement texts of other sessions (which can hold the sensitive values they write); ask an identity that is not masked`,
      };
    }
    const settings = st.reads.find((r) => catalogNamed(r, SETTINGS_RELATIONS));
    const settingsFn = st.functions.find((f) => SETTINGS_FUNCTIONS.has(bare(f)));
    if (settings || settingsFn) {
      return {
        ok: false,
        reason: `it reads ${settings ? settings.name : settingsFn} (every setting, custom ones included, which could hold values stashed from sensitive columns); use SHOW or current_setting() for a built-in setting`,
      };
    }
    const computedFromData = st.reads.length > 0 || st.opaque || st.kind === 'call';
    if (computedFromData) {
      const set = st.sets.find((c) => c.via === 'set_config' && (c.value === undefined || c.name === '*'));
      if (set || st.functions.some((f) => bare(f) === 'set_config') && st.sets.length === 0) {
        return {
          ok: false,
          reason: `it sets ${set ? `the setting ${set.name}` : 'a setting'} with set_config() to a value that is not a constant while reading table data, so the setting could carry a sensitive value out (SHOW, current_setting(), ParameterStatus); set it to a constant or a parameter`,
        };
      }
      if (st.functions.some((f) => bare(f) === 'pg_notify')) {
        return {
          ok: false,
          reason: 'it calls pg_notify() while reading table data, so the notification payload could carry a sensitive value to every listener; notify with a constant payload instead',
        };
      }
    }
    masksSettings ||= readsCustomSettings(st);
  }
  return { ok: true, masksSettings };
}
