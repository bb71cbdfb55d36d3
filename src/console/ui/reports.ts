import { ApiError, post } from './api.js';
import { badge, clear, field, fmtTime, h, table } from './dom.js';
import type { Ctx, Page } from './page.js';

interface Change {
  category: string;
  ts: string;
  identity: string;
  database: string;
  sql: string;
  was: { action: string; rule: string; outcome: string };
  now: { action: string; rule: string; reason: string };
  detail: string;
}
interface Backtest {
  period: { from: string; to: string; database: string | null };
  statements: number;
  replayed: number;
  unchanged: number;
  notReplayable: { total: number; byReason: { key: string; count: number }[] };
  counts: Record<string, number>;
  changes: Record<string, { total: number; items: Change[]; truncated: boolean }>;
  notes: string[];
}

/** `datetime-local` value for a Date, in the browser's zone. */
function local(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * The compliance report of a period (GET /api/v1/report?format=html, shown in a sandboxed frame:
 * no script, an opaque origin) and the policy backtest (POST /api/v1/policy/backtest: the
 * proposed policy travels in the body). Both are the report's own routes (docs/reports.md).
 */
export function reportsPage(ctx: Ctx, root: HTMLElement): Page {
  const now = new Date();
  const from = h('input', { name: 'from', type: 'datetime-local', value: local(new Date(now.getTime() - 24 * 3_600_000)), required: true });
  const to = h('input', { name: 'to', type: 'datetime-local', value: local(new Date(now.getTime() + 60_000)), required: true });
  const show = h('button', { type: 'submit', class: 'primary' }, 'Show report');
  const frameBox = h('div', { class: 'report-frame' });
  const reportForm = h('form', { class: 'panel', 'aria-labelledby': 'rep-h' }, h('h2', { id: 'rep-h' }, 'Compliance report'), h('div', { class: 'grid' }, field('From', from), field('To', to)), h('div', { class: 'actions' }, show), frameBox);
  const bFrom = h('input', { name: 'from', type: 'datetime-local', value: from.value, required: true });
  const bTo = h('input', { name: 'to', type: 'datetime-local', value: to.value, required: true });
  const policy = h('textarea', { name: 'policy', rows: 8, spellcheck: 'false' });
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run backtest');
  const out = h('div', { 'aria-live': 'polite' });
  const backForm = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'bt-h' },
    h('h2', { id: 'bt-h' }, 'Policy backtest'),
    h('div', { class: 'grid' }, field('From', bFrom), field('To', bTo)),
    field('Proposed policy (YAML: any of rules, default, sensitive, limits, approvals)', policy, 'the period’s statements are decided again under it; nothing runs'),
    h('div', { class: 'actions' }, run),
    out,
  );
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Reports')), reportForm, backForm);

  reportForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ from: new Date(from.value).toISOString(), to: new Date(to.value).toISOString(), format: 'html' });
    // No script and an opaque origin in the frame: the report is shown, it cannot act.
    clear(frameBox, h('iframe', { src: `/api/v1/report?${q.toString()}`, sandbox: '', title: 'Compliance report', referrerpolicy: 'no-referrer' }));
  });

  backForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    run.disabled = true;
    clear(out, h('p', {}, 'Replaying the period…'));
    void post<Backtest>('/api/v1/policy/backtest', { from: new Date(bFrom.value).toISOString(), to: new Date(bTo.value).toISOString(), policy: policy.value })
      .then((b) => {
        const rows: (string | Node)[][] = [];
        for (const [cat, l] of Object.entries(b.changes)) for (const c of l.items) rows.push([cat, fmtTime(c.ts), c.identity, h('code', { class: 'clip' }, c.sql), h('span', {}, badge(c.was.action), ` ${c.was.rule} (${c.was.outcome})`), h('span', {}, badge(c.now.action), ` ${c.now.rule}`), c.detail]);
        clear(
          out,
          h('p', {}, `${b.statements} statements read, ${b.replayed} replayed, ${b.unchanged} unchanged, ${b.notReplayable.total} not replayable.`),
          table(['Change', 'Statements'], Object.entries(b.counts).map(([k, v]) => [k, String(v)]), 'What would change'),
          rows.length ? h('div', { class: 'scroll' }, table(['Change', 'Time', 'Identity', 'Statement', 'Was', 'Would be', 'Why'], rows, 'Statements whose outcome would change')) : h('p', { class: 'muted' }, 'No statement of the period would be decided differently.'),
          b.notes.length ? h('ul', {}, b.notes.map((n) => h('li', { class: 'muted' }, n))) : null,
        );
      })
      .catch((e: unknown) => clear(out, h('p', { class: 'error' }, e instanceof ApiError ? e.message : String(e))))
      .finally(() => (run.disabled = false));
  });
  void ctx;
  return { stop() {} };
}
