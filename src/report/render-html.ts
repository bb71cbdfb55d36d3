/**
 * The report as one self-contained HTML page: inline CSS, charts drawn here as
 * SVG (no script, nothing fetched when it is viewed), and print rules so that a
 * PDF print cuts no table row (`break-inside: avoid`), repeats each table's
 * header on every page it spans, and starts each section on a new page.
 *
 * The integrity verdict comes first, before anything else on the first page: a
 * report over a tampered log says so before any figure.
 */
import type { Report } from './build.js';
import type { ControlRef, Listing } from './types.js';

export function esc(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const CSS = `
:root { --ink:#1c2430; --muted:#5b6675; --line:#d5dbe3; --bad:#b3261e; --bad-bg:#fdecea; --ok:#1e6b3a; --ok-bg:#e7f4ec; --accent:#2f5d9e; --warn:#8a5a00; --warn-bg:#fff4de; }
* { box-sizing: border-box; }
body { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); margin: 0; background: #f4f6f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 6px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); }
h3 { font-size: 14px; margin: 14px 0 6px; }
.meta { color: var(--muted); margin: 0 0 14px; }
.verdict { border-radius: 6px; padding: 14px 16px; margin: 12px 0 16px; font-size: 14px; border: 2px solid; }
.verdict strong { display: block; font-size: 16px; margin-bottom: 4px; }
.verdict.bad { background: var(--bad-bg); border-color: var(--bad); color: var(--bad); }
.verdict.ok { background: var(--ok-bg); border-color: var(--ok); color: var(--ok); }
.disclaimer { border-left: 4px solid var(--warn); background: var(--warn-bg); padding: 8px 12px; margin: 12px 0; color: #4d3a00; }
section { margin-top: 30px; }
.desc { color: var(--muted); margin: 0 0 8px; }
.controls { margin: 6px 0 10px; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 6px; }
.controls li { border: 1px solid var(--line); border-radius: 4px; padding: 2px 7px; background: #f7f9fc; font-size: 11.5px; }
.controls b { color: var(--accent); }
.figures { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 12px; }
.figure { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 110px; }
.figure .n { font-size: 20px; font-weight: 600; }
.figure .l { color: var(--muted); font-size: 11.5px; }
.figure.bad .n { color: var(--bad); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; table-layout: auto; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; overflow-wrap: break-word; word-break: normal; hyphens: none; }
td.sql, td.mono { overflow-wrap: anywhere; }
td.sql { min-width: 16em; }
th { background: #eef2f7; font-weight: 600; font-size: 12px; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.sql, td.mono, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 11.5px; }
tr.bad td { background: #fff6f5; }
.none { color: var(--muted); font-style: italic; }
.note { color: var(--muted); font-size: 12px; }
.tag { display: inline-block; border-radius: 3px; padding: 0 5px; font-size: 11px; font-weight: 600; white-space: nowrap; }
mark.add { background: #dff3e4; color: inherit; }
mark.del { background: #fbe3e1; color: inherit; text-decoration: line-through; }
.tag.masked { background: var(--ok-bg); color: var(--ok); }
.tag.unmasked { background: var(--bad-bg); color: var(--bad); }
.charts { display: flex; flex-wrap: wrap; gap: 8px 28px; }
.chart { margin: 4px 0 12px; }
.chart text { font-size: 11px; fill: var(--ink); }
.change { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; margin: 8px 0; }
.defs { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
.defs pre { margin: 0; padding: 6px; background: #f7f9fc; border: 1px solid var(--line); white-space: pre-wrap; overflow-wrap: anywhere; max-height: 320px; overflow: auto; }
nav { margin: 8px 0 22px; }
nav ol { columns: 2; margin: 6px 0 0; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { background: #fff; font-size: 11px; }
  main { max-width: none; padding: 0; }
  section { break-before: page; margin-top: 0; }
  section.integrity { break-before: avoid; }
  h2, h3 { break-after: avoid; }
  tr, .figure, .verdict, .controls li { break-inside: avoid; }
  thead { display: table-header-group; }
  .defs pre { max-height: none; overflow: visible; }
  nav { display: none; }
}
`;

function controls(list: readonly ControlRef[]): string {
  return `<ul class="controls" aria-label="controls evidenced">${list.map((c) => `<li title="${esc(c.evidence)}"><b>${esc(c.framework)} ${esc(c.id)}</b> — ${esc(c.evidence)}</li>`).join('')}</ul>`;
}

function figures(items: [label: string, n: number | string, bad?: boolean][]): string {
  return `<div class="figures">${items.map(([l, n, bad]) => `<div class="figure${bad ? ' bad' : ''}"><div class="n">${esc(typeof n === 'number' ? n.toLocaleString('en-US') : n)}</div><div class="l">${esc(l)}</div></div>`).join('')}</div>`;
}

export interface Column<T> {
  head: string;
  cell: (row: T) => unknown;
  cls?: string;
}

export function table<T>(rows: readonly T[], cols: readonly Column<T>[], o: { id?: string; rowClass?: (r: T) => string; empty?: string } = {}): string {
  if (rows.length === 0) return `<p class="none">${esc(o.empty ?? 'None in this period.')}</p>`;
  const head = `<thead><tr>${cols.map((c) => `<th${c.cls ? ` class="${c.cls}"` : ''}>${esc(c.head)}</th>`).join('')}</tr></thead>`;
  const body = rows
    .map((r) => `<tr${o.rowClass ? ` class="${o.rowClass(r)}"` : ''}>${cols.map((c) => `<td${c.cls ? ` class="${c.cls}"` : ''}>${cellHtml(c.cell(r))}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table${o.id ? ` id="${o.id}"` : ''}>${head}<tbody>\n${body}\n</tbody></table>`;
}

/**
 * Longest text of a table cell: a row must stay shorter than a printed page, or the PDF has
 * to cut it whatever the print rules say. The JSON and CSV files keep the whole text.
 */
export const CELL_CAP = 900;

function capped(s: string): string {
  return s.length > CELL_CAP ? `${s.slice(0, CELL_CAP)}… (${s.length.toLocaleString('en-US')} characters: the JSON and CSV files have all of it)` : s;
}

function cellHtml(v: unknown): string {
  if (v instanceof RawHtml) return v.html;
  if (typeof v === 'number') return esc(v.toLocaleString('en-US'));
  if (Array.isArray(v)) return esc(capped(v.join(', ')));
  if (typeof v === 'object' && v !== null) {
    const e = Object.entries(v as Record<string, unknown>);
    return e.length === 0 ? '' : esc(capped(e.map(([k, x]) => `${k}=${String(x)}`).join(' ')));
  }
  return esc(capped(typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v)));
}

/**
 * Markup the renderer wrote itself (escaping what it put in). Only an instance of this class is
 * taken as HTML: a record's value shaped like it (an intent `{ "html": ... }` a client chose) is
 * an object like any other, and escaped.
 */
class RawHtml {
  constructor(readonly html: string) {}
}

const raw = (html: string): RawHtml => new RawHtml(html);

function listingNote<T>(l: Listing<T>, what: string): string {
  return l.truncated ? `<p class="note">Showing the first ${l.items.length.toLocaleString('en-US')} of ${l.total.toLocaleString('en-US')} ${esc(what)}; the JSON and CSV files hold the same, and <code>warden audit export</code> every record.</p>` : '';
}

/** Horizontal bars, drawn as SVG (no script). */
export function barChart(title: string, data: readonly { key: string; count: number }[], o: { max?: number; color?: string } = {}): string {
  const rows = data.slice(0, o.max ?? 10);
  if (rows.length === 0) return '';
  const top = Math.max(...rows.map((r) => r.count), 1);
  const labelW = 170;
  const barW = 260;
  const h = 20;
  const height = rows.length * h + 24;
  const bars = rows
    .map((r, i) => {
      const w = Math.max(1, Math.round((r.count / top) * barW));
      const y = 20 + i * h;
      const label = r.key.length > 34 ? `${r.key.slice(0, 33)}…` : r.key;
      return `<text x="${labelW - 6}" y="${y + 13}" text-anchor="end">${esc(label || '(none)')}</text><rect x="${labelW}" y="${y + 2}" width="${w}" height="${h - 6}" rx="2" fill="${o.color ?? '#2f5d9e'}"/><text x="${labelW + w + 5}" y="${y + 13}">${r.count.toLocaleString('en-US')}</text>`;
    })
    .join('');
  return `<svg class="chart" role="img" aria-label="${esc(title)}" width="${labelW + barW + 70}" height="${height}" viewBox="0 0 ${labelW + barW + 70} ${height}"><text x="0" y="13" font-weight="600">${esc(title)}</text>${bars}</svg>`;
}

function ms(n: number | null): string {
  if (n === null) return '—';
  if (n < 1000) return `${n} ms`;
  const s = n / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  const m = s / 60;
  return m < 120 ? `${m.toFixed(1)} min` : `${(m / 60).toFixed(1)} h`;
}

const when = (ts: string | null): string => (ts ? ts.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');

const DEF_CAP = 8000;

/** A definition as compact text: members that are null left out, flat objects on one line. */
export function defText(v: unknown, indent = ''): string {
  if (v === null || v === undefined) return '(none)';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => `${indent}  ${defText(x, `${indent}  `)}`).join(',\n')}\n${indent}]`;
  }
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== null && x !== undefined);
    if (entries.length === 0) return '{}';
    const flat = entries.every(([, x]) => typeof x !== 'object' || (Array.isArray(x) && x.every((y) => typeof y !== 'object')));
    if (flat) {
      const one = `{ ${entries.map(([k, x]) => `${k}: ${JSON.stringify(x)}`).join(', ')} }`;
      if (one.length <= 140) return one;
    }
    return `{\n${entries.map(([k, x]) => `${indent}  ${k}: ${defText(x, `${indent}  `)}`).join('\n')}\n${indent}}`;
  }
  return JSON.stringify(v);
}

/** Before and after, each line marked when the other side does not have it. */
function defPair(before: unknown, after: unknown): [string, string] {
  const cap = (t: string): string[] => (t.length > DEF_CAP ? `${t.slice(0, DEF_CAP)}\n…(${t.length} characters; the JSON report has all of it)` : t).split('\n');
  const b = cap(defText(before));
  const a = cap(defText(after));
  const inB = new Set(b.map((l) => l.trim().replace(/,$/, '')));
  const inA = new Set(a.map((l) => l.trim().replace(/,$/, '')));
  const mark = (lines: string[], other: Set<string>, cls: string): string =>
    lines.map((l) => (other.has(l.trim().replace(/,$/, '')) || l.trim().length <= 1 ? esc(l) : `<mark class="${cls}">${esc(l)}</mark>`)).join('\n');
  return [before === null || before === undefined ? '(none)' : mark(b, inA, 'del'), after === null || after === undefined ? '(none)' : mark(a, inB, 'add')];
}

export function renderHtml(r: Report, o: { printRules?: boolean } = {}): string {
  const S = r.sections;
  const I = r.integrity;
  const parts: string[] = [];
  const period = `${when(r.period.from)} to ${when(r.period.to)}${r.period.database ? ` · database ${r.period.database}` : ''}`;
  parts.push(`<h1>Warden compliance report</h1><p class="meta">Period ${esc(period)} · generated ${esc(when(r.generatedAt))} · store ${esc(r.store)}</p>`);
  // First: may the figures be relied on?
  parts.push(
    `<section class="integrity" id="integrity"><div class="verdict ${I.ok ? 'ok' : 'bad'}" role="${I.ok ? 'status' : 'alert'}"><strong>${I.ok ? 'Audit log verified for this period' : 'AUDIT LOG TAMPERED: verification FAILED'}</strong>${esc(I.verdict)}</div>`,
  );
  parts.push(`<p class="disclaimer">${esc(r.disclaimer)}</p>`);
  parts.push(
    figures([
      ['records in the period', r.totals.records],
      ['statements', r.totals.statements],
      ['refused', r.totals.refused, r.totals.refused > 0],
      ['sessions', r.totals.sessions],
      ['identities', r.totals.identities],
      ['unmasked sensitive reads', S.sensitiveReads.unmaskedStatements, S.sensitiveReads.unmaskedStatements > 0],
      ['approvals', S.approvals.total],
      ['limit events', S.limits.total],
      ['schema changes', S.schemaChanges.total],
    ]),
  );
  parts.push(
    `<nav><b>Contents</b><ol><li><a href="#integrity">Integrity</a></li>${Object.values(S)
      .map((x) => `<li><a href="#${x.id}">${esc(x.title)}</a></li>`)
      .join('')}</ol></nav>`,
  );
  parts.push(`<h2>${esc(I.title)}</h2>${controls(I.controls)}`);
  parts.push(
    `<p class="desc">Each chain's records of the period, and the stretch around them up to signed checkpoints, were read in order: every record's hash recomputed, every link to the record before checked, every checkpoint's signature ${I.signaturesChecked ? `checked with key ${esc(I.keyId)}` : 'left unchecked (no public key: set audit.signing_key or pass --public-key)'}.</p>`,
  );
  parts.push(
    table(
      I.instances,
      [
        { head: 'chain', cell: (x) => x.instance, cls: 'mono' },
        { head: 'result', cell: (x) => raw(x.ok ? '<span class="tag masked">verified</span>' : '<span class="tag unmasked">FAILED</span>') },
        { head: 'period records (seq)', cell: (x) => (x.periodFirstSeq === null ? 'none' : `${x.periodRecords.toLocaleString('en-US')} (${x.periodFirstSeq}–${x.periodLastSeq})`) },
        { head: 'verified (seq)', cell: (x) => `${x.verifiedRecords.toLocaleString('en-US')} (${x.verifiedFromSeq}–${x.verifiedThroughSeq})` },
        { head: 'anchored at', cell: (x) => (x.anchor ? `checkpoint ${x.anchor.seq} (${when(x.anchor.ts)})` : 'chain start') },
        { head: 'pinned by', cell: (x) => (x.cover ? `checkpoint ${x.cover.seq} (${when(x.cover.ts)})${x.cover.signatureValid === false ? ' — BAD SIGNATURE' : ''}` : 'no checkpoint yet') },
        { head: 'unpinned', cls: 'num', cell: (x) => x.unpinnedRecords },
      ],
      { id: 'integrity-chains', rowClass: (x) => (x.ok ? '' : 'bad'), empty: 'The store holds no chain.' },
    ),
  );
  const cps = I.instances.flatMap((x) => x.checkpoints.map((c) => ({ ...c, instance: x.instance })));
  if (cps.length > 0) {
    parts.push(`<h3>Signed checkpoints covering the period</h3>`);
    parts.push(
      table(
        cps.length > 40 ? [...cps.slice(0, 20), ...cps.slice(-20)] : cps,
        [
          { head: 'chain', cell: (c) => c.instance, cls: 'mono' },
          { head: 'seq', cls: 'num', cell: (c) => c.seq },
          { head: 'signed', cell: (c) => when(c.ts) },
          { head: 'key', cell: (c) => c.keyId, cls: 'mono' },
          { head: 'signature', cell: (c) => raw(c.signatureValid === null ? 'not checked (no key)' : c.signatureValid ? '<span class="tag masked">valid</span>' : '<span class="tag unmasked">INVALID</span>') },
        ],
        { id: 'integrity-checkpoints', rowClass: (c) => (c.signatureValid === false ? 'bad' : '') },
      ) + (cps.length > 40 ? `<p class="note">${cps.length} checkpoints: the first and last 20 are shown; report.json and integrity.csv have them.</p>` : ''),
    );
  }
  const problems = I.instances.flatMap((x) => x.problems.map((p) => ({ ...p, instance: x.instance })));
  if (problems.length > 0) {
    parts.push(`<h3>Problems found</h3>`);
    parts.push(
      table(
        problems,
        [
          { head: 'chain', cell: (p) => p.instance, cls: 'mono' },
          { head: 'seq', cls: 'num', cell: (p) => p.seq ?? '?' },
          { head: 'problem', cell: (p) => p.kind },
          { head: 'detail', cell: (p) => p.message },
        ],
        { id: 'integrity-problems', rowClass: () => 'bad' },
      ),
    );
  }
  if (I.witnesses.length > 0) {
    parts.push(
      table(
        I.witnesses,
        [
          { head: 'witness', cell: (w) => w.description, cls: 'mono' },
          { head: 'checkpoints read', cls: 'num', cell: (w) => w.checkpoints },
          { head: 'error', cell: (w) => w.error ?? '' },
        ],
        { rowClass: (w) => (w.error ? 'bad' : '') },
      ),
    );
  }
  parts.push(`</section>`);

  // Rows whose own record failed verification say so where they are listed.
  const failed = new Set(I.instances.flatMap((x) => x.problems.filter((p) => p.seq !== null).map((p) => `${x.instance}#${p.seq}`)));
  const at = (x: { ts: string; record: string }): RawHtml =>
    raw(`${esc(when(x.ts))}${failed.has(x.record) ? '<br><span class="tag unmasked" title="this record failed verification">failed verification</span>' : ''}`);

  const section = (x: { id: string; title: string; description: string; controls: ControlRef[] }, body: string): void => {
    parts.push(`<section id="${x.id}"><h2>${esc(x.title)}</h2><p class="desc">${esc(x.description)}</p>${controls(x.controls)}${body}</section>`);
  };

  const sr = S.sensitiveReads;
  section(
    sr,
    figures([
      ['statements touching sensitive columns', sr.statements],
      ['masked', sr.maskedStatements],
      ['not masked', sr.unmaskedStatements, sr.unmaskedStatements > 0],
    ]) +
      table(sr.byType, [
        { head: 'type', cell: (t) => t.type },
        { head: 'statements', cls: 'num', cell: (t) => t.statements },
        { head: 'masked', cls: 'num', cell: (t) => t.masked },
        { head: 'not masked', cls: 'num', cell: (t) => t.unmasked },
        { head: 'rows not masked', cls: 'num', cell: (t) => t.rowsUnmasked },
        { head: 'identities', cls: 'num', cell: (t) => t.identities },
      ]) +
      (() => {
        const by = new Map<string, number>();
        for (const g of sr.groups) if (!g.masked) by.set(g.identity, (by.get(g.identity) ?? 0) + g.statements);
        const top = [...by.entries()].map(([key, count]) => ({ key, count })).sort((a, b) => b.count - a.count);
        return top.length > 0 ? `<div class="charts">${barChart('Not masked: statements by identity (top 10)', top, { color: '#b3261e' })}</div>` : '';
      })() +
      `<h3>By type, identity and kind</h3>` +
      table(
        sr.groups,
        [
          { head: 'type', cell: (g) => g.type },
          { head: 'identity', cell: (g) => g.identity },
          { head: 'kind', cell: (g) => g.kind },
          { head: 'masked', cell: (g) => raw(g.masked ? '<span class="tag masked">masked</span>' : '<span class="tag unmasked">not masked</span>') },
          { head: 'statements', cls: 'num', cell: (g) => g.statements },
          { head: 'rows', cls: 'num', cell: (g) => g.rows },
          { head: 'columns (per sensitive map)', cell: (g) => g.columns, cls: 'mono' },
          { head: 'masked result columns', cell: (g) => g.maskedColumns, cls: 'mono' },
          { head: 'on behalf of', cell: (g) => g.onBehalfOf },
          { head: 'first – last', cell: (g) => `${when(g.first)} – ${when(g.last)}` },
        ],
        { id: 'sensitive-groups' },
      ),
  );

  const rf = S.refusals;
  section(
    rf,
    figures([
      ['refused', rf.total, rf.total > 0],
      ['by policy', rf.byPolicy],
      ['audit unavailable', rf.whileAuditUnavailable],
      ['failed logins', rf.failedLogins.total, rf.failedLogins.total > 0],
    ]) +
      `<div class="charts">${barChart('Refusals by rule', rf.byRule, { color: '#b3261e' })}${barChart('Refusals by identity', rf.byIdentity, { color: '#8e3b35' })}</div>` +
      table(
        rf.refusals.items,
        [
          { head: 'time', cell: (x) => at(x) },
          { head: 'identity', cell: (x) => (x.onBehalfOf ? `${x.identity} (for ${x.onBehalfOf})` : x.identity) },
          { head: 'database', cell: (x) => x.database },
          { head: 'rule', cell: (x) => x.rule },
          { head: 'SQLSTATE', cell: (x) => x.sqlstate, cls: 'mono' },
          { head: 'statement', cell: (x) => x.sql, cls: 'sql' },
          { head: 'message the client got', cell: (x) => x.error },
          { head: 'intent', cell: (x) => x.intent },
        ],
        { id: 'refusals-list' },
      ) +
      listingNote(rf.refusals, 'refusals') +
      `<h3>Failed logins</h3>` +
      table(
        rf.failedLogins.items,
        [
          { head: 'time', cell: (x) => at(x) },
          { head: 'name given', cell: (x) => x.identity },
          { head: 'from', cell: (x) => x.clientAddress, cls: 'mono' },
          { head: 'channel', cell: (x) => x.channel },
          { head: 'database', cell: (x) => x.database },
          { head: 'reason', cell: (x) => x.reason },
        ],
        { id: 'failed-logins', empty: 'No failed login in this period.' },
      ) +
      listingNote(rf.failedLogins, 'failed logins'),
  );

  const ap = S.approvals;
  section(
    ap,
    figures([
      ['requests', ap.total],
      ['approved', ap.approved],
      ['denied', ap.denied],
      ['expired', ap.expired],
      ['cancelled', ap.cancelled],
      ['median wait', ms(ap.medianWaitMs)],
      ['longest wait', ms(ap.maxWaitMs)],
    ]) +
      table(
        ap.requests,
        [
          { head: 'request', cell: (x) => x.request, cls: 'mono' },
          { head: 'requested', cell: (x) => when(x.requestedAt) },
          { head: 'requester', cell: (x) => x.requester },
          { head: 'intent', cell: (x) => x.intent },
          { head: 'rules', cell: (x) => x.rules },
          { head: 'statement', cell: (x) => x.sql, cls: 'sql' },
          { head: 'decisions (approver: decision — reason)', cell: (x) => x.decisions.map((d) => `${d.approver}: ${d.decision} — ${d.reason}`).join('; ') },
          { head: 'outcome', cell: (x) => x.status },
          { head: 'waited', cls: 'num', cell: (x) => ms(x.waitMs) },
        ],
        { id: 'approvals-list' },
      ) +
      (ap.grants.total > 0
        ? `<h3>Just-in-time grants</h3>` +
          table(ap.grants.items, [
            { head: 'time', cell: (g) => when(g.ts) },
            { head: 'event', cell: (g) => g.event },
            { head: 'grant', cell: (g) => g.grant, cls: 'mono' },
            { head: 'to', cell: (g) => g.to },
            { head: 'by', cell: (g) => g.by },
            { head: 'rule', cell: (g) => g.rule },
            { head: 'expires', cell: (g) => g.expiresAt },
          ]) +
          listingNote(ap.grants, 'grant events')
        : ''),
  );

  const lm = S.limits;
  section(
    lm,
    figures([
      ['limit events', lm.total],
      ['halted', lm.halted],
      ['throttled', lm.throttled],
      ['halted + suspended', lm.suspended, lm.suspended > 0],
      ['held', lm.held],
    ]) +
      barChart('By limit', lm.byLimit, { color: '#8a5a00' }) +
      table(
        lm.events.items,
        [
          { head: 'time', cell: (x) => at(x) },
          { head: 'identity', cell: (x) => x.identity },
          { head: 'limit', cell: (x) => x.limit },
          { head: 'measure', cell: (x) => x.measure },
          { head: 'figure / max', cls: 'num', cell: (x) => `${x.figure ?? '?'} / ${x.max ?? '?'}` },
          { head: 'outcome', cell: (x) => x.outcome },
          { head: 'statement', cell: (x) => x.sql, cls: 'sql' },
        ],
        { id: 'limits-list' },
      ) +
      listingNote(lm.events, 'limit events'),
  );

  const sc = S.schemaChanges;
  section(
    sc,
    figures([
      ['schema changes', sc.total],
      ['objects changed', sc.objects],
    ]) +
      table(
        sc.changes.items,
        [
          { head: 'time', cell: (x) => at(x) },
          { head: 'identity', cell: (x) => x.identity },
          { head: 'database', cell: (x) => x.database },
          { head: 'objects', cell: (x) => x.objects.map((o) => o.object), cls: 'mono' },
          { head: 'changes', cell: (x) => x.objects.flatMap((o) => o.changes.map((c) => `${o.object}: ${c}`)).join('; ') },
          { head: 'intent', cell: (x) => x.intent },
          { head: 'statement', cell: (x) => x.sql, cls: 'sql' },
        ],
        { id: 'schema-list' },
      ) +
      listingNote(sc.changes, 'schema changes') +
      (sc.changes.items.length > 0 ? `<h3>Definitions before and after</h3>` : '') +
      sc.changes.items
        .slice(0, 200)
        .map(
          (x) =>
            `<div class="change"><b>${esc(when(x.ts))}</b> · ${esc(x.identity)} · <span class="mono">${esc(x.record)}</span>${x.error ? ` · <span class="tag unmasked">${esc(x.error)}</span>` : ''}${x.objects
              .map((o) => {
                const [b, a] = defPair(o.before, o.after);
                return `<h3 class="mono">${esc(o.object)}</h3><div class="defs"><div><b>before</b><pre>${b}</pre></div><div><b>after</b><pre>${a}</pre></div></div>`;
              })
              .join('')}</div>`,
        )
        .join(''),
  );

  const ag = S.agents;
  section(
    ag,
    figures([
      ['agents', ag.agents],
      ['statements', ag.statements],
      ['refused', ag.refused, ag.refused > 0],
      ['on behalf of a person', ag.onBehalfOfSomeone],
    ]) +
      table(
        ag.access,
        [
          { head: 'identity', cell: (x) => x.identity },
          { head: 'kind', cell: (x) => x.kind },
          { head: 'on behalf of', cell: (x) => x.onBehalfOf || '—' },
          { head: 'database', cell: (x) => x.database },
          { head: 'sessions', cls: 'num', cell: (x) => x.sessions },
          { head: 'statements', cls: 'num', cell: (x) => x.statements },
          { head: 'refused', cls: 'num', cell: (x) => x.refused },
          { head: 'reads / writes / DDL', cls: 'num', cell: (x) => `${x.reads} / ${x.writes} / ${x.ddl}` },
          { head: 'sensitive (masked)', cls: 'num', cell: (x) => `${x.sensitive} (${x.masked})` },
          { head: 'tables', cell: (x) => `${x.tables.join(', ')}${x.moreTables ? ', …' : ''}`, cls: 'mono' },
        ],
        { id: 'agents-list' },
      ),
  );

  const mi = S.missingIntent;
  section(
    mi,
    (mi.rules.length === 0
      ? `<p class="none">No rule of the configuration tests intent (match.intent), so nothing is listed here.</p>`
      : `<p class="note">Rules that test intent: ${esc(mi.rules.join(', '))}.</p>` +
        figures([
          ['without intent', mi.total, mi.ran > 0],
          ['refused', mi.refused],
          ['ran', mi.ran, mi.ran > 0],
        ]) +
        table(
          mi.statements.items,
          [
            { head: 'time', cell: (x) => at(x) },
            { head: 'identity', cell: (x) => x.identity },
            { head: 'rule (action)', cell: (x) => `${x.rule} (${x.ruleAction})` },
            { head: 'outcome', cell: (x) => x.outcome },
            { head: 'statement', cell: (x) => x.sql, cls: 'sql' },
          ],
          { id: 'intent-list' },
        ) +
        listingNote(mi.statements, 'statements')),
  );

  const pv = S.privileged;
  section(
    pv,
    pv.groups.length === 0
      ? `<p class="none">Name the privileged groups with report.privileged_groups in the configuration to list their use.</p>`
      : table(
          pv.identities,
          [
            { head: 'identity', cell: (x) => x.identity },
            { head: 'groups', cell: (x) => x.groups },
            { head: 'sessions', cls: 'num', cell: (x) => x.sessions },
            { head: 'statements', cls: 'num', cell: (x) => x.statements },
            { head: 'reads', cls: 'num', cell: (x) => x.reads },
            { head: 'writes', cls: 'num', cell: (x) => x.writes },
            { head: 'DDL', cls: 'num', cell: (x) => x.ddl },
            { head: 'refused', cls: 'num', cell: (x) => x.refused },
            { head: 'sensitive', cls: 'num', cell: (x) => x.sensitive },
            { head: 'databases', cell: (x) => x.databases },
          ],
          { id: 'privileged-identities' },
        ) +
          `<h3>Statements other than plain reads</h3>` +
          table(
            pv.statements.items,
            [
              { head: 'time', cell: (x) => at(x) },
              { head: 'identity', cell: (x) => x.identity },
              { head: 'database', cell: (x) => x.database },
              { head: 'classes', cell: (x) => x.classes },
              { head: 'outcome', cell: (x) => x.outcome },
              { head: 'intent', cell: (x) => x.intent },
              { head: 'statement', cell: (x) => x.sql, cls: 'sql' },
            ],
            { id: 'privileged-list' },
          ) +
          listingNote(pv.statements, 'statements'),
  );

  const op = S.operations;
  section(
    op,
    `<h3>Identity suspensions</h3>` +
      table(op.suspensions.items, [
        { head: 'time', cell: (x) => at(x) },
        { head: 'event', cell: (x) => x.event },
        { head: 'identity', cell: (x) => x.identity },
        { head: 'by', cell: (x) => x.by },
        { head: 'reason', cell: (x) => x.reason },
        { head: 'sessions ended', cls: 'num', cell: (x) => x.sessionsEnded },
      ]) +
      `<h3>Sessions killed</h3>` +
      table(op.kills.items, [
        { head: 'time', cell: (x) => at(x) },
        { head: 'session', cell: (x) => x.session, cls: 'mono' },
        { head: 'identity', cell: (x) => x.identity },
        { head: 'database', cell: (x) => x.database },
        { head: 'by', cell: (x) => x.by },
        { head: 'reason', cell: (x) => x.reason },
      ]) +
      `<h3>Configuration</h3>` +
      table(op.config.items, [
        { head: 'time', cell: (x) => at(x) },
        { head: 'event', cell: (x) => x.event },
        { head: 'by', cell: (x) => x.by },
        { head: 'file', cell: (x) => x.source, cls: 'mono' },
        { head: 'SHA-256', cell: (x) => (x.hash ? `${x.hash.slice(0, 16)}…` : ''), cls: 'mono' },
        { head: 'detail', cell: (x) => x.detail },
      ]) +
      `<h3>Warden and the log</h3>` +
      table(op.log.items, [
        { head: 'time', cell: (x) => at(x) },
        { head: 'event', cell: (x) => x.event },
        { head: 'detail', cell: (x) => x.detail },
      ], { rowClass: (x) => (x.event === 'audit records lost' ? 'bad' : '') }),
  );

  const css = o.printRules === false ? CSS.replace(/@media print \{[\s\S]*\}\s*$/, '') : CSS;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Warden ${esc(r.format)}">
<title>Warden compliance report ${esc(period)}${r.integrity.ok ? '' : ' — AUDIT LOG TAMPERED'}</title>
<style>${css}</style></head>
<body><main>
${parts.join('\n')}
</main></body></html>
`;
}
