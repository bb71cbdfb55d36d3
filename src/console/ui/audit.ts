import { ApiError, get, post, request } from './api.js';
import { badge, clear, field, fmtTime, h, select } from './dom.js';
import type { Ctx, Page } from './page.js';
import type { AuditRecord, Replay } from './types.js';
import { timeline } from './timeline.js';

const TYPES = ['', 'statement.', 'statement.begin', 'statement.end', 'statement.refused', 'session.start', 'session.end', 'session.killed', 'login.failed', 'identity.suspended', 'identity.resumed', 'approval.', 'schema.change', 'config.reloaded', 'console.login', 'console.logout'];
const DECISIONS: [string, string][] = [['', 'any'], ['allow', 'allow'], ['mask', 'mask'], ['deny', 'deny'], ['approve', 'approve']];

interface Chain {
  record: AuditRecord;
  position: { instance: string; seq: number; head_seq: number | null; behind_head: number | null };
  hash_ok: boolean;
  previous: { seq: number; hash: string; links: boolean | null } | null;
  next: { seq: number; prev: string; links: boolean | null } | null;
  checkpoint: { seq: number; ts: string; hash: string; key_id: string } | null;
  verified_to_checkpoint: { ok: boolean; records: number; problems: { kind: string; message: string }[]; signature: string } | null;
  ok: boolean;
  note?: string;
}

/** ISO time from a datetime-local input (the browser's zone), or '' when empty. */
function iso(v: string): string {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? v : d.toISOString();
}

/**
 * The audit explorer: search (POST /api/v1/audit/search: the filters, free text included, travel
 * in the body), a record's chain position and verification, a session's replay, export.
 */
export function auditPage(ctx: Ctx, root: HTMLElement): Page {
  const saved = JSON.parse(sessionStorage.getItem('warden.audit') ?? '{}') as Record<string, string>;
  const identity = h('input', { name: 'identity', value: saved.identity ?? '', autocomplete: 'off' });
  const type = select('type', TYPES.map((t) => [t, t === '' ? 'any' : t.endsWith('.') ? `${t}*` : t] as [string, string]), saved.type ?? '');
  const tableIn = h('input', { name: 'table', value: saved.table ?? '', placeholder: 'schema.table', autocomplete: 'off' });
  const action = h('input', { name: 'action', value: saved.action ?? '', placeholder: 'write, update, ddl…', autocomplete: 'off' });
  const decision = select('decision', DECISIONS, saved.decision ?? '');
  const since = h('input', { name: 'since', type: 'datetime-local', step: 1, value: saved.since ?? '' });
  const until = h('input', { name: 'until', type: 'datetime-local', step: 1, value: saved.until ?? '' });
  const text = h('input', { name: 'text', type: 'search', value: '', autocomplete: 'off' });
  const limit = select('limit', ['50', '100', '200', '500', '1000'], saved.limit ?? '100');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Search');
  const exportJ = h('button', { type: 'button' }, 'Export JSONL');
  const exportC = h('button', { type: 'button' }, 'Export CSV');
  const form = h(
    'form',
    { class: 'search', 'aria-label': 'Search the audit log' },
    h(
      'div',
      { class: 'grid' },
      field('Identity', identity),
      field('Event kind', type),
      field('Table', tableIn),
      field('Action (class or kind)', action),
      field('Decision', decision),
      field('From', since),
      field('Until', until),
      field('Free text', text, 'matched in the records as stored (masked values stay masked)'),
      field('At most', limit),
    ),
    h('div', { class: 'actions' }, submit, exportJ, exportC),
  );
  const results = h('div', { class: 'results', 'aria-live': 'polite' });
  const detail = h('section', { class: 'panel', hidden: true, 'aria-labelledby': 'detail-h' }, h('h2', { id: 'detail-h', tabindex: '-1' }, 'Record'));
  const detailBody = h('div', {});
  detail.append(detailBody);
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Audit')), form, results, detail);

  const body = (): Record<string, unknown> => {
    const b: Record<string, unknown> = {
      identity: identity.value.trim(),
      type: type.value,
      table: tableIn.value.trim(),
      action: action.value.trim(),
      decision: decision.value,
      since: iso(since.value),
      until: iso(until.value),
      text: text.value,
      limit: Number(limit.value),
    };
    for (const k of Object.keys(b)) if (b[k] === '') delete b[k];
    return b;
  };

  const showDetail = (content: Node, title: string): void => {
    detail.hidden = false;
    (detail.querySelector('h2') as HTMLElement).textContent = title;
    clear(detailBody, content);
    (detail.querySelector('h2') as HTMLElement).focus();
  };

  const openReplay = async (session: string): Promise<void> => {
    try {
      showDetail(h('p', {}, 'Loading…'), `Session replay ${session}`);
      showDetail(timeline(await get<Replay>(`/api/v1/audit/sessions/${encodeURIComponent(session)}/replay`)), `Session replay ${session}`);
    } catch (e) {
      showDetail(h('p', { class: 'error' }, (e as Error).message), `Session replay ${session}`);
    }
  };

  const yes = (b: boolean | null | undefined, what: string): HTMLElement => badge(b === null || b === undefined ? `${what}: n/a` : b ? `${what}: ok` : `${what}: BROKEN`, b === false ? 'refused' : b ? 'allowed' : 'idle');

  const openChain = async (r: AuditRecord): Promise<void> => {
    const title = `Record ${r.instance} #${r.seq}`;
    showDetail(h('p', {}, 'Verifying…'), title);
    try {
      const c = await get<Chain>(`/api/v1/audit/records/${encodeURIComponent(r.instance)}/${r.seq}/chain`);
      showDetail(
        h(
          'div',
          { class: 'chain' },
          h('p', {}, badge(c.ok ? 'verified' : 'NOT VERIFIED', c.ok ? 'allowed' : 'refused'), ` seq ${c.position.seq} of ${c.position.instance}`, c.position.head_seq !== null ? ` · head is seq ${c.position.head_seq} (${c.position.behind_head} later)` : ''),
          h('ul', { class: 'plain' }, h('li', {}, yes(c.hash_ok, 'hash')), h('li', {}, yes(c.previous?.links, `link to #${c.previous?.seq ?? c.position.seq - 1}`)), h('li', {}, yes(c.next?.links, c.next ? `link from #${c.next.seq}` : 'next record'))),
          c.checkpoint
            ? h('p', {}, `Signed checkpoint at seq ${c.checkpoint.seq} (${fmtTime(c.checkpoint.ts)}, key ${c.checkpoint.key_id}): `, c.verified_to_checkpoint ? [yes(c.verified_to_checkpoint.ok, `${c.verified_to_checkpoint.records} ${c.verified_to_checkpoint.records === 1 ? "record" : "records"} to it`), ` signature ${c.verified_to_checkpoint.signature}`] : '')
            : null,
          c.note ? h('p', { class: 'muted' }, c.note) : null,
          c.verified_to_checkpoint?.problems.length ? h('ul', {}, c.verified_to_checkpoint.problems.map((p) => h('li', { class: 'error' }, `${p.kind}: ${p.message}`))) : null,
          h('dl', { class: 'meta' }, h('dt', {}, 'hash'), h('dd', {}, h('code', {}, c.record.hash)), h('dt', {}, 'prev'), h('dd', {}, h('code', {}, c.record.prev))),
          h('pre', { class: 'json', tabindex: '0', 'aria-label': 'Record data' }, JSON.stringify(c.record, null, 2)),
        ),
        title,
      );
    } catch (e) {
      showDetail(h('p', { class: 'error' }, (e as Error).message), title);
    }
  };

  const summary = (r: AuditRecord): string => {
    const d = r.data;
    if (typeof d.sql === 'string') return d.sql;
    if (typeof d.reason === 'string') return d.reason;
    if (typeof d.error === 'string') return d.error;
    return JSON.stringify(d).slice(0, 200);
  };

  const search = async (): Promise<void> => {
    sessionStorage.setItem('warden.audit', JSON.stringify({ identity: identity.value, type: type.value, table: tableIn.value, action: action.value, decision: decision.value, since: since.value, until: until.value, limit: limit.value }));
    submit.disabled = true;
    clear(results, h('p', {}, 'Searching…'));
    try {
      const r = await post<{ records: AuditRecord[]; count: number; note?: string }>('/api/v1/audit/search', body());
      const rows = r.records.map((rec) => {
        const d = rec.data;
        const dec = (d.decision ?? null) as { action?: string; rule?: string } | null;
        const session = typeof d.session === 'string' ? d.session : null;
        const verify = h('button', { type: 'button', class: 'small', 'aria-label': `Chain position and verification of record ${rec.seq}` }, 'Verify');
        verify.addEventListener('click', () => void openChain(rec));
        const replay = session ? h('button', { type: 'button', class: 'small', 'aria-label': `Replay session ${session}` }, 'Replay') : null;
        replay?.addEventListener('click', () => void openReplay(session!));
        return h(
          'tr',
          { 'data-seq': rec.seq },
          h('td', {}, fmtTime(rec.ts)),
          h('td', {}, rec.type),
          h('td', {}, typeof d.identity === 'string' ? d.identity : '—'),
          h('td', {}, dec?.action ? badge(dec.action) : rec.type === 'statement.refused' ? badge('refused') : '—', dec?.rule ? h('div', { class: 'muted' }, dec.rule) : null),
          h('td', {}, h('code', { class: 'clip' }, summary(rec))),
          h('td', { class: 'row-actions' }, verify, replay),
        );
      });
      clear(
        results,
        h('p', { class: 'muted' }, `${r.count} records${r.note ? ` — ${r.note}` : ''}`),
        h(
          'div',
          { class: 'scroll' },
          h(
            'table',
            { class: 'records' },
            h('caption', { class: 'sr-only' }, 'Audit records'),
            h('thead', {}, h('tr', {}, ['Time', 'Event', 'Identity', 'Decision', 'Statement or detail', 'Actions'].map((x) => h('th', { scope: 'col' }, x)))),
            h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No records match.'))),
          ),
        ),
      );
    } catch (e) {
      clear(results, h('p', { class: 'error' }, e instanceof ApiError ? e.message : String(e)));
    } finally {
      submit.disabled = false;
    }
  };

  const exportAs = async (format: 'jsonl' | 'csv'): Promise<void> => {
    try {
      const { limit: _l, ...b } = body();
      const res = await request('POST', '/api/v1/audit/export', { ...b, format });
      const blob = await res.blob();
      const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? `warden-audit.${format}`;
      const a = h('a', { href: URL.createObjectURL(blob), download: name });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      ctx.status(`Exported ${res.headers.get('x-warden-records') ?? '?'} records as ${name}.`);
    } catch (e) {
      ctx.status(e instanceof ApiError ? e.message : String(e), 'error');
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void search();
  });
  exportJ.addEventListener('click', () => void exportAs('jsonl'));
  exportC.addEventListener('click', () => void exportAs('csv'));
  if (ctx.me.can.audit) void search();
  else clear(results, h('p', { class: 'muted' }, 'Reading the audit log needs membership of a group in admin.auditors.'));
  return { stop() {} };
}
