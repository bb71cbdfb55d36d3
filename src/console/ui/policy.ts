import { ApiError, get, post } from './api.js';
import { badge, clear, field, h, select, table } from './dom.js';
import type { Ctx, Page } from './page.js';

interface Rule {
  name: string;
  match: Record<string, unknown>;
  action: string;
  reason?: string;
  approvers?: { groups: string[]; count: number };
  strict?: boolean;
}
interface Limit {
  name: string;
  match: Record<string, unknown>;
  onExceed: string;
  [k: string]: unknown;
}
interface PolicyView {
  source: string;
  hash: string;
  default: string;
  rules: Rule[];
  limits: Limit[];
  databases: { name: string; environment: string | null; upstream: string }[];
  identities: { name: string; kind: string; groups: string[]; role: string | null }[];
  sensitive: { columns: Record<string, string>; detect: string[]; maskers: Record<string, string> } | null;
  approvals: { mode: string; timeout_ms: number; webhook: string | null } | null;
  admin: { operators: string[]; auditors: string[]; console_groups: string[] };
}
interface Explained {
  identity: string;
  database: string;
  action: string;
  reason: string;
  catalog?: string;
  text: string;
}

const matchText = (m: Record<string, unknown>): string =>
  Object.entries(m)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join('; ') || 'everything';

const LIMIT_KEYS: [string, string][] = [
  ['maxRows', 'rows per statement'],
  ['maxBytes', 'bytes per statement'],
  ['rowsPerHour', 'rows per hour'],
  ['statementsPerMinute', 'statements per minute'],
  ['maxEstimatedRows', 'estimated rows'],
];

/** The loaded rules and limits (GET /api/v1/policy) and a dry run backed by `policy explain` (POST /api/v1/policy/explain). */
export function policyPage(_ctx: Ctx, root: HTMLElement): Page {
  const who = h('select', { name: 'identity' });
  const db = h('select', { name: 'database' });
  const sql = h('textarea', { name: 'sql', rows: 4, spellcheck: 'false', required: true });
  const intent = h('input', { name: 'intent', placeholder: 'ticket=OPS-12', autocomplete: 'off' });
  const run = h('button', { type: 'submit', class: 'primary' }, 'Explain');
  const out = h('div', { class: 'explain', 'aria-live': 'polite' });
  const dry = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'dry-h' },
    h('h2', { id: 'dry-h' }, 'Dry run: what happens if…'),
    h('div', { class: 'grid' }, field('Identity', who), field('Database', db), field('Intent', intent, 'key=value, comma-separated (as warden.* options give it)')),
    field('Statement', sql, 'nothing runs: the statement is analysed and decided as the running Warden would'),
    h('div', { class: 'actions' }, run),
    out,
  );
  const view = h('div', {}, h('p', {}, 'Loading…'));
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Policy')), dry, view);

  dry.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const intents: Record<string, string> = {};
    for (const part of intent.value.split(',')) {
      const eq = part.indexOf('=');
      if (eq > 0) intents[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    }
    run.disabled = true;
    clear(out, h('p', {}, 'Explaining…'));
    void post<Explained>('/api/v1/policy/explain', { identity: who.value, database: db.value, sql: sql.value, intent: intents })
      .then((e) =>
        clear(
          out,
          h('p', { class: 'verdict' }, badge(e.action), ` ${e.identity} on ${e.database}: ${e.reason}`),
          e.catalog ? h('p', { class: 'muted' }, `Catalog: ${e.catalog}`) : null,
          h('pre', { class: 'json', tabindex: '0', 'aria-label': 'Explanation' }, e.text),
        ),
      )
      .catch((e: unknown) => clear(out, h('p', { class: 'error' }, e instanceof ApiError ? e.message : String(e))))
      .finally(() => (run.disabled = false));
  });

  void get<PolicyView>('/api/v1/policy')
    .then((p) => {
      clear(who, p.identities.map((i) => h('option', { value: i.name }, `${i.name} (${i.kind})`)));
      clear(db, p.databases.map((d) => h('option', { value: d.name }, `${d.name}${d.environment ? ` (${d.environment})` : ''}`)));
      clear(
        view,
        h('p', { class: 'muted' }, `From ${p.source} (SHA-256 ${p.hash.slice(0, 16)}…). Default for statements no rule matches: `, badge(p.default)),
        h('section', { class: 'panel' }, h('h2', {}, `Rules (${p.rules.length}, first match decides)`), h('div', { class: 'scroll' }, table(['#', 'Rule', 'Action', 'Matches', 'Reason', 'Approvers'], p.rules.map((r, i) => [String(i + 1), h('strong', {}, r.name), badge(r.action), matchText(r.match), r.reason ?? '—', r.approvers ? `${r.approvers.count} of ${r.approvers.groups.join(', ')}` : '—'])))),
        h(
          'section',
          { class: 'panel' },
          h('h2', {}, `Limits (${p.limits.length})`),
          p.limits.length
            ? h('div', { class: 'scroll' }, table(['Limit', 'Matches', 'How much', 'When exceeded'], p.limits.map((l) => [h('strong', {}, l.name), matchText(l.match), LIMIT_KEYS.filter(([k]) => l[k] !== undefined).map(([k, label]) => `${String(l[k])} ${label}`).join('; ') + (l.firstTouch ? `${LIMIT_KEYS.some(([k]) => l[k] !== undefined) ? '; ' : ''}first touch: ${String(l.firstTouch)}` : ''), l.onExceed])))
            : h('p', { class: 'muted' }, 'No limits.'),
        ),
        p.sensitive && Object.keys(p.sensitive.columns).length
          ? h('section', { class: 'panel' }, h('h2', {}, 'Sensitive columns'), table(['Column pattern', 'Type', 'Masker'], Object.entries(p.sensitive.columns).map(([c, t]) => [c, t, p.sensitive!.maskers[t] ?? 'default'])))
          : null,
        h(
          'section',
          { class: 'panel' },
          h('h2', {}, 'Databases, identities and access'),
          table(['Database', 'Environment', 'Upstream (password hidden)'], p.databases.map((d) => [d.name, d.environment ?? '—', d.upstream])),
          table(['Identity', 'Kind', 'Groups', 'Role'], p.identities.map((i) => [i.name, i.kind, i.groups.join(', ') || '—', i.role ?? '—'])),
          h('p', {}, `Operators: ${p.admin.operators.join(', ') || 'none'} · auditors: ${p.admin.auditors.join(', ') || 'none'} · console: ${p.admin.console_groups.join(', ') || 'none'}`, p.approvals ? ` · approvals: ${p.approvals.mode} mode, ${p.approvals.timeout_ms / 1000} s timeout` : ''),
        ),
      );
    })
    .catch((e: unknown) => clear(view, h('p', { class: 'error' }, e instanceof ApiError ? e.message : String(e))));
  return { stop() {} };
}
