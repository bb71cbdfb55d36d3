/**
 * The policy engine: public entry points. See docs/policy.md.
 *
 * @module
 */
export { compilePolicy, policyFromConfig, compileMatch, type CompiledPolicy, type CompiledRule, type CompiledMatch, type EvalContext, type MatchResult } from './compile.js';
export { decide, sessionSafetyViolations, stricter, STRICTNESS, type SafetyViolation } from './decide.js';
export { formatExplain, explainToJSON, decisionToJSON, type ExplainJSON } from './explain.js';
export {
  runPolicyTests,
  parsePolicyTests,
  formatPolicyTestReport,
  type PolicyTestCase,
  type PolicyTestResult,
  type PolicyTestReport,
  type PolicyTestConfig,
} from './policy-test.js';
export { sensitiveTypesOf, sensitiveHits, compileSensitive, type CompiledSensitive, type SensitiveHit } from './sensitive.js';
export { PolicyError, relationPattern, columnPattern, matchRelation, YES, MAYBE, NO, type Tri, type RelationPattern } from './patterns.js';
export * from './types.js';
