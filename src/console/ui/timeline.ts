import { badge, fmtMs, fmtTime, h } from './dom.js';
import type { Replay } from './types.js';

/** A session's statements in order, with timings, decisions and row counts (the audit's replay). */
export function timeline(r: Replay): HTMLElement {
  const t0 = r.statements.length ? new Date(r.statements[0]!.ts).getTime() : 0;
  return h(
    'div',
    { class: 'timeline' },
    h(
      'p',
      {},
      h('strong', {}, r.identity ?? '?'),
      ` on ${r.database ?? '?'} · session ${r.session} (${r.instance}) · started ${fmtTime(r.started_at)}`,
      r.ended_at ? ` · ended ${fmtTime(r.ended_at)}${r.end_reason ? ` (${r.end_reason})` : ''}` : ' · still open',
      ` · ${r.statements.length} statements${r.truncated ? ' (the first 5,000 records)' : ''}`,
    ),
    h(
      'ol',
      { class: 'steps' },
      r.statements.map((s) =>
        h(
          'li',
          { class: s.refused ? 'refused' : s.error ? 'failed' : '' },
          h(
            'div',
            { class: 'step-head' },
            h('span', { class: 'offset' }, `+${fmtMs(new Date(s.ts).getTime() - t0)}`),
            badge(s.refused ? 'refused' : s.decision === 'allow' ? 'allowed' : s.decision === 'mask' ? 'masked' : s.decision === 'approve' ? 'held' : (s.decision ?? '—')),
            s.rule ? h('span', { class: 'muted' }, ` rule ${s.rule}`) : null,
            h('span', { class: 'muted' }, ` · ${fmtMs(s.duration_ms)}`),
            s.rows !== null ? h('span', { class: 'muted' }, ` · ${s.rows} ${s.rows === 1 ? 'row' : 'rows'} returned`) : null,
            // A SELECT's command tag counts the rows it returned: "affected" only for what changed rows.
            s.affected !== null && !s.rows ? h('span', { class: 'muted' }, ` · ${s.affected} ${s.affected === 1 ? 'row' : 'rows'} affected`) : null,
            h('span', { class: 'muted' }, ` · seq ${s.seq}`),
          ),
          h('pre', { class: 'sql' }, s.sql ?? ''),
          s.params !== null && s.params !== undefined ? h('div', { class: 'muted' }, `parameters: ${JSON.stringify(s.params)}`) : null,
          s.error ? h('div', { class: 'error' }, `${s.sqlstate ?? ''} ${s.error}`) : null,
        ),
      ),
    ),
    r.events.length ? h('details', {}, h('summary', {}, `${r.events.length} other events`), h('ul', {}, r.events.map((e) => h('li', {}, `${fmtTime(e.ts)} ${e.type} ${JSON.stringify(e.data)}`)))) : null,
  );
}
