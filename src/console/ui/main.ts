/**
 * The Warden console: a single page over the admin API (docs/console.md). The page state
 * (which page, which filters) lives in memory and sessionStorage, never in the URL.
 */
import { ApiError, get, post, setCsrf, whenUnauthorized } from './api.js';
import { clear, field, h } from './dom.js';
import type { Me } from './types.js';
import { overviewPage } from './overview.js';
import { approvalsPage } from './approvals.js';
import { sessionsPage } from './sessions.js';
import { auditPage } from './audit.js';
import { policyPage } from './policy.js';
import { reportsPage } from './reports.js';
import type { Ctx, Page, PageKey } from './page.js';

const PAGES: { key: PageKey; label: string; show(ctx: Ctx, root: HTMLElement, arg?: string): Page; visible?(me: Me): boolean }[] = [
  { key: 'overview', label: 'Overview', show: overviewPage },
  { key: 'approvals', label: 'Approvals', show: approvalsPage },
  { key: 'sessions', label: 'Sessions', show: sessionsPage },
  { key: 'audit', label: 'Audit', show: auditPage },
  { key: 'policy', label: 'Policy', show: policyPage },
  // The report and the backtest are for auditors and operators (the API says so too).
  { key: 'reports', label: 'Reports', show: reportsPage, visible: (me) => me.can.audit || me.can.operate },
];

const app = document.getElementById('app')!;
let current: Page | undefined;

function loginPage(message?: string): void {
  current?.stop();
  current = undefined;
  document.title = 'Log in · Warden console';
  const name = h('input', { name: 'username', autocomplete: 'username', required: true, spellcheck: 'false', autocapitalize: 'none' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = h('p', { class: 'error', role: 'alert', id: 'login-error' }, message ?? '');
  const button = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h(
    'form',
    { class: 'login-form', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Warden console'),
    h('p', { class: 'muted' }, 'Log in with your Warden identity and its password.'),
    field('Identity', name),
    field('Password', password),
    err,
    button,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    button.disabled = true;
    err.textContent = '';
    void post<{ csrf: string }>('/console/api/login', { name: name.value, password: password.value })
      .then(() => {
        password.value = '';
        return start();
      })
      .catch((e: unknown) => {
        err.textContent = e instanceof ApiError ? e.message : String(e);
        password.value = '';
        password.focus();
      })
      .finally(() => (button.disabled = false));
  });
  const box = h('div', { class: 'login-box' }, form);
  clear(app, h('main', { id: 'main', class: 'login' }, box));
  name.focus();
  // OIDC: a token (JWT) from the identity provider instead of a password, when configured.
  void get<{ oidc: { issuer: string; available: boolean } | null }>('/console/api/login-options')
    .then((o) => {
      if (!o.oidc) return;
      if (!o.oidc.available) {
        box.append(h('p', { class: 'muted login-note' }, `OIDC login (${o.oidc.issuer}) needs the console over HTTPS.`));
        return;
      }
      const token = h('textarea', { name: 'token', rows: 3, spellcheck: 'false', autocomplete: 'off' });
      const tokErr = h('p', { class: 'error', role: 'alert' });
      const tokBtn = h('button', { type: 'submit' }, 'Log in with the token');
      const tokForm = h('form', { class: 'login-form', 'aria-label': 'Log in with an identity provider token' }, h('h2', {}, 'Or with your identity provider'), field(`Token (JWT) from ${o.oidc.issuer}`, token), tokErr, tokBtn);
      tokForm.addEventListener('submit', (ev) => {
        ev.preventDefault();
        tokBtn.disabled = true;
        tokErr.textContent = '';
        void post('/console/api/login', { token: token.value.trim() })
          .then(() => {
            token.value = '';
            return start();
          })
          .catch((e: unknown) => (tokErr.textContent = e instanceof ApiError ? e.message : String(e)))
          .finally(() => (tokBtn.disabled = false));
      });
      box.append(tokForm);
    })
    .catch(() => undefined);
}

function shell(me: Me): void {
  const pages = PAGES.filter((p) => !p.visible || p.visible(me));
  const statusBar = h('div', { class: 'statusbar', role: 'status', 'aria-live': 'polite' });
  const main = h('main', { id: 'main', tabindex: '-1' });
  const navButtons = new Map<PageKey, HTMLButtonElement>();
  const nav = h(
    'nav',
    { 'aria-label': 'Console pages' },
    h(
      'ul',
      {},
      pages.map((p) => {
        const b = h('button', { type: 'button', class: 'nav', 'data-page': p.key }, p.label);
        b.addEventListener('click', () => ctx.go(p.key));
        navButtons.set(p.key, b);
        return h('li', {}, b);
      }),
    ),
  );
  const logout = h('button', { type: 'button', class: 'link' }, 'Log out');
  logout.addEventListener('click', () => {
    // The page state (filters, the page shown) is not left for whoever logs in next.
    sessionStorage.clear();
    void post('/console/api/logout').finally(() => loginPage('Logged out.'));
  });
  let timer: number | undefined;
  let shown = false;
  const ctx: Ctx = {
    me,
    go(page, arg) {
      current?.stop();
      statusBar.textContent = '';
      sessionStorage.setItem('warden.page', page);
      for (const [k, b] of navButtons) {
        if (k === page) b.setAttribute('aria-current', 'page');
        else b.removeAttribute('aria-current');
      }
      const p = pages.find((x) => x.key === page) ?? pages[0]!;
      document.title = `${p.label} · Warden console`;
      main.replaceChildren();
      current = p.show(ctx, main, arg);
      // After a navigation, focus goes to the new page (not on the first load: the skip link comes first).
      if (shown) main.focus({ preventScroll: true });
      shown = true;
    },
    status(text, kind = 'ok') {
      statusBar.textContent = text;
      statusBar.className = `statusbar ${kind}`;
      if (timer) clearTimeout(timer);
      timer = window.setTimeout(() => (statusBar.textContent = ''), 8000);
    },
  };
  clear(
    app,
    h(
      'header',
      { class: 'top' },
      h('span', { class: 'brand' }, 'Warden'),
      h('span', { class: 'who' }, `${me.identity} (${me.kind}${me.groups.length ? `; ${me.groups.join(', ')}` : ''})`),
      logout,
    ),
    h('div', { class: 'layout' }, nav, h('div', { class: 'content' }, statusBar, main)),
  );
  const saved = sessionStorage.getItem('warden.page') as PageKey | null;
  ctx.go(saved && pages.some((p) => p.key === saved) ? saved : 'overview');
}

async function start(): Promise<void> {
  try {
    const me = await get<Me>('/console/api/session');
    setCsrf(me.csrf);
    shell(me);
  } catch (e) {
    loginPage(e instanceof ApiError && e.status !== 401 ? e.message : undefined);
  }
}

whenUnauthorized((message) => loginPage(message));
void start();
