import { ApiError, get, post } from './api.js';
import { askReason } from './dialog.js';
import { badge, clear, fmtMs, fmtTime, h } from './dom.js';
import type { Ctx, Page } from './page.js';
import type { Replay, SessionRow } from './types.js';
import { timeline } from './timeline.js';

interface Suspension {
  identity: string;
  reason: string;
  suspended_by: string;
  suspended_at: string;
}

/** Live sessions (GET /api/v1/sessions, every second), a session's statements as a timeline, kill, suspend and resume. */
export function sessionsPage(ctx: Ctx, root: HTMLElement, arg?: string): Page {
  const body = h('tbody', {});
  const tableEl = h(
    'table',
    { class: 'sessions' },
    h('caption', { class: 'sr-only' }, 'Sessions connected to this Warden instance'),
    h('thead', {}, h('tr', {}, ['Identity', 'Database', 'Client', 'Started', 'State', 'Statement', 'Actions'].map((x) => h('th', { scope: 'col' }, x)))),
    body,
  );
  const suspList = h('div', {});
  const detail = h('section', { class: 'panel', 'aria-labelledby': 'tl-h', hidden: true }, h('h2', { id: 'tl-h' }, 'Session timeline'));
  const detailBody = h('div', {});
  detail.append(detailBody);
  const count = h('span', { class: 'muted' });
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Sessions'), count),
    h('div', { class: 'scroll' }, tableEl),
    detail,
    h('section', { class: 'panel', 'aria-labelledby': 'susp-h' }, h('h2', { id: 'susp-h' }, 'Suspended identities'), suspList),
  );
  let stopped = false;
  let timer: number | undefined;
  let shown = '';

  const act = async (what: string, path: string, reason: string | null): Promise<void> => {
    if (reason === null) return;
    try {
      await post(path, { reason });
      ctx.status(what);
    } catch (e) {
      ctx.status(e instanceof ApiError ? e.message : String(e), 'error');
    }
    shown = '';
    void refresh();
  };

  const openTimeline = async (id: string): Promise<void> => {
    detail.hidden = false;
    clear(detailBody, h('p', {}, 'Loading…'));
    try {
      const r = await get<Replay>(`/api/v1/audit/sessions/${encodeURIComponent(id)}/replay`);
      const again = h('button', { type: 'button', class: 'small' }, 'Refresh');
      again.addEventListener('click', () => void openTimeline(id));
      clear(detailBody, h('p', { class: 'muted' }, `From the audit log, as of ${new Date().toLocaleTimeString()} `, again), timeline(r));
    } catch (e) {
      clear(detailBody, h('p', { class: 'error' }, e instanceof ApiError && e.status === 403 ? `The timeline comes from the audit log: ${e.message}` : (e as Error).message));
    }
    detail.scrollIntoView({ block: 'nearest' });
    (detail.querySelector('h2') as HTMLElement).setAttribute('tabindex', '-1');
    (detail.querySelector('h2') as HTMLElement).focus();
  };

  const row = (s: SessionRow): HTMLTableRowElement => {
    const kill = h('button', { type: 'button', class: 'danger small', 'aria-label': `Kill session ${s.id} of ${s.identity}` }, 'Kill');
    kill.addEventListener('click', () => void askReason(`Kill session of ${s.identity}?`, 'Kill session', {
        danger: true,
        detail: `Session ${s.id} on ${s.database} from ${s.client_address}; ${s.statement ? `its statement (${s.state}) is cancelled: ${s.statement.slice(0, 200)}` : `it is ${s.state}`}. The client gets FATAL 57P01 with your name and reason.`,
      }).then((r) => act(`Session ${s.id} killed.`, `/api/v1/sessions/${encodeURIComponent(s.id)}/kill`, r)));
    const suspend = h('button', { type: 'button', class: 'small', 'aria-label': `Suspend identity ${s.identity}` }, 'Suspend identity');
    suspend.addEventListener('click', () =>
      void askReason(`Suspend ${s.identity}?`, 'Suspend', { danger: true, detail: `All sessions of ${s.identity} end (on every instance sharing the state store) and its logins are refused until an operator resumes it.` }).then((r) =>
        act(`Identity ${s.identity} suspended.`, `/api/v1/identities/${encodeURIComponent(s.identity)}/suspend`, r),
      ),
    );
    const tl = h('button', { type: 'button', class: 'small', 'aria-label': `Timeline of session ${s.id}` }, 'Timeline');
    tl.addEventListener('click', () => void openTimeline(s.id));
    return h(
      'tr',
      { 'data-session': s.id, 'data-identity': s.identity },
      h('td', {}, h('strong', {}, s.identity), ` (${s.kind})`, s.on_behalf_of ? h('div', { class: 'muted' }, `for ${s.on_behalf_of}`) : null),
      h('td', {}, s.database),
      h('td', {}, `${s.client_address}:${s.client_port}`, h('div', { class: 'muted' }, `${s.tls ? 'TLS' : 'no TLS'} · ${s.auth}${s.application_name ? ` · ${s.application_name}` : ''}`)),
      h('td', {}, fmtTime(s.started_at)),
      h('td', {}, badge(s.state, s.state.startsWith('waiting') ? 'held' : s.state.startsWith('active') ? 'active' : 'idle'), s.statement_duration_ms !== null ? h('div', { class: 'muted' }, fmtMs(s.statement_duration_ms)) : null, s.approval_request ? h('div', {}, h('button', { type: 'button', class: 'link', onclick: () => ctx.go('approvals') }, 'approval request')) : null),
      h('td', {}, s.statement ? h('code', { class: 'clip', title: s.statement }, s.statement) : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'row-actions' }, tl, ctx.me.can.operate ? [kill, suspend] : null),
    );
  };

  const refresh = async (): Promise<void> => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    try {
      const [{ sessions }, susp] = await Promise.all([get<{ sessions: SessionRow[] }>('/api/v1/sessions'), get<{ suspensions: Suspension[] }>('/api/v1/suspensions').catch(() => ({ suspensions: [] as Suspension[] }))]);
      const key = JSON.stringify([sessions, susp.suspensions].map((x) => x)).replace(/"statement_duration_ms":\d+/g, '');
      if (key !== shown && !stopped) {
        shown = key;
        const focused = document.activeElement?.getAttribute('aria-label');
        clear(body, sessions.length ? sessions.map(row) : h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No sessions.')));
        if (focused) ([...body.querySelectorAll('button')].find((b) => b.getAttribute('aria-label') === focused) as HTMLElement | undefined)?.focus();
        count.textContent = `${sessions.length} connected`;
        clear(
          suspList,
          susp.suspensions.length
            ? h(
                'ul',
                { class: 'plain' },
                susp.suspensions.map((x) => {
                  const resume = h('button', { type: 'button', class: 'small', 'aria-label': `Resume identity ${x.identity}` }, 'Resume');
                  resume.addEventListener('click', () => void act(`Identity ${x.identity} resumed.`, `/api/v1/identities/${encodeURIComponent(x.identity)}/resume`, ''));
                  return h('li', { 'data-identity': x.identity }, h('strong', {}, x.identity), ` suspended by ${x.suspended_by} at ${fmtTime(x.suspended_at)}: ${x.reason} `, ctx.me.can.operate ? resume : null);
                }),
              )
            : h('p', { class: 'muted' }, 'No identity is suspended.'),
        );
      }
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) clear(body, h('tr', {}, h('td', { colspan: 7, class: 'error' }, (e as Error).message)));
    }
    if (!stopped) timer = window.setTimeout(() => void refresh(), 1000);
  };
  void refresh();
  if (arg) void openTimeline(arg);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
