/**
 * Caches of statement analyses.
 *
 * - {@link AnalysisCache}: a bounded LRU shared by all sessions, keyed by the
 *   query text and the analysis context (search_path, user), so a repeated
 *   statement is parsed and analysed once. Analyses that depend on a session's
 *   prepared statements (EXECUTE) are not cached: the same text means different
 *   things in different sessions.
 * - {@link PreparedStatements}: one session's prepared statements by name (SQL
 *   PREPARE and the protocol's Parse share one namespace), bounded. An evicted
 *   or unknown name makes EXECUTE opaque (fail-closed).
 *
 * Cached analyses are shared: never mutate them.
 *
 * @module
 */
import { analyzeSql, preparedStatementsAfter } from './analyze.js';
import type { Analysis, AnalyzeContext } from './types.js';

/** Counters of a cache. */
export interface CacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly size: number;
  readonly max: number;
  readonly evictions: number;
}

/** Options of {@link AnalysisCache}. */
export interface AnalysisCacheOptions {
  /** Maximum number of cached analyses (default 1000). */
  readonly max?: number;
  /** Texts longer than this many characters are analysed but not cached (default 65536). */
  readonly maxSqlLength?: number;
}

/** Bounded LRU of analyses keyed by (query text, search_path, user). */
export class AnalysisCache {
  private readonly map = new Map<string, Analysis>();
  private readonly max: number;
  private readonly maxSqlLength: number;
  private hitCount = 0;
  private missCount = 0;
  private evictionCount = 0;

  constructor(options: AnalysisCacheOptions = {}) {
    this.max = Math.max(1, options.max ?? 1000);
    this.maxSqlLength = options.maxSqlLength ?? 65536;
  }

  /** Number of lookups answered from the cache. */
  get hits(): number {
    return this.hitCount;
  }

  /** Number of lookups that had to analyse. */
  get misses(): number {
    return this.missCount;
  }

  private static key(sql: string, ctx: AnalyzeContext): string {
    const path = ctx.searchPath === null ? '\u0001unknown' : ctx.searchPath.join('\u0000');
    const def = ctx.defaultSearchPath ? ctx.defaultSearchPath.join('\u0000') : '\u0001';
    return `${path}\u0002${ctx.user ?? ''}\u0002${def}\u0002${sql}`;
  }

  /**
   * The analysis of `sql` in context `ctx`: from the cache, or analysed (and
   * cached unless it used the session's prepared statements or is too long).
   */
  analyze(sql: string, ctx: AnalyzeContext): Analysis {
    const key = AnalysisCache.key(sql, ctx);
    const hit = this.map.get(key);
    if (hit) {
      this.hitCount++;
      this.map.delete(key);
      this.map.set(key, hit);
      return hit;
    }
    this.missCount++;
    const analysis = analyzeSql(sql, ctx);
    if ((!analysis.ok || !analysis.usesPrepared) && sql.length <= this.maxSqlLength) {
      this.map.set(key, analysis);
      while (this.map.size > this.max) {
        const oldest = this.map.keys().next().value as string;
        this.map.delete(oldest);
        this.evictionCount++;
      }
    }
    return analysis;
  }

  /** Current counters. */
  stats(): CacheStats {
    return { hits: this.hitCount, misses: this.missCount, size: this.map.size, max: this.max, evictions: this.evictionCount };
  }

  /** Drops every entry (counters are kept). */
  clear(): void {
    this.map.clear();
  }
}

/**
 * One session's prepared statements (name → analysis), bounded LRU.
 * Pass {@link PreparedStatements.view} as `AnalyzeContext.preparedStatements`.
 */
export class PreparedStatements {
  private map = new Map<string, Analysis>();
  private hitCount = 0;
  private missCount = 0;
  private evictionCount = 0;

  constructor(private readonly max = 10000) {}

  /** The read-only view to pass to analyzeSql. */
  get view(): ReadonlyMap<string, Analysis> {
    return this.map;
  }

  /** Records a protocol-level Parse of `name` (`''` = the unnamed statement). */
  set(name: string, analysis: Analysis): void {
    this.map.delete(name);
    this.map.set(name, analysis);
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
      this.evictionCount++;
    }
  }

  /** The analysis of a prepared statement (Bind/Execute or Describe), counting hits and misses. */
  get(name: string): Analysis | undefined {
    const a = this.map.get(name);
    if (a) {
      this.hitCount++;
      this.map.delete(name);
      this.map.set(name, a);
    } else this.missCount++;
    return a;
  }

  /** Protocol Close of a statement. */
  delete(name: string): void {
    this.map.delete(name);
  }

  /** Applies the PREPARE / DEALLOCATE / DISCARD ALL of an executed query string (see preparedStatementsAfter). */
  applyQuery(analysis: Analysis, succeeded: boolean): void {
    this.map = preparedStatementsAfter(this.map, analysis, succeeded);
  }

  /** Lookup counters (hits/misses of {@link PreparedStatements.get}) and size. */
  stats(): CacheStats {
    return { hits: this.hitCount, misses: this.missCount, size: this.map.size, max: this.max, evictions: this.evictionCount };
  }
}
