/** Every limit that halted, throttled or suspended an identity (`limit.exceeded`, docs/limits.md). */
import type { AuditRecord } from '../audit/chain.js';
import { controlsOf } from './controls.js';
import { num, oneLine, ref, str, type Data } from './facts.js';
import { bump, countsOf, type Count } from './refusals.js';
import { CappedList, type Aggregator, type Listing, type SectionBase } from './types.js';

export interface LimitEvent {
  ts: string;
  record: string;
  identity: string;
  kind: string;
  database: string;
  limit: string;
  measure: string;
  figure: number | null;
  max: number | null;
  onExceed: string;
  /** throttled (statements_per_minute: refused before it ran), halted (54000), halted+suspended. */
  outcome: 'throttled' | 'halted' | 'held' | 'halted+suspended';
  sql: string;
}

export interface LimitsSection extends SectionBase {
  id: 'limits';
  total: number;
  halted: number;
  throttled: number;
  suspended: number;
  held: number;
  byLimit: Count[];
  byIdentity: Count[];
  events: Listing<LimitEvent>;
}

export function outcomeOf(measure: string, onExceed: string): LimitEvent['outcome'] {
  if (onExceed === 'suspend') return 'halted+suspended';
  if (onExceed === 'approve') return 'held';
  return measure === 'statements_per_minute' ? 'throttled' : 'halted';
}

export function limits(o: { cap: number }): Aggregator<LimitsSection> {
  const list = new CappedList<LimitEvent>(o.cap);
  const byLimit = new Map<string, number>();
  const byIdentity = new Map<string, number>();
  const outcomes = new Map<string, number>();
  return {
    record(r: AuditRecord) {
      if (r.type !== 'limit.exceeded') return;
      const d = r.data as Data;
      const measure = str(d.measure) ?? '';
      const onExceed = str(d.on_exceed) ?? 'halt';
      const outcome = outcomeOf(measure, onExceed);
      const limit = str(d.limit) ?? '';
      bump(byLimit, `${limit} (${measure})`);
      bump(byIdentity, str(d.identity) ?? '');
      bump(outcomes, outcome);
      list.push({
        ts: r.ts,
        record: ref(r),
        identity: str(d.identity) ?? '',
        kind: str(d.kind) ?? '',
        database: str(d.database) ?? '',
        limit,
        measure,
        figure: num(d.figure) ?? null,
        max: num(d.max) ?? null,
        onExceed,
        outcome,
        sql: oneLine(typeof d.sql === 'string' ? d.sql : '', 1000),
      });
    },
    finish() {
      return {
        id: 'limits',
        title: 'Limits that halted, throttled or suspended',
        description: 'Every time a limit of limits: was crossed: the statement halted (54000), throttled (53400), held for approval, or halted and its identity suspended.',
        controls: controlsOf('limits'),
        total: list.total,
        halted: outcomes.get('halted') ?? 0,
        throttled: outcomes.get('throttled') ?? 0,
        suspended: outcomes.get('halted+suspended') ?? 0,
        held: outcomes.get('held') ?? 0,
        byLimit: countsOf(byLimit),
        byIdentity: countsOf(byIdentity),
        events: list.toJSON(),
      };
    },
  };
}
