/**
 * Statement analysis: public entry points. See src/sql/analyze.ts and docs/policy.md.
 *
 * @module
 */
export { analyzeSql, analysisOfStatement, preparedStatementsAfter, initSqlParser, isSqlParserReady } from './analyze.js';
export { AnalysisCache, PreparedStatements, type CacheStats, type AnalysisCacheOptions } from './cache.js';
export { fingerprintSql, normalizeSql } from './normalize.js';
export { analysisToJSON, statementToJSON, classList, type AnalysisJSON, type StatementAnalysisJSON } from './json.js';
export { functionEffect, listedFunctions, type FunctionEffect, type FunctionInfo } from './functions.js';
export { parseSearchPath, quoteIdent, relationName, DEFAULT_SEARCH_PATH } from './search-path.js';
export * from './types.js';
