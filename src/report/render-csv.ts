/**
 * The report as CSV, one file per section (and one for the controls each
 * section evidences). Every cell is quoted; a cell starting with = + - @ gets a
 * leading ' so a spreadsheet does not run it as a formula (as `audit export`).
 */
import type { Report } from './build.js';

function cell(v: unknown): string {
  if (v === undefined || v === null) return '""';
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number' || typeof v === 'boolean') s = String(v);
  else if (Array.isArray(v)) s = v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join('; ');
  else {
    const e = Object.entries(v as Record<string, unknown>);
    s = e.every(([, x]) => typeof x === 'string') ? e.map(([k, x]) => `${k}=${String(x)}`).join(' ') : JSON.stringify(v);
  }
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return `"${safe.replace(/"/g, '""')}"`;
}

export function csv<T>(rows: readonly T[], cols: readonly [string, (r: T) => unknown][]): string {
  const lines = [cols.map(([h]) => cell(h)).join(',')];
  for (const r of rows) lines.push(cols.map(([, f]) => cell(f(r))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** File name → CSV text. */
export function renderCsv(r: Report): Record<string, string> {
  const S = r.sections;
  const files: Record<string, string> = {};
  files['integrity.csv'] = csv(r.integrity.instances, [
    ['instance', (x) => x.instance],
    ['verified', (x) => (x.ok ? 'yes' : 'NO')],
    ['period_first_seq', (x) => x.periodFirstSeq],
    ['period_last_seq', (x) => x.periodLastSeq],
    ['period_records', (x) => x.periodRecords],
    ['verified_from_seq', (x) => x.verifiedFromSeq],
    ['verified_through_seq', (x) => x.verifiedThroughSeq],
    ['verified_records', (x) => x.verifiedRecords],
    ['anchor_checkpoint_seq', (x) => x.anchor?.seq],
    ['cover_checkpoint_seq', (x) => x.cover?.seq],
    ['cover_signature_valid', (x) => x.cover?.signatureValid],
    ['unpinned_records', (x) => x.unpinnedRecords],
    ['problems', (x) => x.problems.map((p) => `${p.kind} at seq ${p.seq ?? '?'}: ${p.message}`)],
  ]);
  files['checkpoints.csv'] = csv(
    r.integrity.instances.flatMap((i) => i.checkpoints.map((c) => ({ instance: i.instance, ...c }))),
    [
      ['instance', (x) => x.instance],
      ['seq', (x) => x.seq],
      ['signed_at', (x) => x.ts],
      ['key_id', (x) => x.keyId],
      ['signature_valid', (x) => (x.signatureValid === null ? 'not checked' : x.signatureValid ? 'yes' : 'NO')],
    ],
  );
  const controls = [{ id: 'integrity', controls: r.integrity.controls }, ...Object.values(S)].flatMap((s) => s.controls.map((c) => ({ section: s.id, ...c })));
  files['controls.csv'] = csv(controls, [
    ['section', (x) => x.section],
    ['framework', (x) => x.framework],
    ['control', (x) => x.id],
    ['evidence', (x) => x.evidence],
  ]);
  files['sensitive-reads.csv'] = csv(S.sensitiveReads.groups, [
    ['type', (x) => x.type],
    ['identity', (x) => x.identity],
    ['kind', (x) => x.kind],
    ['masked', (x) => (x.masked ? 'yes' : 'no')],
    ['statements', (x) => x.statements],
    ['rows', (x) => x.rows],
    ['statements_without_completion', (x) => x.noCompletion],
    ['access', (x) => x.access],
    ['tables', (x) => x.tables],
    ['columns', (x) => x.columns],
    ['masked_result_columns', (x) => x.maskedColumns],
    ['on_behalf_of', (x) => x.onBehalfOf],
    ['first', (x) => x.first],
    ['last', (x) => x.last],
  ]);
  files['refusals.csv'] = csv(S.refusals.refusals.items, [
    ['ts', (x) => x.ts],
    ['record', (x) => x.record],
    ['identity', (x) => x.identity],
    ['kind', (x) => x.kind],
    ['on_behalf_of', (x) => x.onBehalfOf],
    ['database', (x) => x.database],
    ['rule', (x) => x.rule],
    ['action', (x) => x.action],
    ['sqlstate', (x) => x.sqlstate],
    ['error', (x) => x.error],
    ['intent', (x) => x.intent],
    ['sql', (x) => x.sql],
  ]);
  files['failed-logins.csv'] = csv(S.refusals.failedLogins.items, [
    ['ts', (x) => x.ts],
    ['record', (x) => x.record],
    ['identity', (x) => x.identity],
    ['client_address', (x) => x.clientAddress],
    ['channel', (x) => x.channel],
    ['database', (x) => x.database],
    ['reason', (x) => x.reason],
  ]);
  files['approvals.csv'] = csv(S.approvals.requests, [
    ['request', (x) => x.request],
    ['requested_at', (x) => x.requestedAt],
    ['requester', (x) => x.requester],
    ['database', (x) => x.database],
    ['mode', (x) => x.mode],
    ['rules', (x) => x.rules],
    ['intent', (x) => x.intent],
    ['approvers', (x) => x.decisions.map((d) => d.approver)],
    ['decisions', (x) => x.decisions.map((d) => `${d.approver}: ${d.decision} at ${d.at}: ${d.reason}`)],
    ['status', (x) => x.status],
    ['resolved_at', (x) => x.resolvedAt],
    ['wait_ms', (x) => x.waitMs],
    ['tables', (x) => x.tables],
    ['sql', (x) => x.sql],
  ]);
  files['grants.csv'] = csv(S.approvals.grants.items, [
    ['ts', (x) => x.ts],
    ['event', (x) => x.event],
    ['grant', (x) => x.grant],
    ['to', (x) => x.to],
    ['by', (x) => x.by],
    ['rule', (x) => x.rule],
    ['request', (x) => x.request],
    ['expires_at', (x) => x.expiresAt],
  ]);
  files['limits.csv'] = csv(S.limits.events.items, [
    ['ts', (x) => x.ts],
    ['record', (x) => x.record],
    ['identity', (x) => x.identity],
    ['kind', (x) => x.kind],
    ['database', (x) => x.database],
    ['limit', (x) => x.limit],
    ['measure', (x) => x.measure],
    ['figure', (x) => x.figure],
    ['max', (x) => x.max],
    ['on_exceed', (x) => x.onExceed],
    ['outcome', (x) => x.outcome],
    ['sql', (x) => x.sql],
  ]);
  const objectRows = S.schemaChanges.changes.items.flatMap((c) => (c.objects.length > 0 ? c.objects : [{ object: '', changes: [], before: null, after: null }]).map((o) => ({ c, o })));
  files['schema-changes.csv'] = csv(objectRows, [
    ['ts', (x) => x.c.ts],
    ['record', (x) => x.c.record],
    ['identity', (x) => x.c.identity],
    ['database', (x) => x.c.database],
    ['statement_record', (x) => x.c.statementRecord],
    ['intent', (x) => x.c.intent],
    ['object', (x) => x.o.object],
    ['changes', (x) => x.o.changes],
    ['before', (x) => (x.o.before === null ? '' : JSON.stringify(x.o.before))],
    ['after', (x) => (x.o.after === null ? '' : JSON.stringify(x.o.after))],
    ['error', (x) => x.c.error],
    ['sql', (x) => x.c.sql],
  ]);
  files['agents.csv'] = csv(S.agents.access, [
    ['identity', (x) => x.identity],
    ['kind', (x) => x.kind],
    ['on_behalf_of', (x) => x.onBehalfOf],
    ['database', (x) => x.database],
    ['sessions', (x) => x.sessions],
    ['statements', (x) => x.statements],
    ['refused', (x) => x.refused],
    ['reads', (x) => x.reads],
    ['writes', (x) => x.writes],
    ['ddl', (x) => x.ddl],
    ['sensitive', (x) => x.sensitive],
    ['masked', (x) => x.masked],
    ['tables', (x) => x.tables],
    ['first', (x) => x.first],
    ['last', (x) => x.last],
  ]);
  files['missing-intent.csv'] = csv(S.missingIntent.statements.items, [
    ['ts', (x) => x.ts],
    ['record', (x) => x.record],
    ['identity', (x) => x.identity],
    ['kind', (x) => x.kind],
    ['database', (x) => x.database],
    ['rule', (x) => x.rule],
    ['rule_action', (x) => x.ruleAction],
    ['outcome', (x) => x.outcome],
    ['sql', (x) => x.sql],
  ]);
  files['privileged-identities.csv'] = csv(S.privileged.identities, [
    ['identity', (x) => x.identity],
    ['groups', (x) => x.groups],
    ['sessions', (x) => x.sessions],
    ['statements', (x) => x.statements],
    ['reads', (x) => x.reads],
    ['writes', (x) => x.writes],
    ['ddl', (x) => x.ddl],
    ['refused', (x) => x.refused],
    ['sensitive', (x) => x.sensitive],
    ['databases', (x) => x.databases],
    ['first', (x) => x.first],
    ['last', (x) => x.last],
  ]);
  files['privileged-statements.csv'] = csv(S.privileged.statements.items, [
    ['ts', (x) => x.ts],
    ['record', (x) => x.record],
    ['identity', (x) => x.identity],
    ['database', (x) => x.database],
    ['classes', (x) => x.classes],
    ['outcome', (x) => x.outcome],
    ['intent', (x) => x.intent],
    ['sql', (x) => x.sql],
  ]);
  files['suspensions.csv'] = csv(S.operations.suspensions.items, [
    ['ts', (x) => x.ts],
    ['record', (x) => x.record],
    ['event', (x) => x.event],
    ['identity', (x) => x.identity],
    ['by', (x) => x.by],
    ['reason', (x) => x.reason],
    ['sessions_ended', (x) => x.sessionsEnded],
  ]);
  files['kills.csv'] = csv(S.operations.kills.items, [
    ['ts', (x) => x.ts],
    ['record', (x) => x.record],
    ['session', (x) => x.session],
    ['identity', (x) => x.identity],
    ['database', (x) => x.database],
    ['by', (x) => x.by],
    ['reason', (x) => x.reason],
  ]);
  files['config-reloads.csv'] = csv(S.operations.config.items, [
    ['ts', (x) => x.ts],
    ['record', (x) => x.record],
    ['event', (x) => x.event],
    ['by', (x) => x.by],
    ['source', (x) => x.source],
    ['hash', (x) => x.hash],
    ['previous_hash', (x) => x.previousHash],
    ['detail', (x) => x.detail],
  ]);
  files['log-events.csv'] = csv(S.operations.log.items, [
    ['ts', (x) => x.ts],
    ['record', (x) => x.record],
    ['event', (x) => x.event],
    ['detail', (x) => x.detail],
  ]);
  return files;
}
