/**
 * Policy tests: a user's YAML file of statements with the decision they expect,
 * run against a config (`warden test-policy`).
 *
 * ```yaml
 * cases:
 *   - name: analysts cannot drop            # optional
 *     identity: alice                       # an identity of the config
 *     database: app                         # optional when the config has one database
 *     sql: DROP TABLE billing.invoices
 *     expect: deny                          # allow | deny | mask | approve
 *     rule: no-destructive-ddl              # optional: the decisive rule
 *     intent: { ticket: OPS-1 }             # optional
 *     client: 10.0.0.5                      # optional client address
 *     time: 2025-01-06T10:00:00Z            # optional moment (default: now)
 *     search_path: [public, billing]        # optional (default: "$user", public)
 * ```
 *
 * Pure apart from loading the SQL parser: the caller reads the file and passes its text.
 *
 * @module
 */
import { parse as parseYaml } from 'yaml';
import type { RuleAction, WardenConfig } from '../config/types.js';
import { analyzeSql, initSqlParser } from '../sql/analyze.js';
import { policyFromConfig, type CompiledPolicy } from './compile.js';
import { decide } from './decide.js';
import { PolicyError } from './patterns.js';

/** One case of a policy test file. */
export interface PolicyTestCase {
  readonly name?: string;
  readonly identity: string;
  readonly database?: string;
  readonly sql: string;
  readonly expect: RuleAction;
  readonly rule?: string;
  readonly intent?: Readonly<Record<string, string>>;
  readonly client?: string;
  readonly time?: string;
  readonly searchPath?: readonly string[];
}

/** The outcome of one case. */
export interface PolicyTestResult {
  readonly name: string;
  readonly index: number;
  readonly passed: boolean;
  readonly expected: RuleAction;
  readonly actual?: RuleAction;
  readonly expectedRule?: string;
  readonly decisive?: string;
  readonly reason?: string;
  /** Set when the case could not be run (unknown identity or database, ...). */
  readonly error?: string;
}

/** The outcome of a test file. */
export interface PolicyTestReport {
  readonly passed: number;
  readonly failed: number;
  readonly results: readonly PolicyTestResult[];
}

const ACTIONS: readonly RuleAction[] = ['allow', 'deny', 'mask', 'approve'];

/** Parses and validates a policy test file. Throws PolicyError naming the case. */
export function parsePolicyTests(text: string): PolicyTestCase[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new PolicyError(`policy test file: ${(e as Error).message}`);
  }
  const cases = (doc as { cases?: unknown } | null)?.cases;
  if (!Array.isArray(cases)) throw new PolicyError('policy test file: expected a top-level `cases:` list');
  return cases.map((c, i): PolicyTestCase => {
    const where = `policy test case ${i + 1}`;
    if (typeof c !== 'object' || c === null) throw new PolicyError(`${where}: expected a map`);
    const o = c as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!['name', 'identity', 'database', 'sql', 'expect', 'rule', 'intent', 'client', 'time', 'search_path'].includes(k)) {
        throw new PolicyError(`${where}: unknown key ${JSON.stringify(k)}`);
      }
    }
    if (typeof o['identity'] !== 'string') throw new PolicyError(`${where}: identity (a name) is required`);
    if (typeof o['sql'] !== 'string') throw new PolicyError(`${where}: sql is required`);
    if (!ACTIONS.includes(o['expect'] as RuleAction)) throw new PolicyError(`${where}: expect must be one of ${ACTIONS.join(', ')}`);
    let intent: Record<string, string> | undefined;
    if (o['intent'] !== undefined) {
      if (typeof o['intent'] !== 'object' || o['intent'] === null) throw new PolicyError(`${where}: intent must be a map`);
      intent = Object.fromEntries(Object.entries(o['intent'] as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
    }
    let searchPath: string[] | undefined;
    if (o['search_path'] !== undefined) {
      if (!Array.isArray(o['search_path'])) throw new PolicyError(`${where}: search_path must be a list`);
      searchPath = (o['search_path'] as unknown[]).map(String);
    }
    const time = o['time'] instanceof Date ? o['time'].toISOString() : o['time'];
    if (time !== undefined && (typeof time !== 'string' || Number.isNaN(Date.parse(time)))) throw new PolicyError(`${where}: time must be an ISO date-time`);
    return {
      ...(typeof o['name'] === 'string' ? { name: o['name'] } : {}),
      identity: o['identity'],
      ...(typeof o['database'] === 'string' ? { database: o['database'] } : {}),
      sql: o['sql'],
      expect: o['expect'] as RuleAction,
      ...(typeof o['rule'] === 'string' ? { rule: o['rule'] } : {}),
      ...(intent ? { intent } : {}),
      ...(typeof o['client'] === 'string' ? { client: o['client'] } : {}),
      ...(typeof time === 'string' ? { time } : {}),
      ...(searchPath ? { searchPath } : {}),
    };
  });
}

/** The parts of a config policy tests need. */
export type PolicyTestConfig = Pick<WardenConfig, 'rules' | 'default' | 'identities' | 'databases' | 'sensitive'>;

/**
 * Runs a policy test file against a config.
 *
 * @param text the test file's YAML text
 * @param config the (loaded) config
 * @param options `now` for cases without `time`; `policy` to reuse a compiled policy
 * @throws PolicyError when the file or the config's rules are invalid
 */
export async function runPolicyTests(
  text: string,
  config: PolicyTestConfig,
  options: { now?: Date; policy?: CompiledPolicy } = {},
): Promise<PolicyTestReport> {
  await initSqlParser();
  const cases = parsePolicyTests(text);
  const policy = options.policy ?? policyFromConfig(config);
  const dbNames = Object.keys(config.databases);
  const results: PolicyTestResult[] = cases.map((c, i) => {
    const name = c.name ?? `${c.identity}: ${c.sql.replace(/\s+/g, ' ').trim().slice(0, 60)}`;
    const base = { name, index: i, expected: c.expect, ...(c.rule !== undefined ? { expectedRule: c.rule } : {}) };
    const identity = config.identities.find((x) => x.name === c.identity);
    if (!identity) return { ...base, passed: false, error: `unknown identity ${JSON.stringify(c.identity)}` };
    const dbName = c.database ?? (dbNames.length === 1 ? dbNames[0] : undefined);
    if (dbName === undefined) return { ...base, passed: false, error: 'database is required: the config has several' };
    const db = config.databases[dbName];
    if (!db) return { ...base, passed: false, error: `unknown database ${JSON.stringify(dbName)}` };
    const analysis = analyzeSql(c.sql, { searchPath: c.searchPath ?? ['$user', 'public'] });
    const decision = decide(
      {
        identity: { name: identity.name, kind: identity.kind, groups: identity.groups },
        session: {
          database: db.name ?? dbName,
          ...(db.environment !== undefined ? { environment: db.environment } : {}),
          ...(c.client !== undefined ? { clientAddress: c.client } : {}),
          intent: c.intent ?? {},
          now: c.time !== undefined ? new Date(c.time) : (options.now ?? new Date()),
        },
        analysis,
      },
      policy,
    );
    const passed = decision.action === c.expect && (c.rule === undefined || decision.decisive === c.rule);
    return { ...base, passed, actual: decision.action, decisive: decision.decisive, reason: decision.reason };
  });
  const passed = results.filter((r) => r.passed).length;
  return { passed, failed: results.length - passed, results };
}

/** A text report: one line per case, failures explained. */
export function formatPolicyTestReport(report: PolicyTestReport): string {
  const lines = report.results.map((r) => {
    if (r.passed) return `ok    ${r.name} → ${r.actual}`;
    if (r.error) return `ERROR ${r.name}: ${r.error}`;
    const ruleNote = r.expectedRule !== undefined && r.decisive !== r.expectedRule ? `, rule ${r.decisive} (expected ${r.expectedRule})` : '';
    return `FAIL  ${r.name}: expected ${r.expected}, got ${r.actual}${ruleNote} — ${r.reason}`;
  });
  lines.push(`${report.passed} passed, ${report.failed} failed`);
  return lines.join('\n');
}
