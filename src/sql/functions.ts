/**
 * Built-in and well-known extension functions whose effect reaches beyond a
 * plain read: they make a statement `opaque`, a `write`, a `set`, or a `lock`.
 *
 * Functions are matched by their bare name, lower-cased, whatever schema the
 * SQL names (`pg_catalog.pg_read_file`, `public.dblink`, `"PG_READ_FILE"`):
 * extensions such as dblink live in any schema, and a same-named user function
 * is treated like the built-in, fail-closed.
 *
 * User-defined functions are not in this list and are not opaque: Warden cannot
 * see what their bodies do (a documented limit, docs/policy.md).
 *
 * @module
 */

/** What calling a function does beyond computing a value. */
export type FunctionEffect =
  /** Reaches outside the tables or runs SQL Warden cannot see. */
  | 'opaque'
  /** Changes data (sequences, notifications). */
  | 'write'
  /** Changes a setting (`set_config`). */
  | 'set'
  /**
   * Advisory locks: like `LOCK TABLE`, they block other sessions that ask for the same lock
   * (`lock` and `write`, so an allow rule for writes covers a migration tool's lock, and
   * read-only recipes refuse it).
   */
  | 'lock';

/** Why a function is classified as it is (used in notes and opaque reasons). */
export interface FunctionInfo {
  readonly effect: FunctionEffect;
  readonly why: string;
}

const FILES = 'reads or writes server files';
const LO = 'large-object function (server files / large objects outside the tables)';
const REMOTE = 'runs SQL on another server';
const BACKEND = 'acts on other sessions or the server';
const SQLSTR = 'runs SQL given as a string';
const REPL = 'replication / WAL control';
const STATS = 'resets server statistics';

const EXACT: Record<string, FunctionInfo> = {};
function add(effect: FunctionEffect, why: string, names: string[]): void {
  for (const n of names) EXACT[n] = { effect, why };
}

add('opaque', FILES, [
  'pg_read_file',
  'pg_read_binary_file',
  'pg_ls_dir',
  'pg_stat_file',
  'pg_ls_logdir',
  'pg_ls_waldir',
  'pg_ls_tmpdir',
  'pg_ls_archive_statusdir',
  'pg_ls_logicalsnapdir',
  'pg_ls_logicalmapdir',
  'pg_ls_replslotdir',
  'pg_ls_summariesdir',
  'pg_current_logfile',
  // adminpack
  'pg_file_write',
  'pg_file_rename',
  'pg_file_unlink',
  'pg_file_sync',
  'pg_logdir_ls',
  'pg_file_read',
  'pg_file_length',
]);
add('opaque', LO, [
  'lo_import',
  'lo_export',
  'lo_unlink',
  'lo_create',
  'lo_creat',
  'lo_open',
  'lo_close',
  'lo_put',
  'lo_get',
  'lo_from_bytea',
  'lo_truncate',
  'lo_truncate64',
  'lo_lseek',
  'lo_lseek64',
  'lo_tell',
  'lo_tell64',
  'loread',
  'lowrite',
  'lo_manage',
]);
add('opaque', BACKEND, [
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_log_backend_memory_contexts',
  'pg_signal_backend',
]);
add('opaque', REPL, [
  'pg_promote',
  'pg_switch_wal',
  'pg_switch_xlog',
  'pg_create_restore_point',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_start_backup',
  'pg_stop_backup',
  'pg_wal_replay_pause',
  'pg_wal_replay_resume',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_replication_slot_advance',
  'pg_logical_slot_get_changes',
  'pg_logical_slot_peek_changes',
  'pg_logical_slot_get_binary_changes',
  'pg_logical_slot_peek_binary_changes',
  'pg_logical_emit_message',
  'pg_sync_replication_slots',
  'pg_log_standby_snapshot',
  'pg_import_system_collations',
]);
add('opaque', SQLSTR, [
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'ts_stat',
  'ts_rewrite',
]);
add('opaque', STATS, [
  'pg_stat_reset',
  'pg_stat_reset_shared',
  'pg_stat_reset_single_table_counters',
  'pg_stat_reset_single_function_counters',
  'pg_stat_reset_slru',
  'pg_stat_reset_replication_slot',
  'pg_stat_reset_subscription_stats',
  'pg_stat_reset_backend_stats',
  'pg_stat_statements_reset',
]);
add('write', 'changes a sequence', ['nextval', 'setval']);
add('write', 'sends a notification to other sessions', ['pg_notify']);
add('set', 'changes a setting', ['set_config']);
add('lock', 'takes or releases an advisory lock', [
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
]);

/** Name prefixes that classify a whole family. */
const PREFIXES: readonly (readonly [string, FunctionInfo])[] = [
  ['dblink', { effect: 'opaque', why: REMOTE }],
  ['pg_replication_origin_', { effect: 'opaque', why: REPL }],
  ['pg_logical_slot_', { effect: 'opaque', why: REPL }],
  ['pg_stat_reset', { effect: 'opaque', why: STATS }],
  ['pg_file_', { effect: 'opaque', why: FILES }],
  ['pg_ls_', { effect: 'opaque', why: FILES }],
  ['lo_', { effect: 'opaque', why: LO }],
  ['binary_upgrade_', { effect: 'opaque', why: 'binary-upgrade support function' }],
  ['postgres_fdw_', { effect: 'opaque', why: REMOTE }],
];

/**
 * Looks up a function's effect by its (possibly qualified) name; `undefined` for
 * a function with no known side effect.
 *
 * @param name bare or qualified name, any case (`pg_catalog.PG_READ_FILE`).
 */
export function functionEffect(name: string): FunctionInfo | undefined {
  const bare = (name.includes('.') ? name.slice(name.lastIndexOf('.') + 1) : name).toLowerCase();
  const exact = EXACT[bare];
  if (exact) return exact;
  for (const [prefix, info] of PREFIXES) if (bare.startsWith(prefix)) return info;
  return undefined;
}

/** Sequence functions whose first argument names a sequence (`regclass` text). */
export const SEQUENCE_FUNCTIONS: Readonly<Record<string, 'read' | 'write'>> = {
  nextval: 'write',
  setval: 'write',
  currval: 'read',
};

/** Every exactly-listed function name (for documentation and tests). */
export function listedFunctions(): Readonly<Record<string, FunctionInfo>> {
  return EXACT;
}
