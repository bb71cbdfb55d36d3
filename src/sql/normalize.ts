/**
 * Statement fingerprints and normalized text (constants replaced by `$n`), for
 * grouping statements in audit and matching approvals: two statements that
 * differ only in constants share a fingerprint.
 *
 * @module
 */
import { fingerprintSync, normalizeSync } from 'libpg-query';
import { isSqlParserReady } from './parser.js';

/** libpg-query's fingerprint (hex) of a query string, or `null` when it cannot be parsed. */
export function fingerprintSql(sql: string): string | null {
  if (!isSqlParserReady()) throw new Error('SQL parser not loaded: await initSqlParser() first');
  try {
    return fingerprintSync(sql);
  } catch {
    return null;
  }
}

/** The query text with constants replaced by `$1`, `$2`, ...; `null` when it cannot be parsed. */
export function normalizeSql(sql: string): string | null {
  if (!isSqlParserReady()) throw new Error('SQL parser not loaded: await initSqlParser() first');
  try {
    return normalizeSync(sql);
  } catch {
    return null;
  }
}
