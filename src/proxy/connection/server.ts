/**
 * Warden's PostgreSQL listener: accepts clients, runs the handshake, opens the
 * upstream connection with the database's service credentials, and starts a
 * relaying Session. One bad connection never affects another.
 */
import net from 'node:net';
import crypto from 'node:crypto';
import { identityVerifier } from '../../auth/identity-verifier.js';
import type { WardenConfig, IdentityConfig } from '../../config/types.js';
import type { Logger } from '../../log/logger.js';
import {
  encodeBackendKeyData,
  encodeError,
  encodeReadyForQuery,
  encodeParameterStatus,
  ProtocolError,
} from '../../wire/index.js';
import { mockScramVerifier, type ScramVerifier } from '../../auth/index.js';
import { CancelMap } from './cancel-map.js';
import { clientHandshake, type HandshakeContext } from './client-handshake.js';
import { FatalClientError } from './errors.js';
import { ConnectionClosedError } from '../transport/socket-reader.js';
import { Session } from '../session/session.js';
import { connectUpstream, sendUpstreamCancel, UpstreamError } from './upstream.js';
import { loadServerTls, type ServerTls } from './tls-context.js';
import { adoptFast } from '../transport/fast-io.js';
import { adoptNative } from '../transport/native-io.js';
import { upstreamStartupParams } from './propagation.js';
import type { LoginTokens } from '../../contract/login-tokens.js';
import type { OidcVerifier } from '../../auth/oidc.js';
import { DEFAULT_LOGIN_RATE_LIMIT, LoginRateLimiter, type LoginRateLimitOptions } from '../../auth/rate-limit.js';
import type { SessionHooks } from '../../contract/statement-hooks.js';

export interface ProxyServerOptions {
  config: WardenConfig;
  log: Logger;
  hooks?: SessionHooks;
  /** Failed-login limits per (identity, client address); defaults to 10 per 5 minutes. */
  loginRateLimit?: LoginRateLimitOptions;
  /** Time allowed from connect to the end of authentication (PostgreSQL's authentication_timeout). */
  authenticationTimeoutMs?: number;
  /** Short-lived tokens (from the state store). */
  tokens?: LoginTokens;
  /** OIDC logins (a JWT as the password, over TLS). */
  oidc?: OidcVerifier;
  /** The connection cap when `listen.max_connections` is not set (from the open-file limit; none when absent). */
  defaultMaxConnections?: number;
  /**
   * Whether an identity is suspended (`warden identity suspend`): its logins are refused with
   * 28000. Called once per login, after authentication: it must be cheap (an in-memory set).
   */
  suspended?: (identity: string) => { readonly reason: string } | undefined;
}

/** How an operator's action ends a session: FATAL with this SQLSTATE and message. */
export interface Termination {
  readonly code: string;
  readonly message: string;
  readonly hint?: string;
}

/** Upstream startup errors whose text is safe to show the client (no credentials in them). */
const RELAYED_STARTUP_CLASSES = ['22', '42', '53', '57'];

/** Connections past the cap that still get a clear refusal (after their startup packet) at once: beyond, a bare error. */
function refusalSlots(max: number): number {
  return Math.min(1_000, Math.max(10, Math.floor(max / 4)));
}

/** How long a connection past the cap may take to send its startup packet. */
const REFUSAL_TIMEOUT_MS = 5_000;

/** PostgreSQL's answer when max_connections is reached. */
const TOO_MANY_CLIENTS = encodeError({ severity: 'FATAL', code: '53300', message: 'sorry, too many clients already' });

export class ProxyServer {
  private readonly server: net.Server;
  private readonly cancels = new CancelMap();
  private readonly sessions = new Set<Session>();
  private readonly sockets = new Set<net.Socket>();
  /** Connections still in their handshake (not yet a Session). */
  private handshaking = 0;
  /** Sessions per identity, for `identities[].max_connections`. */
  private readonly perIdentity = new Map<string, number>();
  /** `listen.max_connections`, or the default from the open-file limit (set by the caller that raised it). */
  readonly maxConnections: number;
  private lastCapLog = 0;
  /** Handshakes of connections past the cap, run only to refuse them clearly. */
  private refusing = 0;
  private verifiers = new Map<string, { identity: IdentityConfig; verifier: ScramVerifier }>();
  private readonly mockSecret = crypto.randomBytes(32);
  private readonly tls?: ServerTls;
  private readonly log: Logger;
  private config: WardenConfig;
  private readonly hooks: SessionHooks;
  /** Set by {@link drain}: connections still in their handshake are refused at its end. */
  private draining = false;
  private readonly authTimeoutMs: number;
  private readonly logins: LoginRateLimiter;
  private readonly tokens?: LoginTokens;
  private readonly oidc?: OidcVerifier;
  private readonly suspended?: (identity: string) => { readonly reason: string } | undefined;

  constructor(o: ProxyServerOptions) {
    this.config = o.config;
    this.log = o.log;
    this.hooks = o.hooks ?? {};
    this.authTimeoutMs = o.authenticationTimeoutMs ?? 60_000;
    this.logins = new LoginRateLimiter(o.loginRateLimit ?? DEFAULT_LOGIN_RATE_LIMIT);
    this.tokens = o.tokens;
    this.oidc = o.oidc;
    this.suspended = o.suspended;
    this.maxConnections = o.config.listen.maxConnections ?? o.defaultMaxConnections ?? Number.POSITIVE_INFINITY;
    if (o.config.listen.tls) this.tls = loadServerTls(o.config.listen.tls);
    this.verifiers = ProxyServer.verifiersOf(o.config);
    this.server = net.createServer({ noDelay: true, pauseOnConnect: true }, (sock) => this.accept(sock));
    this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
  }

  /** Start listening; resolves with the bound address. */
  listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.config.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const a = this.server.address() as net.AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** Connections still in their handshake (startup, TLS, authentication, upstream login). */
  get handshakeCount(): number {
    return this.handshaking;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The sessions now (for `GET /api/v1/sessions`: read their state on demand, see Session.activity). */
  listSessions(): Session[] {
    return [...this.sessions];
  }

  /**
   * End one session (`warden sessions kill`): its running statement is cancelled upstream
   * (a CancelRequest, see Session.end) and the client gets FATAL `t`. Undefined when there is no such session.
   */
  terminate(id: string, t: Termination): Session | undefined {
    for (const s of this.sessions) {
      if (s.id === id) {
        s.fatal(t);
        return s;
      }
    }
    return undefined;
  }

  /** End every session of an identity (a suspension); returns the ids of those ended. */
  terminateIdentity(identity: string, t: Termination): string[] {
    const ended: string[] = [];
    for (const s of [...this.sessions]) {
      if (s.identity.name === identity) {
        ended.push(s.id);
        s.fatal(t);
      }
    }
    return ended;
  }

  private static verifiersOf(config: WardenConfig): Map<string, { identity: IdentityConfig; verifier: ScramVerifier }> {
    const m = new Map<string, { identity: IdentityConfig; verifier: ScramVerifier }>();
    for (const identity of config.identities) {
      const verifier = identityVerifier(identity);
      if (!verifier) throw new Error(`identity ${identity.name}: invalid SCRAM verifier`);
      m.set(identity.name, { identity, verifier });
    }
    return m;
  }

  /**
   * A reloaded configuration (app.ts): identities and databases for the logins from now on
   * (running sessions keep theirs). The listen address, TLS and connection cap stay as they
   * were started. Throws, changing nothing, when an identity's verifier is invalid.
   */
  reconfigure(config: WardenConfig): void {
    const verifiers = ProxyServer.verifiersOf(config);
    this.verifiers = verifiers;
    this.config = config;
  }

  /**
   * Stop like a daemon (SIGTERM): stop accepting at once (connections still in their
   * handshake are refused with 57P03, or dropped once no session is left), end idle sessions
   * now, and each other session once its running statement and open transaction are over;
   * after `timeoutMs`, end the rest.
   * Ended sessions get FATAL 57P01 (their running statement is cancelled upstream).
   * Resolves with the number of sessions that were ended only by the timeout.
   */
  async drain(timeoutMs: number): Promise<{ timedOut: number }> {
    this.draining = true;
    this.server.close();
    const bye = { code: '57P01', message: 'terminating connection because Warden is shutting down' };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const s of [...this.sessions]) if (s.activity().state === 'idle') s.fatal(bye);
      // Connections still logging in are refused when they get there (57P03), or dropped below.
      if (this.sessions.size === 0 || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
    }
    const timedOut = this.sessions.size;
    for (const s of [...this.sessions]) s.fatal({ ...bye, message: `${bye.message} (its statement did not finish within the drain timeout)` });
    for (const sock of this.sockets) sock.destroy();
    return { timedOut };
  }

  /** Stop accepting; end every session. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) s.fatal({ code: '57P01', message: 'terminating connection because Warden is shutting down' });
    for (const sock of this.sockets) sock.destroy();
  }

  private handshakeContext(): HandshakeContext {
    return {
      tls: this.tls,
      verifierFor: (name) => this.verifiers.get(name),
      mockVerifier: (name) => mockScramVerifier(name, this.mockSecret),
      database: (name) => (Object.hasOwn(this.config.databases, name) ? this.config.databases[name] : undefined),
      beforeAuth: (name, address, detail) => {
        const c = this.logins.check(name, address);
        if (!c.allowed) {
          this.log.warn({ identity: name, client: address }, 'login refused: too many failed attempts');
          this.hooks.loginFailed?.({ identity: name, clientAddress: address, database: detail.database, reason: 'rate limited', tls: detail.tls });
          throw new FatalClientError(
            '53300',
            `too many failed login attempts for user "${name}" from this address`,
            undefined,
            `Try again in ${Math.ceil(c.retryAfterMs / 1000)} seconds.`,
          );
        }
      },
      afterAuth: (name, address, ok, detail) => {
        this.logins.record(name, address, ok);
        if (!ok) {
          this.log.info({ identity: name, client: address }, 'login failed');
          this.hooks.loginFailed?.({ identity: name, clientAddress: address, database: detail.database, reason: 'authentication failed', tls: detail.tls });
        }
      },
      credentials: this.tokens ? (name, database) => this.tokens!.credentials(name, database) : undefined,
      oidc: this.oidc
        ? async (name, jwt) => {
            const r = await this.oidc!.verify(jwt);
            if (!r.ok) return r;
            // The startup user names who logs in: the token's identity (the actor, for an act claim).
            if (r.identity.name !== name) return { ok: false, reason: `the token is for "${r.identity.name}", not "${name}"` };
            if (this.verifiers.has(name)) return { ok: false, reason: `"${name}" is a configured identity: log in with its password or a token` };
            const identity: IdentityConfig = { name: r.identity.name, kind: r.identity.kind, groups: [...r.identity.groups] };
            return { ok: true, identity, expiresAt: r.expiresAt, ...(r.onBehalfOf ? { onBehalfOf: r.onBehalfOf } : {}), ...(r.actor ? { actor: r.actor } : {}) };
          }
        : undefined,
      cancel: (pid, secret) => {
        const ok = this.cancels.cancel(pid, secret);
        this.log.debug({ pid, matched: ok }, 'cancel request');
      },
    };
  }

  private accept(accepted: net.Socket): void {
    let refuse = false;
    if (this.handshaking - this.refusing + this.sessions.size >= this.maxConnections) {
      const now = Date.now();
      if (now - this.lastCapLog > 1_000) {
        this.lastCapLog = now;
        this.log.warn({ max_connections: this.maxConnections, client: accepted.remoteAddress }, 'connection refused: listen.max_connections reached');
      }
      if (this.refusing >= refusalSlots(this.maxConnections)) {
        // Past the slots for clear refusals too: refused before reading anything.
        accepted.on('error', () => undefined);
        accepted.end(TOO_MANY_CLIENTS);
        setTimeout(() => accepted.destroy(), 1_000).unref();
        return;
      }
      // Like PostgreSQL: the startup (and TLS) negotiation runs, then the client is told why
      // (libpq shows an error sent during its SSL negotiation only as "error during SSL exchange").
      refuse = true;
    }
    const raw = adoptFast(accepted);
    this.sockets.add(raw);
    raw.on('close', () => this.sockets.delete(raw));
    raw.on('error', () => undefined); // reported through the handshake or the session
    raw.setNoDelay(true);
    raw.setKeepAlive(true, 60_000);
    raw.resume();
    void this.startSession(raw, refuse);
  }

  private async startSession(raw: net.Socket, refuse: boolean): Promise<void> {
    this.handshaking++;
    if (refuse) this.refusing++;
    try {
      await this.handshakeAndStart(raw, refuse);
    } finally {
      this.handshaking--;
      if (refuse) this.refusing--;
    }
  }

  private async handshakeAndStart(raw: net.Socket, refuse: boolean): Promise<void> {
    const id = crypto.randomBytes(6).toString('hex');
    const log = this.log.child({ session: id });
    const clientAddress = raw.remoteAddress ?? '';
    const clientPort = raw.remotePort ?? 0;
    let socket: net.Socket = raw;
    const timer = setTimeout(() => {
      log.info({ client: clientAddress }, 'authentication timed out');
      raw.destroy();
    }, refuse ? Math.min(REFUSAL_TIMEOUT_MS, this.authTimeoutMs) : this.authTimeoutMs);
    try {
      const base = this.handshakeContext();
      const ctx: HandshakeContext = {
        ...base,
        beforeAuth: refuse
          ? () => {
              throw new FatalClientError('53300', 'sorry, too many clients already');
            }
          : base.beforeAuth,
        onTls: (t) => {
          // Refusals must now go through TLS; and until the Session attaches its own, the TLS
          // socket needs an error listener (a reset during connectUpstream would otherwise crash).
          socket = t;
          t.on('error', () => undefined);
        },
      };
      const hs = await clientHandshake(raw, ctx, this.config.listen.maxMessageSize);
      if (hs.kind === 'cancel') {
        clearTimeout(timer);
        raw.end();
        return;
      }
      socket = hs.socket;
      const db = hs.database;
      if (this.draining) throw new FatalClientError('57P03', 'Warden is shutting down');
      this.refuseSuspended(hs.identity.name, clientAddress, db.name, hs.tls, log);
      const cap = hs.identity.maxConnections;
      if (cap !== undefined && (this.perIdentity.get(hs.identity.name) ?? 0) >= cap) {
        log.warn({ identity: hs.identity.name, max_connections: cap }, 'login refused: the identity has max_connections sessions');
        throw new FatalClientError('53300', `too many connections for identity "${hs.identity.name}"`, `The identity may have ${cap} sessions at once.`);
      }
      // on_behalf_of is propagated only from a verified source (tokens/JWT, later), never from a client's own option.
      const forward = upstreamStartupParams(hs.forward, hs.optionSettings, hs.identity, hs.auth.onBehalfOf);
      let up;
      try {
        up = await connectUpstream(db, forward, { probeSetting: this.hooks.statement ? 'search_path' : undefined });
      } catch (err) {
        const e = err as UpstreamError;
        log.warn({ database: db.name, upstream: db.upstream.redactedUrl, reason: e.message, upstreamError: e.upstream?.message, code: e.upstream?.code }, 'upstream connection failed');
        const code = e.upstream?.code;
        if (code && RELAYED_STARTUP_CLASSES.includes(code.slice(0, 2)) && e.upstream) {
          throw new FatalClientError(code, e.upstream.message, e.upstream.detail, e.upstream.hint);
        }
        throw new FatalClientError('08006', `could not connect to database "${db.name}": ${e.message}`);
      }
      clearTimeout(timer);
      if (this.draining) {
        up.socket.destroy();
        throw new FatalClientError('57P03', 'Warden is shutting down');
      }
      try {
        // Suspended while the upstream connection opened.
        this.refuseSuspended(hs.identity.name, clientAddress, db.name, hs.tls, log);
      } catch (err) {
        up.socket.destroy();
        throw err;
      }
      // Plain TCP on both sides relays through the native addon when it is there (see native-io.ts).
      const client = adoptNative(socket) ?? socket;
      const upstream = adoptNative(up.socket) ?? up.socket;
      const session = new Session({
        id,
        client,
        upstream,
        identity: hs.identity,
        auth: hs.auth,
        database: db,
        clientAddress,
        clientPort,
        tls: hs.tls,
        startupParams: hs.startupParams,
        wardenSettings: hs.wardenSettings,
        parameters: up.parameters,
        txStatus: up.txStatus,
        upstreamSearchPath: up.probed,
        hooks: this.hooks,
        log,
        maxMessageSize: this.config.listen.maxMessageSize,
        clientLeftover: hs.leftover,
        upstreamLeftover: up.leftover,
        onClose: () => {
          if (this.sessions.delete(session)) {
            const n = (this.perIdentity.get(hs.identity.name) ?? 1) - 1;
            if (n > 0) this.perIdentity.set(hs.identity.name, n);
            else this.perIdentity.delete(hs.identity.name);
          }
          this.cancels.unregister(key.pid);
        },
      });
      const upKey = up.backendKey;
      session.cancelUpstream = () => sendUpstreamCancel(db, upKey.pid, upKey.secret);
      session.cancel = () => {
        if (!session.isClosed) session.interrupt('cancel');
        sendUpstreamCancel(db, upKey.pid, upKey.secret).catch((err: Error) =>
          log.warn({ reason: err.message }, 'forwarding a cancel request failed'),
        );
      };
      const key = this.cancels.register(session);
      this.sessions.add(session);
      this.perIdentity.set(hs.identity.name, (this.perIdentity.get(hs.identity.name) ?? 0) + 1);
      const hello: Buffer[] = [];
      for (const [k, v] of up.parameters) hello.push(encodeParameterStatus(k, v));
      hello.push(encodeBackendKeyData(key.pid, key.secret));
      hello.push(...up.notices);
      hello.push(encodeReadyForQuery(up.txStatus));
      client.write(Buffer.concat(hello));
      log.info(
        {
          identity: hs.identity.name,
          kind: hs.identity.kind,
          database: db.name,
          client: clientAddress,
          tls: hs.tls,
          application_name: hs.startupParams.get('application_name'),
        },
        'session started',
      );
      session.start();
    } catch (err) {
      clearTimeout(timer);
      this.refuse(socket, err, log, clientAddress);
    }
  }

  /** Throws 28000 when the identity is suspended (after authentication: nothing is told to an unauthenticated client). */
  private refuseSuspended(identity: string, client: string, database: string, tls: boolean, log: Logger): void {
    const s = this.suspended?.(identity);
    if (!s) return;
    log.warn({ identity, client }, 'login refused: the identity is suspended');
    this.hooks.loginFailed?.({ identity, clientAddress: client, database, reason: 'identity suspended', tls });
    throw new FatalClientError('28000', `identity ${identity} is suspended: ${s.reason}`, undefined, `An operator lifts it with: warden identity resume ${identity}`);
  }

  private refuse(socket: net.Socket, err: unknown, log: Logger, client: string): void {
    let f: { code: string; message: string; detail?: string; hint?: string } | undefined;
    if (err instanceof FatalClientError) {
      f = { code: err.code, message: err.message, detail: err.detail, hint: err.hint };
      log.info({ client, code: err.code, reason: err.message }, 'connection refused');
    } else if (err instanceof ProtocolError) {
      f = { code: '08P01', message: err.message };
      log.info({ client, reason: err.message }, 'protocol violation during startup');
    } else if (err instanceof ConnectionClosedError) {
      log.debug({ client }, 'client left during startup');
    } else {
      log.warn({ client, err }, 'startup failed');
      f = { code: '08006', message: 'connection failed during startup' };
    }
    if (f && !socket.destroyed && socket.writable) {
      socket.end(encodeError({ severity: 'FATAL', ...f }));
      setTimeout(() => socket.destroy(), 2_000).unref();
    } else socket.destroy();
  }
}
