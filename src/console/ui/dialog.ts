import { field, h } from './dom.js';

/**
 * Asks for a reason (and confirmation) in a modal dialog: focus moves into it and returns to
 * where it was; Escape cancels. Resolves to the reason, or null when cancelled.
 */
export function askReason(title: string, action: string, o: { danger?: boolean; required?: boolean; detail?: string } = {}): Promise<string | null> {
  return new Promise((resolve) => {
    const back = document.activeElement as HTMLElement | null;
    const reason = h('textarea', { name: 'reason', rows: 3, required: o.required !== false, maxlength: 1000 });
    const ok = h('button', { type: 'submit', class: o.danger ? 'danger' : 'primary' }, action);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const form = h('form', { method: 'dialog' }, h('h2', { id: 'dlg-title' }, title), o.detail ? h('p', { class: 'muted dlg-detail' }, o.detail) : null, field('Reason (recorded in the audit log)', reason), h('div', { class: 'actions' }, ok, cancel));
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-title' }, form);
    let answer: string | null = null;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (o.required !== false && reason.value.trim() === '') {
        reason.focus();
        return;
      }
      answer = reason.value.trim();
      dlg.close();
    });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      back?.focus();
      resolve(answer);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    reason.focus();
  });
}
