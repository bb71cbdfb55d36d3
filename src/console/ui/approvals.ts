import { ApiError, get, post } from './api.js';
import { badge, clear, fmtTime, h, select, field } from './dom.js';
import type { Ctx, Page } from './page.js';
import type { Approval } from './types.js';

/**
 * The approvals inbox: every request the caller may see (GET /api/v1/approvals, the API's own
 * visibility rule), the full statement (`?full=true`: no silent truncation), parameters as the
 * audit records them (masked where sensitive), and approve / deny with a reason. Quorum,
 * self-approval and who may decide are the API's checks; the page shows its answer.
 */
export function approvalsPage(ctx: Ctx, root: HTMLElement): Page {
  const status = select('status', [['pending', 'pending'], ['approved', 'approved'], ['denied', 'denied'], ['expired', 'expired'], ['cancelled', 'cancelled'], ['used', 'used'], ['', 'all']], sessionStorage.getItem('warden.approvals.status') ?? 'pending');
  const list = h('div', { class: 'approvals', 'aria-busy': 'true' });
  const count = h('span', { class: 'muted' });
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Approvals'), count), h('div', { class: 'toolbar' }, field('Show', status)), list);
  const full = new Map<string, Approval>();
  let shown = '';
  let stopped = false;
  let timer: number | undefined;
  /** Cards being decided keep their place until the answer. */
  const busy = new Set<string>();

  const detail = async (r: Approval): Promise<Approval> => {
    const cached = full.get(r.id);
    if (cached && cached.status === r.status && cached.decisions.length === r.decisions.length) return cached;
    const f = r.sqlTruncated || (r.params ?? []).some((p) => p !== null && p.includes('…(')) ? await get<Approval>(`/api/v1/approvals/${encodeURIComponent(r.id)}?full=true`) : r;
    full.set(r.id, f);
    return f;
  };

  const decide = async (r: Approval, decision: 'approve' | 'deny', reason: HTMLTextAreaElement, out: HTMLElement, buttons: HTMLButtonElement[]): Promise<void> => {
    const text = reason.value.trim();
    if (text === '') {
      out.textContent = 'A reason is required (it is recorded in the audit log).';
      out.className = 'error';
      reason.focus();
      return;
    }
    busy.add(r.id);
    for (const b of buttons) b.disabled = true;
    try {
      const after = await post<Approval>(`/api/v1/approvals/${encodeURIComponent(r.id)}/${decision}`, { reason: text });
      const msg =
        after.status === 'pending'
          ? `Your ${decision === 'approve' ? 'approval' : 'denial'} of ${r.id} is recorded; it needs more approvers (quorum).`
          : `${r.id} is ${after.status}${after.status === 'approved' && r.mode === 'hold' ? ': the held statement is released' : ''}.`;
      out.textContent = msg;
      out.className = 'ok';
      ctx.status(msg);
    } catch (e) {
      out.textContent = e instanceof ApiError ? e.message : String(e);
      out.className = 'error';
      for (const b of buttons) b.disabled = false;
    } finally {
      busy.delete(r.id);
      void refresh();
    }
  };

  const cardOf = (r: Approval): HTMLElement => {
    const canDecide = r.status === 'pending' && r.identity !== ctx.me.identity && r.onBehalfOf !== ctx.me.identity && r.rules.some((x) => x.groups.some((g) => ctx.me.groups.includes(g)));
    const reason = h('textarea', { name: 'reason', rows: 2, maxlength: 1000, id: `reason-${r.id}` });
    const out = h('p', { role: 'status', 'aria-live': 'polite' });
    const approve = h('button', { type: 'button', class: 'primary', 'data-action': 'approve' }, 'Approve');
    const deny = h('button', { type: 'button', class: 'danger', 'data-action': 'deny' }, 'Deny');
    approve.addEventListener('click', () => void decide(r, 'approve', reason, out, [approve, deny]));
    deny.addEventListener('click', () => void decide(r, 'deny', reason, out, [approve, deny]));
    // A limit that holds a statement (max_estimated_rows, first_touch) asks as `limit:NAME`, its reason the estimate.
    const rules = r.rules.filter((x) => !x.rule.startsWith('limit:'));
    const limits = r.rules.filter((x) => x.rule.startsWith('limit:'));
    const ruleItem = (x: Approval['rules'][number]): HTMLElement =>
      h('li', {}, h('strong', {}, x.rule), x.reason ? ` — ${x.reason}` : '', ` (approvers: ${x.groups.join(', ')}; ${x.count} needed${x.remember ? '; remembered once approved' : ''})`);
    const approvals = r.decisions.filter((d) => d.decision === 'approve').length;
    const needed = Math.max(...r.rules.map((x) => x.count), 1);
    return h(
      'article',
      { class: 'approval', 'data-id': r.id, 'aria-labelledby': `ap-${r.id}` },
      h('header', {}, h('h2', { id: `ap-${r.id}` }, `${r.identity}${r.onBehalfOf ? ` on behalf of ${r.onBehalfOf}` : ''} on ${r.database}${r.environment ? ` (${r.environment})` : ''}`), badge(r.status)),
      h(
        'dl',
        { class: 'meta' },
        h('dt', {}, 'Request'),
        h('dd', {}, h('code', {}, r.id), ` · ${r.mode} mode · asked ${fmtTime(r.createdAt)} · expires ${fmtTime(r.expiresAt)}`),
        h('dt', {}, 'Rules'),
        h('dd', {}, rules.length ? h('ul', {}, rules.map(ruleItem)) : '—'),
        limits.length ? [h('dt', {}, 'Limits'), h('dd', {}, h('ul', {}, limits.map(ruleItem)))] : null,
        h('dt', {}, 'Tables'),
        h('dd', {}, r.tables.length ? r.tables.join(', ') : '—', r.classes.length ? ` · ${r.classes.join(', ')}` : ''),
        h('dt', {}, 'Intent'),
        h('dd', {}, Object.keys(r.intent).length ? Object.entries(r.intent).map(([k, v]) => `${k}=${v}`).join(', ') : 'none given'),
        h('dt', {}, 'Approvals'),
        h('dd', {}, `${approvals} of ${needed}`, r.decisions.length ? h('ul', {}, r.decisions.map((d) => h('li', {}, `${d.approver} ${d.decision === 'approve' ? 'approved' : 'denied'} at ${fmtTime(d.at)}: ${d.reason}`))) : ''),
      ),
      h('h3', {}, `Statement (${r.sqlLength} characters, SHA-256 ${r.sqlSha256.slice(0, 16)}…)`),
      h('pre', { class: 'sql', tabindex: '0', 'aria-label': 'Statement text' }, r.sql),
      r.params && r.params.length
        ? h('div', {}, h('h3', {}, 'Parameters (as the audit records them)'), h('ul', { class: 'params plain' }, r.params.map((p, i) => h('li', {}, h('span', { class: 'muted' }, `$${i + 1} = `), p === null ? h('em', {}, 'NULL') : h('code', {}, p)))))
        : null,
      canDecide ? h('div', { class: 'decide' }, field('Reason', reason), h('div', { class: 'actions' }, approve, deny)) : r.status === 'pending' ? h('p', { class: 'muted' }, r.identity === ctx.me.identity || r.onBehalfOf === ctx.me.identity ? 'Your own request: someone else must decide.' : 'You are not an approver of its rules.') : null,
      out,
    );
  };

  const refresh = async (): Promise<void> => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    try {
      const q = status.value ? `?status=${encodeURIComponent(status.value)}&limit=200` : '?limit=200';
      const { requests } = await get<{ requests: Approval[] }>(`/api/v1/approvals${q}`);
      const key = JSON.stringify(requests.map((r) => [r.id, r.status, r.decisions.length]));
      if (key !== shown && busy.size === 0) {
        shown = key;
        // Keep what an approver is typing: a card whose request did not change stays as it is.
        const version = (r: Approval): string => `${r.id}:${r.status}:${r.decisions.length}`;
        const old = new Map([...list.querySelectorAll<HTMLElement>('article.approval')].map((el) => [el.dataset.version!, el]));
        const cards = await Promise.all(
          requests.map(async (r) => {
            const kept = old.get(version(r));
            if (kept) return kept;
            const card = cardOf(await detail(r));
            card.dataset.version = version(r);
            return card;
          }),
        );
        if (stopped) return;
        clear(list, cards.length ? cards : h('p', { class: 'empty' }, status.value === 'pending' ? 'Nothing waits for an approval.' : 'No requests.'));
        count.textContent = `${requests.length} ${status.value || 'in all'}`;
      }
      list.setAttribute('aria-busy', 'false');
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) clear(list, h('p', { class: 'error' }, (e as Error).message));
    }
    if (!stopped) timer = window.setTimeout(() => void refresh(), 1000);
  };
  status.addEventListener('change', () => {
    sessionStorage.setItem('warden.approvals.status', status.value);
    shown = '';
    void refresh();
  });
  void refresh();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
