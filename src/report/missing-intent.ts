/**
 * Statements without intent where a rule asked for it: statements a rule whose
 * `match` tests `intent` applied to (as the record's `decision.matched` says),
 * that named neither a ticket nor a reason. Refused ones (a `deny` rule on
 * `intent: false`) show the rule was enforced; ones that ran show where a rule
 * only flagged, held or masked them.
 */
import type { RuleConfig, RuleMatch } from '../config/types.js';
import { controlsOf } from './controls.js';
import { hasIntent, oneLine, ref, type StatementFacts } from './facts.js';
import { bump, countsOf, type Count } from './refusals.js';
import { CappedList, type Aggregator, type Listing, type SectionBase } from './types.js';

export interface MissingIntent {
  ts: string;
  record: string;
  identity: string;
  kind: string;
  database: string;
  rule: string;
  ruleAction: string;
  outcome: 'refused' | 'ran';
  intent: Record<string, string>;
  sql: string;
}

export interface MissingIntentSection extends SectionBase {
  id: 'missing-intent';
  /** The rules (of the report's configuration) whose match tests intent. */
  rules: string[];
  total: number;
  refused: number;
  ran: number;
  byRule: Count[];
  statements: Listing<MissingIntent>;
}

function mentionsIntent(m: RuleMatch | undefined): boolean {
  if (!m) return false;
  if (m.intent !== undefined) return true;
  if (mentionsIntent(m.not)) return true;
  return (m.any ?? []).some(mentionsIntent);
}

/** Names of the rules whose match (or a nested `not`/`any`) tests intent. */
export function intentRules(rules: readonly RuleConfig[]): Set<string> {
  return new Set(rules.filter((r) => mentionsIntent(r.match)).map((r) => r.name));
}

export function missingIntent(o: { rules: readonly RuleConfig[]; cap: number }): Aggregator<MissingIntentSection> {
  const names = intentRules(o.rules);
  const list = new CappedList<MissingIntent>(o.cap);
  const byRule = new Map<string, number>();
  let refused = 0;
  return {
    statement(f: StatementFacts) {
      if (names.size === 0 || hasIntent(f.intent)) return;
      const m = f.matched.find((x) => names.has(x.rule));
      if (!m) return;
      const outcome = f.type === 'statement.refused' ? 'refused' : 'ran';
      if (outcome === 'refused') refused++;
      bump(byRule, m.rule);
      list.push({ ts: f.ts, record: ref(f), identity: f.identity, kind: f.kind, database: f.database, rule: m.rule, ruleAction: m.action, outcome, intent: f.intent, sql: oneLine(f.sql, 1000) });
    },
    finish() {
      return {
        id: 'missing-intent',
        title: 'Statements without intent where a rule asked for it',
        description:
          'Statements matched by a rule that tests intent (match.intent), which named neither a ticket nor a reason (warden.ticket / warden.reason or a sqlcommenter comment).',
        controls: controlsOf('missingIntent'),
        rules: [...names].sort(),
        total: list.total,
        refused,
        ran: list.total - refused,
        byRule: countsOf(byRule),
        statements: list.toJSON(),
      };
    },
  };
}
