import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip, Filler } from 'chart.js';
import { get } from './api.js';
import { badge, clear, fmtTime, h } from './dom.js';
import type { Ctx, Page } from './page.js';
import type { Decision, Stats } from './types.js';

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, BarController, BarElement, Legend, Tooltip, Filler);

const DECISIONS: readonly Decision[] = ['allowed', 'masked', 'refused', 'held', 'halted'];
/** Colours that keep 3:1 against white and differ for the common colour-vision deficiencies; the legend names each. */
const COLOURS: Record<Decision, string> = { allowed: '#1b7f3b', masked: '#6a3fb5', refused: '#c62828', held: '#b35900', halted: '#1f5fa8' };
const POINTS = 120;

export function overviewPage(ctx: Ctx, root: HTMLElement): Page {
  const cards = h('div', { class: 'cards' });
  const rateCanvas = h('canvas', { role: 'img', 'aria-label': 'Statements per second by decision over the last two minutes' });
  const idCanvas = h('canvas', { role: 'img', 'aria-label': 'Identities with the most statements in the last five minutes' });
  const tableCanvas = h('canvas', { role: 'img', 'aria-label': 'Tables touched most in the last five minutes' });
  const idEmpty = h('p', { class: 'chart-empty', hidden: true }, 'No statements in the last five minutes.');
  const tableEmpty = h('p', { class: 'chart-empty', hidden: true }, 'No table touched in the last five minutes.');
  const rateSummary = h('p', { class: 'sr-only', 'aria-live': 'off' });
  const topNote = h('p', { class: 'muted' });
  const live = h('span', { class: 'live' }, 'connecting…');
  const verifyOut = h('div', { class: 'verify' });
  const verifyBtn = ctx.me.can.audit ? h('button', { type: 'button' }, 'Verify the audit chain now') : null;
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Overview'), live),
    cards,
    h('section', { class: 'panel', 'aria-labelledby': 'rate-h' }, h('h2', { id: 'rate-h' }, 'Statements per second by decision'), h('div', { class: 'chart chart-wide' }, rateCanvas), rateSummary),
    h(
      'div',
      { class: 'two' },
      h('section', { class: 'panel', 'aria-labelledby': 'topid-h' }, h('h2', { id: 'topid-h' }, 'Top identities (5 min)'), h('div', { class: 'chart' }, idCanvas, idEmpty)),
      h('section', { class: 'panel', 'aria-labelledby': 'toptb-h' }, h('h2', { id: 'toptb-h' }, 'Top tables (5 min)'), h('div', { class: 'chart' }, tableCanvas, tableEmpty)),
    ),
    topNote,
  );
  if (verifyBtn) root.append(h('section', { class: 'panel', 'aria-labelledby': 'verify-h' }, h('h2', { id: 'verify-h' }, 'Audit chain'), verifyBtn, verifyOut));

  const labels: string[] = [];
  const series: Record<Decision, number[]> = { allowed: [], masked: [], refused: [], held: [], halted: [] };
  const rate = new Chart(rateCanvas, {
    type: 'line',
    data: { labels, datasets: DECISIONS.map((d) => ({ label: d, data: series[d], borderColor: COLOURS[d], backgroundColor: COLOURS[d], borderWidth: 2, pointRadius: 0, tension: 0 })) },
    options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true, title: { display: true, text: 'statements / s' } }, x: { ticks: { maxTicksLimit: 8 } } }, plugins: { legend: { position: 'bottom' } } },
  });
  const bar = (canvas: HTMLCanvasElement, colour: string): Chart<'bar'> =>
    new Chart(canvas, {
      type: 'bar',
      data: { labels: [], datasets: [{ label: 'statements', data: [], backgroundColor: colour, maxBarThickness: 28 }] },
      options: { indexAxis: 'y', animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  const ids = bar(idCanvas, '#1f5fa8');
  const tables = bar(tableCanvas, '#6a3fb5');

  const card = (title: string, value: string | number, extra?: Node | string | null, kind?: string): HTMLElement =>
    h('div', { class: `card ${kind ?? ''}` }, h('div', { class: 'card-title' }, title), h('div', { class: 'card-value' }, String(value)), extra ? h('div', { class: 'card-extra' }, extra) : null);

  const show = (s: Stats): void => {
    const a = s.audit;
    const pending = s.approvals_pending ?? 0;
    clear(
      cards,
      card('Active sessions', s.sessions, s.connections ? Object.entries(s.connections).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(' · ') || 'none' : null),
      card('Pending approvals', s.approvals_pending ?? '—', pending > 0 ? h('button', { type: 'button', class: 'link', onclick: () => ctx.go('approvals') }, 'Open the inbox') : 'nothing waits', pending > 0 ? 'attention' : ''),
      card('Audit', a ? (a.healthy ? 'healthy' : 'FAILING') : 'off', a ? `backlog ${a.backlog} · written ${a.written} · failures ${a.failures} · lost ${a.lost}` : 'no audit log configured', a && !a.healthy ? 'bad' : ''),
      card(
        'Audit chain',
        a ? `seq ${a.head.seq}` : '—',
        a ? `${a.instance} · head ${a.head.hash.slice(0, 12)}… · ${a.last_checkpoint ? `signed checkpoint at seq ${a.last_checkpoint.seq} (${fmtTime(a.last_checkpoint.ts)})` : 'no signed checkpoint yet'}` : null,
      ),
      card('Since start', DECISIONS.map((d) => s.totals[d]).reduce((x, y) => x + y, 0), h('span', {}, DECISIONS.map((d) => [badge(d), ` ${s.totals[d]} `]))),
    );
    labels.push(new Date(s.at).toLocaleTimeString());
    for (const d of DECISIONS) series[d].push(Number(s.per_second[d].toFixed(2)));
    if (labels.length > POINTS) {
      labels.shift();
      for (const d of DECISIONS) series[d].shift();
    }
    rate.update('none');
    rateSummary.textContent = `Now: ${DECISIONS.map((d) => `${d} ${s.per_second[d].toFixed(1)}/s`).join(', ')}`;
    if (s.top) {
      ids.data.labels = s.top.identities.map((x) => x.name);
      ids.data.datasets[0]!.data = s.top.identities.map((x) => x.statements);
      tables.data.labels = s.top.tables.map((x) => x.name);
      tables.data.datasets[0]!.data = s.top.tables.map((x) => x.statements);
      ids.update('none');
      tables.update('none');
      idEmpty.hidden = s.top.identities.length > 0;
      tableEmpty.hidden = s.top.tables.length > 0;
      topNote.textContent = `Top lists from the last ${s.top.window_s / 60} minutes of the audit log (${s.top.scanned} statements read).`;
    } else topNote.textContent = 'The top identities and tables come from the audit log: they are shown to members of admin.auditors and admin.operators.';
  };

  const es = new EventSource('/api/v1/stats/stream');
  es.addEventListener('stats', (ev) => {
    live.textContent = 'live';
    live.className = 'live on';
    show(JSON.parse((ev as MessageEvent<string>).data) as Stats);
  });
  es.addEventListener('ended', () => {
    es.close();
    live.textContent = 'ended';
    void get('/console/api/session').catch(() => undefined);
  });
  es.onerror = () => {
    live.textContent = 'reconnecting…';
    live.className = 'live';
  };

  verifyBtn?.addEventListener('click', () => {
    verifyBtn.disabled = true;
    clear(verifyOut, h('p', {}, 'Verifying…'));
    void get<{ ok: boolean; store: string; instances: { instance: string; ok: boolean; records: number; lastSeq: number; checkpoints: number; problems: { kind: string; message: string }[] }[] }>('/api/v1/audit/verify')
      .then((v) =>
        clear(
          verifyOut,
          h('p', {}, badge(v.ok ? 'verified' : 'problems', v.ok ? 'allowed' : 'refused'), ` ${v.store}`),
          h(
            'ul',
            {},
            v.instances.map((i) =>
              h('li', {}, `${i.instance}: ${i.ok ? 'ok' : 'NOT OK'} — ${i.records} records through seq ${i.lastSeq}, ${i.checkpoints} checkpoints`, i.problems.length ? h('ul', {}, i.problems.slice(0, 10).map((p) => h('li', {}, `${p.kind}: ${p.message}`))) : null),
            ),
          ),
        ),
      )
      .catch((e: Error) => clear(verifyOut, h('p', { class: 'error' }, e.message)))
      .finally(() => (verifyBtn.disabled = false));
  });

  return {
    stop() {
      es.close();
      rate.destroy();
      ids.destroy();
      tables.destroy();
    },
  };
}
