/**
 * The web console on the admin listener (docs/console.md).
 *
 * - `GET  /console/`                 the single page (HTML, script and styles bundled at build
 *                                    time into dist/console/static: nothing is fetched elsewhere);
 * - `POST /console/api/login`        `{name, password}`: the admin API's own authenticator (same
 *                                    SCRAM check, failed-login rate limits and `login.failed`
 *                                    audit events), then membership of `admin.console.groups`;
 *                                    sets the session cookie (HttpOnly, SameSite=Strict, Secure
 *                                    and `__Host-` over TLS);
 * - `GET  /console/api/session`      who is logged in, the CSRF token, what the console offers;
 * - `POST /console/api/logout`.
 *
 * Every page's data then comes from /api/v1, the API the CLI uses: its auth hook accepts the
 * cookie as a credential (see {@link ConsoleGate.authenticate}), with the CSRF token in the
 * `x-warden-csrf` header and a same-origin `Origin` on every state-changing request.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IdentityConfig, WardenConfig } from '../config/types.js';
import { ConsoleSessions, sameToken, type ConsoleSession } from './sessions.js';
import { capabilitiesOf, consoleRefusal } from './access.js';
import { OidcVerifier } from '../auth/oidc.js';

/** Where `npm run build` (scripts/build-console.js) puts the bundle; the same from src/console and dist/console. */
export const DEFAULT_ASSETS_DIR = path.resolve(import.meta.dirname, '../../dist/console/static');

export const CSRF_HEADER = 'x-warden-csrf';
const DEFAULT_IDLE_MS = 30 * 60_000;
const DEFAULT_MAX_AGE_MS = 8 * 3_600_000;

/**
 * The admin API's password check (admin/auth.ts `AdminAuthenticator`, passed in by the admin
 * server): described here by its shape, so that console/ does not import admin/ (admin/ imports
 * console/).
 */
export interface PasswordCheck {
  authenticate(authorization: string | undefined, address: string): Promise<{ ok: true; identity: IdentityConfig } | { ok: false; status: number; message: string; retryAfterS?: number }>;
}

export interface ConsoleOptions {
  /** The running configuration (identities, groups, admin.console). */
  config(): WardenConfig;
  auth: PasswordCheck;
  /** Why an identity is suspended, or undefined. */
  suspended?(name: string): string | undefined;
  /** Records an audit event (`console.login`, `console.logout`, `login.failed`). */
  audit?(type: string, data: Record<string, string | number | boolean | null>): void;
  /** The admin listener serves HTTPS: the cookie is `Secure` and `__Host-`-prefixed. */
  tls: boolean;
  assetsDir?: string;
}

export type ConsoleAuth = { ok: true; identity: IdentityConfig; session: ConsoleSession } | { ok: false; status: 401 | 403; message: string };

export interface ConsoleGate {
  /** The cookie's name (`__Host-warden_console` over TLS, else `warden_console`). */
  readonly cookie: string;
  /** Why a state-changing request is refused as cross-origin (see {@link crossOrigin}), with `admin.console.origin`. */
  crossOrigin(req: FastifyRequest, requireOrigin: boolean): string | undefined;
  /**
   * The identity behind a request's console cookie, or undefined when it bears none. State-changing
   * methods also need the session's CSRF token and a same-origin `Origin`.
   */
  authenticate(req: FastifyRequest): ConsoleAuth | undefined;
  register(app: FastifyInstance): void;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export function isSafeMethod(method: string): boolean {
  return SAFE.has(method.toUpperCase());
}

/** Cookie header → the value of one cookie (the first), or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Why a state-changing request is refused as cross-origin, or undefined. A browser sends
 * `Origin` with every POST/DELETE it makes by script or form; it must be this listener's own.
 * `requireOrigin`: refuse when there is none (cookie-authenticated requests: only browsers
 * send cookies). Without it (HTTP Basic from the CLI or curl, which send no `Origin`), only a
 * present, foreign `Origin` or `Sec-Fetch-Site` is refused.
 */
export function crossOrigin(req: FastifyRequest, tls: boolean, requireOrigin: boolean, configured?: string): string | undefined {
  const origin = req.headers.origin;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `cross-site request refused (Sec-Fetch-Site: ${String(site)})`;
  if (origin === undefined) return requireOrigin ? 'request refused: no Origin header (state-changing console requests must come from the console page)' : undefined;
  // Behind a TLS-terminating proxy the browser's origin is the proxy's: admin.console.origin names it.
  const expected = configured ?? `${tls ? 'https' : 'http'}://${req.headers.host ?? ''}`;
  return origin === expected ? undefined : `cross-origin request refused (Origin ${origin} is not ${expected}${configured ? ', admin.console.origin' : ''})`;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** No inline script or style, nothing from elsewhere, no framing by other sites. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "frame-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function securityHeaders(reply: FastifyReply): void {
  reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cross-origin-resource-policy', 'same-origin')
    .header('permissions-policy', 'camera=(), microphone=(), geolocation=()');
}

export function createConsole(o: ConsoleOptions): ConsoleGate {
  const c0 = o.config().admin?.console;
  const sessions = new ConsoleSessions({ idleTimeoutMs: c0?.idleTimeoutMs ?? DEFAULT_IDLE_MS, maxAgeMs: c0?.maxAgeMs ?? DEFAULT_MAX_AGE_MS });
  const origin = c0?.origin;
  // Secure over TLS, or when browsers reach it over HTTPS through a proxy (admin.console.origin).
  const secure = o.tls || (origin?.startsWith('https://') ?? false);
  const cookie = secure ? '__Host-warden_console' : 'warden_console';
  const assetsDir = o.assetsDir ?? DEFAULT_ASSETS_DIR;
  const identityNamed = (name: string): IdentityConfig | undefined => o.config().identities.find((i) => i.name === name);
  // One verifier per loaded configuration (its JWKS cache with it); a reload that changes oidc gets a new one.
  const verifiers = new WeakMap<object, OidcVerifier>();
  const oidcVerifier = (): OidcVerifier | undefined => {
    const settings = o.config().oidc;
    if (!settings) return undefined;
    let v = verifiers.get(settings);
    if (!v) verifiers.set(settings, (v = new OidcVerifier(settings)));
    return v;
  };

  const setCookie = (reply: FastifyReply, value: string, maxAgeS: number): void => {
    reply.header('set-cookie', `${cookie}=${value}; Path=/; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`);
  };

  /**
   * A login with an OIDC token (a JWT from `oidc.issuer`), as the proxy accepts one for a
   * password: only where the browser reaches the console over HTTPS (a token is a bearer
   * credential), never a delegated token (`act`: an agent acting for a user does not use the
   * console), and the identity's groups (from the token's claims) must include a console group.
   * The session ends when the token expires, if that is before `max_age`.
   */
  const oidcLogin = async (req: FastifyRequest, reply: FastifyReply, token: unknown): Promise<FastifyReply | Record<string, string>> => {
    const verifier = oidcVerifier();
    if (!verifier) return reply.code(400).send({ error: 'OIDC login is not configured (no oidc section): log in with a password' });
    if (!secure) return reply.code(403).send({ error: 'OIDC login needs the console over HTTPS (admin.tls, or admin.console.origin https://... behind a TLS proxy): a token is a bearer credential' });
    if (typeof token !== 'string' || token === '') return reply.code(400).send({ error: 'token: required (a JWT from the identity provider)' });
    const r = await verifier.verify(token);
    if (!r.ok) {
      o.audit?.('login.failed', { identity: null, client_address: req.ip, reason: `OIDC token refused: ${r.reason}`, channel: 'console' });
      return reply.code(401).send({ error: `OIDC token refused: ${r.reason}` });
    }
    if (r.onBehalfOf !== undefined) {
      o.audit?.('login.failed', { identity: r.identity.name, client_address: req.ip, reason: 'delegated token (act)', channel: 'console' });
      return reply.code(403).send({ error: `a delegated token (${r.identity.name} acting for ${r.onBehalfOf}) may not log in to the console` });
    }
    const identity: IdentityConfig = { name: r.identity.name, kind: r.identity.kind, groups: [...r.identity.groups] };
    const refused = consoleRefusal(o.config(), identity) ?? (o.suspended?.(identity.name) ? `identity ${identity.name} is suspended: ${o.suspended(identity.name)}` : undefined);
    if (refused) {
      o.audit?.('login.failed', { identity: identity.name, client_address: req.ip, reason: refused, channel: 'console' });
      return reply.code(403).send({ error: refused });
    }
    const { token: cookieToken, session } = sessions.create(identity.name, { oidc: { name: identity.name, kind: identity.kind, groups: identity.groups }, notAfter: r.expiresAt.getTime() });
    setCookie(reply, cookieToken, Math.max(0, Math.floor((session.expiresAt - session.createdAt) / 1000)));
    o.audit?.('console.login', { identity: identity.name, client_address: req.ip, tls: secure, auth: 'oidc' });
    return { identity: identity.name, csrf: session.csrf, expires_at: new Date(session.expiresAt).toISOString() };
  };

  const gate: ConsoleGate = {
    cookie,
    crossOrigin: (req, requireOrigin) => crossOrigin(req, o.tls, requireOrigin, origin),
    authenticate(req) {
      const token = cookieValue(req.headers.cookie, cookie);
      if (token === undefined) return undefined;
      const session = sessions.get(token);
      if (!session) return { ok: false, status: 401, message: 'the console session has ended (logged out, idle too long, or Warden restarted): log in again' };
      const identity: IdentityConfig | undefined = session.oidc ? { name: session.oidc.name, kind: session.oidc.kind, groups: [...session.oidc.groups] } : identityNamed(session.identity);
      if (!identity) {
        sessions.end(token);
        return { ok: false, status: 401, message: `identity ${session.identity} is no longer in the configuration` };
      }
      const refused = consoleRefusal(o.config(), identity);
      if (refused) return { ok: false, status: 403, message: refused };
      if (!isSafeMethod(req.method)) {
        const sent = req.headers[CSRF_HEADER];
        if (typeof sent !== 'string' || !sameToken(sent, session.csrf)) {
          return { ok: false, status: 403, message: `CSRF check failed: a state-changing console request needs the session's token in the ${CSRF_HEADER} header` };
        }
        const cross = crossOrigin(req, o.tls, true, origin);
        if (cross) return { ok: false, status: 403, message: cross };
      }
      return { ok: true, identity, session };
    },
    register(app) {
      app.register(async (ui) => {
        ui.addHook('onSend', async (_req, reply, payload) => {
          securityHeaders(reply);
          if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
          return payload;
        });
        ui.get('/console', async (_req, reply) => reply.redirect('/console/'));
        const file = async (name: string, reply: FastifyReply): Promise<FastifyReply> => {
          const ext = path.extname(name);
          const type = CONTENT_TYPES[ext];
          // Only names the build writes: letters, digits, dots and dashes (no path of any kind).
          if (!type || !/^[a-z0-9][a-z0-9.-]*$/i.test(name)) return reply.code(404).send({ error: 'not found' });
          let body: Buffer;
          try {
            body = await fs.promises.readFile(path.join(assetsDir, name));
          } catch {
            if (name === 'index.html') {
              return reply.code(503).type('text/plain; charset=utf-8').send('The console is not built here: run npm run build (scripts/build-console.js writes dist/console/static).');
            }
            return reply.code(404).send({ error: 'not found' });
          }
          return reply.type(type).send(body);
        };
        ui.get('/console/', async (_req, reply) => file('index.html', reply));
        ui.get('/console/assets/:name', async (req, reply) => file((req.params as { name: string }).name, reply));

        ui.get('/console/api/login-options', async () => {
          const oidc = o.config().oidc;
          return { password: true, oidc: oidc ? { issuer: oidc.issuer, available: secure } : null };
        });

        ui.post('/console/api/login', async (req, reply) => {
          const cross = crossOrigin(req, o.tls, true, origin);
          if (cross) return reply.code(403).send({ error: cross });
          const body = (req.body ?? {}) as { name?: unknown; password?: unknown; token?: unknown };
          if (body.token !== undefined) return oidcLogin(req, reply, body.token);
          if (typeof body.name !== 'string' || typeof body.password !== 'string' || body.name === '' || body.name.includes(':')) {
            return reply.code(400).send({ error: 'name and password: required (JSON strings; a name has no colon)' });
          }
          const header = `Basic ${Buffer.from(`${body.name}:${body.password}`, 'utf8').toString('base64')}`;
          const r = await o.auth.authenticate(header, req.ip);
          if (!r.ok) {
            if (r.retryAfterS) reply.header('retry-after', String(r.retryAfterS));
            return reply.code(r.status).send({ error: r.message });
          }
          const refused = consoleRefusal(o.config(), r.identity) ?? (o.suspended?.(r.identity.name) ? `identity ${r.identity.name} is suspended: ${o.suspended(r.identity.name)}` : undefined);
          if (refused) {
            o.audit?.('login.failed', { identity: r.identity.name, client_address: req.ip, reason: refused, channel: 'console' });
            return reply.code(403).send({ error: refused });
          }
          const { token, session } = sessions.create(r.identity.name);
          setCookie(reply, token, Math.floor((session.expiresAt - session.createdAt) / 1000));
          o.audit?.('console.login', { identity: r.identity.name, client_address: req.ip, tls: secure });
          return { identity: r.identity.name, csrf: session.csrf, expires_at: new Date(session.expiresAt).toISOString() };
        });

        ui.get('/console/api/session', async (req, reply) => {
          const a = gate.authenticate(req);
          if (!a) return reply.code(401).send({ error: 'not logged in' });
          if (!a.ok) return reply.code(a.status).send({ error: a.message });
          const suspended = o.suspended?.(a.identity.name);
          if (suspended) return reply.code(403).send({ error: `identity ${a.identity.name} is suspended: ${suspended}` });
          const c = o.config();
          return {
            identity: a.identity.name,
            kind: a.identity.kind,
            groups: a.identity.groups,
            csrf: a.session.csrf,
            expires_at: new Date(a.session.expiresAt).toISOString(),
            idle_timeout_ms: c.admin?.console?.idleTimeoutMs ?? DEFAULT_IDLE_MS,
            can: capabilitiesOf(c, a.identity),
          };
        });

        ui.post('/console/api/logout', async (req, reply) => {
          const a = gate.authenticate(req);
          if (a && !a.ok && a.status === 403) return reply.code(403).send({ error: a.message });
          const token = cookieValue(req.headers.cookie, cookie);
          if (a?.ok && token) {
            sessions.end(token);
            o.audit?.('console.logout', { identity: a.identity.name, client_address: req.ip });
          }
          setCookie(reply, '', 0);
          return { logged_out: true };
        });
      });
    },
  };
  return gate;
}
