/**
 * The compliance report's data (`warden report`, `GET /api/v1/report`): what
 * the JSON holds, and what the HTML and CSV renderings show. See docs/reports.md.
 */
import type { AuditRecord } from '../audit/chain.js';
import type { EndFacts, StatementFacts } from './facts.js';

/** A control a section gives evidence for (never a claim that the control is met). */
export interface ControlRef {
  framework: 'SOC 2' | 'ISO/IEC 27001:2022' | 'HIPAA' | 'PCI DSS v4.0';
  id: string;
  /** What this section shows toward it, in a few words. */
  evidence: string;
}

/** A list kept up to a cap: `total` is always exact, `items` the first `items.length` of them. */
export interface Listing<T> {
  total: number;
  items: T[];
  /** True when items were left out (see `total`); the audit export has them all. */
  truncated: boolean;
}

export class CappedList<T> {
  #items: T[] = [];
  #total = 0;
  constructor(readonly cap: number) {}
  push(item: T): void {
    this.#total++;
    if (this.#items.length < this.cap) this.#items.push(item);
  }
  get total(): number {
    return this.#total;
  }
  toJSON(): Listing<T> {
    return { total: this.#total, items: this.#items, truncated: this.#total > this.#items.length };
  }
}

/** What an aggregation section is fed; each reads what it needs and ignores the rest. */
export interface Aggregator<T> {
  /** A `statement.begin` or `statement.refused` record of the period. */
  statement?(f: StatementFacts): void;
  /** Whether this statement's completion is wanted (then {@link end} is called once for it, with undefined when none was recorded). */
  keep?(f: StatementFacts): boolean;
  /** The completion of a statement of the period that {@link ReportContext.keepForEnd} kept. */
  end?(f: StatementFacts, e: EndFacts | undefined): void;
  /** Any other record of the period. */
  record?(r: AuditRecord): void;
  finish(): T;
}

/** What the sections share while the records stream by. */
export interface ReportContext {
  /** Groups of an identity: as its latest `session.start` in the log recorded them, else as the configuration gives them. */
  groupsOf(identity: string): readonly string[];
  /** The statement.begin record at `seq` of `instance`, when the report has it in hand (a schema change's statement). */
  statementAt(instance: string, seq: number): StatementFacts | undefined;
  /** The database a session (by id) logged into, when its session.start or a statement of it was read. */
  databaseOfSession(session: string): string | undefined;
  /** Largest number of rows a listing keeps (totals are always exact). */
  readonly cap: number;
}

export interface SectionBase {
  id: string;
  title: string;
  /** One sentence: what the section lists and where it comes from. */
  description: string;
  controls: ControlRef[];
}
