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
import { TwoGenerationCache } from './lru.js';
import { isLiteralIndependent, literalShape } from './literal-shape.js';

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

/**
 * Bounded cache of analyses keyed by (query text, search_path, user), plus a
 * second level keyed by the text's literal shape (see literal-shape.ts) for
 * statements whose analysis does not depend on literal values, so that
 * `WHERE id = 1` and `WHERE id = 2` are parsed once.
 *
 * An analysis found by shape carries the `sql` of the text it was made from:
 * use the statement's own text for anything shown or recorded.
 */
export class AnalysisCache {
  private readonly byText: TwoGenerationCache<string, Analysis>;
  private readonly byShape: TwoGenerationCache<string, Analysis>;
  private readonly contextKeys = new WeakMap<AnalyzeContext, string>();
  private readonly max: number;
  private readonly maxSqlLength: number;
  private hitCount = 0;
  private shapeHitCount = 0;
  private missCount = 0;

  constructor(options: AnalysisCacheOptions = {}) {
    this.max = Math.max(2, options.max ?? 1000);
    this.maxSqlLength = options.maxSqlLength ?? 65536;
    this.byText = new TwoGenerationCache(this.max);
    this.byShape = new TwoGenerationCache(this.max);
  }

  /** Number of lookups answered from the cache (by text or by shape). */
  get hits(): number {
    return this.hitCount + this.shapeHitCount;
  }

  /** Number of lookups that had to analyse. */
  get misses(): number {
    return this.missCount;
  }

  /** The context part of the key; memoized per context object (sessions reuse theirs). */
  private contextKey(ctx: AnalyzeContext): string {
    let k = this.contextKeys.get(ctx);
    if (k === undefined) {
      const path = ctx.searchPath === null ? '\u0001unknown' : ctx.searchPath.join('\u0000');
      const def = ctx.defaultSearchPath ? ctx.defaultSearchPath.join('\u0000') : '\u0001';
      k = `${path}\u0002${ctx.user ?? ''}\u0002${def}\u0002`;
      this.contextKeys.set(ctx, k);
    }
    return k;
  }

  /**
   * The analysis of `sql` in context `ctx`: from the cache, or analysed (and
   * cached unless it used the session's prepared statements or is too long).
   */
  analyze(sql: string, ctx: AnalyzeContext): Analysis {
    const ck = this.contextKey(ctx);
    const textKey = ck + sql;
    const hit = this.byText.get(textKey);
    if (hit) {
      this.hitCount++;
      return hit;
    }
    const shape = literalShape(sql);
    const shapeKey = shape === null ? null : ck + shape;
    if (shapeKey !== null) {
      const byShape = this.byShape.get(shapeKey);
      if (byShape) {
        this.shapeHitCount++;
        return byShape;
      }
    }
    this.missCount++;
    const analysis = analyzeSql(sql, ctx);
    if (sql.length > this.maxSqlLength || (analysis.ok && analysis.usesPrepared)) return analysis;
    if (shapeKey !== null && isLiteralIndependent(analysis)) this.byShape.set(shapeKey, analysis);
    else this.byText.set(textKey, analysis);
    return analysis;
  }

  /** Current counters. */
  stats(): CacheStats & { readonly shapeHits: number } {
    return {
      hits: this.hits,
      shapeHits: this.shapeHitCount,
      misses: this.missCount,
      size: this.byText.size + this.byShape.size,
      max: this.max * 2,
      evictions: this.byText.evictions + this.byShape.evictions,
    };
  }

  /** Drops every entry (counters are kept). */
  clear(): void {
    this.byText.clear();
    this.byShape.clear();
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
