/**
 * Builds the compliance report for a period from an audit store, in one
 * streaming pass per chain: each record of the verified stretch (integrity.ts)
 * is hashed and linked, and those of the period are handed to the section
 * aggregators. Memory holds the aggregates, the listings (capped), the
 * statements waiting for their completion and the sessions seen — never the
 * records themselves.
 */
import type { KeyObject } from 'node:crypto';
import type { AuditRecord, Checkpoint } from '../audit/chain.js';
import { keyIdOf } from '../audit/chain.js';
import type { AuditStore } from '../audit/store.js';
import type { IdentityConfig, RuleConfig } from '../config/types.js';
import { agents, type AgentsSection } from './agents.js';
import { approvals, type ApprovalsSection } from './approvals.js';
import { CONTROLS, DISCLAIMER } from './controls.js';
import { endFacts, isStatement, statementFacts, str, strings, type Data, type StatementFacts } from './facts.js';
import { checkpointRef, planInstance, verdictOf, type InstanceIntegrity, type InstancePlan, type IntegritySection, type WitnessNote } from './integrity.js';
import { limits, type LimitsSection } from './limits.js';
import { missingIntent, type MissingIntentSection } from './missing-intent.js';
import { operations, type OperationsSection } from './operations.js';
import { privileged, type PrivilegedSection } from './privileged.js';
import { refusals, type RefusalsSection } from './refusals.js';
import { schemaChanges, type SchemaChangesSection } from './schema-changes.js';
import { sensitiveReads, type SensitiveReadsSection } from './sensitive-reads.js';
import type { Aggregator, ReportContext } from './types.js';
import { indexedThrough, readStretch } from './read-stretch.js';
import { Worker } from 'node:worker_threads';
import type { VerifyReport } from '../audit/chain.js';
import { workerScript } from '../util/worker-script.js';
import type { VerifyJob } from './verify-worker.js';
import { stretchVerifier } from './verify-stretch.js';

export const REPORT_FORMAT = 'warden-report/1';
export const DEFAULT_CAP = 5000;
const MAX_PROBLEMS = 100;

/** What of the configuration a report uses. */
export interface ReportConfigView {
  rules?: readonly RuleConfig[];
  identities?: readonly IdentityConfig[];
  sensitive?: { columns: Readonly<Record<string, string>> };
  report?: { privilegedGroups: readonly string[] };
}

export interface ReportOptions {
  /** ISO-8601 (normalized): records with from <= ts < to. */
  from: string;
  to: string;
  database?: string;
  config: ReportConfigView;
  /** Checkpoints from elsewhere (witnesses, an exported file) besides the stored ones. */
  checkpoints?: readonly Checkpoint[];
  witnesses?: readonly WitnessNote[];
  publicKey?: KeyObject;
  /** Largest listing kept per section (totals are always exact). */
  cap?: number;
  onProgress?(p: { instance: string; done: number; total: number }): void;
  now?: () => Date;
}

export interface ReportTotals {
  records: number;
  statements: number;
  refused: number;
  sessions: number;
  identities: number;
  byType: { key: string; count: number }[];
}

export interface Report {
  format: typeof REPORT_FORMAT;
  generatedAt: string;
  period: { from: string; to: string; database: string | null };
  store: string;
  disclaimer: string;
  /** First: whether the log can be relied on for this period. */
  integrity: IntegritySection;
  totals: ReportTotals;
  sections: {
    sensitiveReads: SensitiveReadsSection;
    refusals: RefusalsSection;
    approvals: ApprovalsSection;
    limits: LimitsSection;
    schemaChanges: SchemaChangesSection;
    agents: AgentsSection;
    missingIntent: MissingIntentSection;
    privileged: PrivilegedSection;
    operations: OperationsSection;
  };
}

/** `begin_seq` in a completion's canonical data text (members in key order: it comes first or after `affected`). */
const BEGIN_SEQ = /"begin_seq":(\d+)/;

const DDL_CLASSES = new Set(['ddl', 'drop', 'create', 'alter', 'comment', 'grant', 'revoke']);

/** The worker's verification of the stretch; undefined when the worker could not run (then it is done inline). */
function verifyInWorker(file: string, instance: string, plan: InstancePlan, key: KeyObject | undefined): Promise<VerifyReport | undefined> {
  let script: string;
  try {
    script = workerScript(import.meta.url, 'verify-worker.js', 'report', 'report: verify worker script');
  } catch {
    return Promise.resolve(undefined);
  }
  const job: VerifyJob = {
    file,
    instance,
    fromSeq: plan.startAfter.seq + 1,
    throughSeq: plan.throughSeq,
    startAfter: plan.startAfter,
    checkpoints: plan.checkpoints,
    ...(key ? { publicKey: key.export({ type: 'spki', format: 'pem' }).toString() } : {}),
  };
  return new Promise((resolve) => {
    const w = new Worker(script, { workerData: job });
    let done = false;
    const finish = (r: VerifyReport | undefined): void => {
      if (done) return;
      done = true;
      resolve(r);
      void w.terminate().catch(() => undefined);
    };
    w.on('message', (m: { ok: boolean; report?: VerifyReport }) => finish(m.ok ? m.report : undefined));
    w.on('error', () => finish(undefined));
    w.on('exit', () => finish(undefined));
  });
}

/** The stretch verified on this thread (when the worker could not). */
async function verifyInline(store: AuditStore, instance: string, plan: InstancePlan, key: KeyObject | undefined): Promise<VerifyReport> {
  const v = stretchVerifier({ instance, checkpoints: plan.checkpoints, publicKey: key, startAfter: plan.startAfter });
  for await (const batch of readStretch(store, instance, plan.startAfter.seq + 1, plan.throughSeq)) for (const x of batch) v.push(x.record, x.dataText, x.decode);
  return v.finish();
}

export async function buildReport(store: AuditStore, o: ReportOptions): Promise<Report> {
  const cap = o.cap ?? DEFAULT_CAP;
  const now = o.now ?? (() => new Date());
  const db = o.database;
  const configGroups = new Map((o.config.identities ?? []).map((i) => [i.name, i.groups]));
  const seenGroups = new Map<string, string[]>();
  const sessionDb = new Map<string, string>();
  const ddl = new Map<string, StatementFacts>();
  const ctx: ReportContext = {
    groupsOf: (identity) => seenGroups.get(identity) ?? configGroups.get(identity) ?? [],
    statementAt: (instance, seq) => ddl.get(`${instance}#${seq}`),
    databaseOfSession: (session) => sessionDb.get(session),
    cap,
  };
  const s = {
    sensitiveReads: sensitiveReads({ map: o.config.sensitive?.columns }),
    refusals: refusals({ cap }),
    approvals: approvals({ ctx, database: db, cap }),
    limits: limits({ cap }),
    schemaChanges: schemaChanges({ ctx, cap }),
    agents: agents(),
    missingIntent: missingIntent({ rules: o.config.rules ?? [], cap }),
    privileged: privileged({ groups: o.config.report?.privilegedGroups ?? [], ctx, cap }),
    operations: operations({ cap }),
  };
  const all: Aggregator<unknown>[] = Object.values(s);
  const keepers = all.filter((a) => a.keep);
  const enders = all.filter((a) => a.end);

  const byType = new Map<string, number>();
  const identities = new Set<string>();
  let records = 0;
  let statements = 0;
  let refused = 0;
  let sessions = 0;

  const instances = await store.instances();
  const extra = o.checkpoints ?? [];
  const stored = await store.checkpoints();
  const checkpoints = [...stored, ...extra];
  const results: InstanceIntegrity[] = [];
  const plans = [];
  for (const instance of instances) {
    const plan = await planInstance(store, instance, o, checkpoints, o.publicKey);
    if (plan) plans.push(plan);
  }
  const total = plans.reduce((n, p) => n + Math.max(0, p.throughSeq - p.startAfter.seq), 0);
  let done = 0;
  for (const plan of plans) {
    const { instance } = plan;
    // A stretch a SQLite index holds whole is verified by a worker thread while this one gathers the figures.
    const ix = await indexedThrough(store, instance);
    const inWorker = ix !== null && ix.seq >= plan.throughSeq && plan.throughSeq > plan.startAfter.seq ? verifyInWorker(ix.file, instance, plan, o.publicKey) : undefined;
    const v = inWorker ? undefined : stretchVerifier({ instance, checkpoints: plan.checkpoints, publicKey: o.publicKey, startAfter: plan.startAfter });
    const waiting = new Map<number, StatementFacts>();
    let periodRecords = 0;
    let verified = 0;
    o.onProgress?.({ instance, done, total });
    for await (const batch of readStretch(store, instance, plan.startAfter.seq + 1, plan.throughSeq)) {
      for (const { record: r, dataText, decode } of batch) {
        v?.push(r, dataText, decode);
        verified++;
        if (++done % 20_000 === 0) o.onProgress?.({ instance, done, total });
        if (typeof r.ts !== 'string' || r.ts < o.from || r.ts >= o.to) continue;
        // The most frequent record: a completion matters only to a statement kept for it (its data is then read).
        if (r.type === 'statement.end' && dataText !== undefined && db === undefined) {
          records++;
          periodRecords++;
          byType.set(r.type, (byType.get(r.type) ?? 0) + 1);
          const m = BEGIN_SEQ.exec(dataText);
          if (m && waiting.has(Number(m[1]))) {
            decode();
            const e = endFacts(r);
            const f = e ? waiting.get(e.beginSeq) : undefined;
            if (e && f) {
              waiting.delete(e.beginSeq);
              for (const a of enders) a.end!(f, e);
            }
          }
          continue;
        }
        decode();
        if (r.data === null || typeof r.data !== 'object') continue;
        const d = r.data as Data;
        const database = str(d.database);
        const session = str(d.session);
        if (session && database) sessionDb.set(session, database);
        if (r.type === 'session.start') {
          const identity = str(d.identity);
          if (identity && Array.isArray(d.groups)) seenGroups.set(identity, strings(d.groups));
        }
        if (db !== undefined) {
          // Records of another database are left out; so are completions of statements left out.
          if (database !== undefined && database !== db) continue;
          if (database === undefined && session !== undefined && sessionDb.has(session) && sessionDb.get(session) !== db) continue;
        }
        periodRecords++;
        records++;
        byType.set(r.type, (byType.get(r.type) ?? 0) + 1);
        if (isStatement(r)) {
          const f = statementFacts(r);
          statements++;
          if (f.type === 'statement.refused') refused++;
          if (f.identity) identities.add(f.identity);
          if (f.type === 'statement.begin' && f.classes.some((c) => DDL_CLASSES.has(c))) ddl.set(`${instance}#${r.seq}`, f);
          for (const a of all) a.statement?.(f);
          if (f.type === 'statement.begin' && keepers.some((a) => a.keep!(f))) waiting.set(r.seq, f);
        } else if (r.type === 'statement.end') {
          const e = endFacts(r);
          const f = e ? waiting.get(e.beginSeq) : undefined;
          if (e && f) {
            waiting.delete(e.beginSeq);
            for (const a of enders) a.end!(f, e);
          }
        } else {
          if (r.type === 'session.start') sessions++;
          for (const a of all) a.record?.(r);
        }
      }
    }
    // Statements whose completion was not read (a crash, or it completed after the stretch).
    for (const f of waiting.values()) for (const a of enders) a.end!(f, undefined);
    let report = v?.finish();
    if (!report) {
      const w = await inWorker!;
      report = w ?? (await verifyInline(store, instance, plan, o.publicKey));
    }
    const lastSigned = plan.checkpoints.filter((c) => c.seq <= plan.head.seq).reduce((m, c) => Math.max(m, c.seq), plan.startAfter.seq);
    const unpinned = plan.periodLastSeq !== null && plan.periodLastSeq > lastSigned ? plan.periodLastSeq - Math.max(lastSigned, (plan.periodFirstSeq ?? 1) - 1) : 0;
    results.push({
      instance,
      ok: report.ok,
      periodFirstSeq: plan.periodFirstSeq,
      periodLastSeq: plan.periodLastSeq,
      periodRecords,
      verifiedFromSeq: plan.startAfter.seq + 1,
      verifiedThroughSeq: plan.throughSeq,
      verifiedRecords: report.records,
      anchor: checkpointRef(plan.anchor, o.publicKey),
      cover: checkpointRef(plan.cover, o.publicKey),
      checkpointsWithin: plan.checkpoints.filter((c) => c !== plan.anchor && c !== plan.cover).length,
      checkpoints: (plan.checkpoints.length <= 500 ? plan.checkpoints : [...plan.checkpoints.slice(0, 250), ...plan.checkpoints.slice(-250)]).map((c) => checkpointRef(c, o.publicKey)!),
      unpinnedRecords: unpinned,
      problems: report.problems.slice(0, MAX_PROBLEMS),
      moreProblems: Math.max(0, report.problems.length - MAX_PROBLEMS),
    });
  }
  // Checkpoints of chains the store has no record of: deleted whole (or another store's).
  const known = new Set(instances);
  for (const name of new Set(extra.map((c) => c.instance))) {
    if (known.has(name)) continue;
    const cps = extra.filter((c) => c.instance === name && c.ts >= o.from);
    if (cps.length === 0) continue;
    const lastCp = cps.reduce((a, b) => (b.seq > a.seq ? b : a));
    results.push({
      instance: name,
      ok: false,
      periodFirstSeq: null,
      periodLastSeq: null,
      periodRecords: 0,
      verifiedFromSeq: 1,
      verifiedThroughSeq: 0,
      verifiedRecords: 0,
      anchor: null,
      cover: checkpointRef(lastCp, o.publicKey),
      checkpointsWithin: cps.length - 1,
      checkpoints: cps.slice(0, 500).map((c) => checkpointRef(c, o.publicKey)!),
      unpinnedRecords: 0,
      problems: [{ seq: lastCp.seq, index: 0, kind: 'truncated', message: `checkpoint at seq ${lastCp.seq} (signed ${lastCp.ts}) names instance ${JSON.stringify(name)}, which has no records in the store: its chain was deleted` }],
      moreProblems: 0,
    });
  }
  const witnesses = [...(o.witnesses ?? [])];
  const ok = results.every((r) => r.ok) && witnesses.every((w) => w.error === undefined);
  const signaturesChecked = o.publicKey !== undefined;
  const integrity: IntegritySection = {
    id: 'integrity',
    title: 'Integrity of the audit log',
    ok,
    verdict: verdictOf(ok, results, witnesses, signaturesChecked),
    signaturesChecked,
    keyId: o.publicKey ? keyIdOf(o.publicKey) : null,
    witnesses,
    instances: results,
    controls: [...CONTROLS.integrity],
  };
  o.onProgress?.({ instance: '', done: total, total });
  return {
    format: REPORT_FORMAT,
    generatedAt: now().toISOString(),
    period: { from: o.from, to: o.to, database: db ?? null },
    store: store.description,
    disclaimer: DISCLAIMER,
    integrity,
    totals: {
      records,
      statements,
      refused,
      sessions,
      identities: identities.size,
      byType: [...byType.entries()].map(([key, count]) => ({ key, count })).sort((a, b) => b.count - a.count),
    },
    sections: {
      sensitiveReads: s.sensitiveReads.finish(),
      refusals: s.refusals.finish(),
      approvals: s.approvals.finish(),
      limits: s.limits.finish(),
      schemaChanges: s.schemaChanges.finish(),
      agents: s.agents.finish(),
      missingIntent: s.missingIntent.finish(),
      privileged: s.privileged.finish(),
      operations: s.operations.finish(),
    },
  };
}
