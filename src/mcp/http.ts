/**
 * Warden's MCP server over Streamable HTTP, on the admin listener at `/mcp`
 * (POST for messages, each answered with JSON; GET answered 405, as no
 * server-initiated stream is offered; DELETE to end a session; see
 * http-transport.ts). Every request carries `Authorization: Bearer <token or JWT>`:
 *
 * - initialize: the credential must name a caller (src/mcp/identity.ts) and log
 *   in to Warden's own listener as that identity; otherwise 401. The MCP session
 *   keeps that one wire session (a connection per database) for its calls.
 * - later requests: the same credential as at initialize (compared by SHA-256),
 *   not expired; otherwise 401. A revoked token ends the wire session at its next
 *   statement (the listener's own check), so calls fail from then on.
 *
 * Sessions idle for 30 minutes are closed (their held statements withdrawn).
 */
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { WardenConfig } from '../config/types.js';
import type { StateStore } from '../store/types.js';
import { callerOf, type Caller } from './identity.js';
import { WireSession } from './wire-session.js';
import { createFastPath, createWardenMcpServer, type McpContext } from './server.js';
import { createCodeAccess } from './explain.js';
import { JsonHttpTransport } from './http-transport.js';
import { connectHost, sslFor } from './net.js';
import { DEFAULT_LOGIN_RATE_LIMIT, LoginRateLimiter, type LoginRateLimitOptions } from '../auth/rate-limit.js';

export interface McpHttpOptions {
  /** The live configuration. */
  config(): WardenConfig;
  /** Warden's PostgreSQL listener (the bound address). */
  listener(): { host: string; port: number };
  /** The state store holding tokens (absent: only OIDC JWTs are accepted). */
  state(): StateStore | undefined;
  /** Idle MCP sessions are closed after this long (default 30 min). */
  idleMs?: number;
  /** Failed initializes allowed per client address (default: as logins, 10 in 5 min); then 429. */
  rateLimit?: LoginRateLimitOptions;
}

interface HttpSession {
  transport: JsonHttpTransport;
  wire: WireSession;
  caller: Caller;
  credentialHash: string;
  lastUsed: number;
}

const sha256 = (s: string): string => crypto.createHash('sha256').update(s).digest('hex');

function unauthorized(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(401).header('www-authenticate', 'Bearer realm="warden-mcp"').send({ jsonrpc: '2.0', error: { code: -32001, message }, id: null });
}

/** Hands the request to the session's transport and writes its answer; a failure there is a 500 without details, never a stack trace. */
async function serve(transport: JsonHttpTransport, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  try {
    const a = await transport.handle(req.method, req.headers, req.body);
    reply.code(a.status).headers(a.headers);
    return a.body === undefined ? reply.send() : reply.send(a.body);
  } catch {
    return reply.code(500).send({ jsonrpc: '2.0', error: { code: -32603, message: 'internal error' }, id: null });
  }
}

export function registerMcpHttp(app: FastifyInstance, o: McpHttpOptions): void {
  const sessions = new Map<string, HttpSession>();
  const idleMs = o.idleMs ?? 30 * 60_000;
  // Guessing tokens costs the guesser: failed initializes per address are limited like logins.
  const limiter = new LoginRateLimiter(o.rateLimit ?? DEFAULT_LOGIN_RATE_LIMIT);
  // explain_policy reads code from the catalog as `warden policy explain` does (one reader for all sessions).
  const code = createCodeAccess();
  const end = async (id: string): Promise<void> => {
    const s = sessions.get(id);
    if (!s) return;
    sessions.delete(id);
    await s.transport.close().catch(() => undefined);
    await s.wire.close();
  };
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, s] of sessions) if (now - s.lastUsed > idleMs || (s.caller.expiresAt !== undefined && s.caller.expiresAt <= now)) void end(id);
  }, 60_000);
  sweep.unref();
  app.addHook('onClose', async () => {
    clearInterval(sweep);
    await Promise.all([...sessions.keys()].map(end));
    await code.close();
  });

  const handle = async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) return unauthorized(reply, 'authentication required: Authorization: Bearer <a Warden token or an OIDC JWT>');
    const credential = m[1]!;
    const sid = req.headers['mcp-session-id'];
    if (typeof sid === 'string') {
      const s = sessions.get(sid);
      if (!s) return reply.code(404).send({ jsonrpc: '2.0', error: { code: -32001, message: 'unknown or ended MCP session: initialize a new one' }, id: null });
      if (!crypto.timingSafeEqual(Buffer.from(sha256(credential)), Buffer.from(s.credentialHash))) return unauthorized(reply, 'this MCP session belongs to another credential');
      if (s.caller.expiresAt !== undefined && s.caller.expiresAt <= Date.now()) {
        await end(sid);
        return unauthorized(reply, 'the token has expired: issue a new one and initialize a new session');
      }
      s.lastUsed = Date.now();
      return serve(s.transport, req, reply);
    }
    if (req.method !== 'POST' || !isInitializeRequest(req.body)) {
      return reply.code(400).send({ jsonrpc: '2.0', error: { code: -32000, message: 'no MCP session: the first request must be initialize (without mcp-session-id)' }, id: null });
    }
    const allowed = limiter.check('mcp', req.ip);
    if (!allowed.allowed) {
      return reply
        .code(429)
        .header('retry-after', String(Math.ceil(allowed.retryAfterMs / 1000)))
        .send({ jsonrpc: '2.0', error: { code: -32001, message: 'too many failed attempts from this address: try again later' }, id: null });
    }
    const config = o.config();
    const caller = await callerOf(config, o.state(), credential).catch(() => undefined);
    if (!caller) {
      limiter.record('mcp', req.ip, false);
      return unauthorized(reply, 'the bearer credential is not a valid Warden token or OIDC token (unknown, expired or revoked)');
    }
    const l = o.listener();
    const host = connectHost(l.host);
    const wire = new WireSession({ host, port: l.port, user: caller.user, password: credential, ssl: sslFor(config.listen.tls !== undefined, host) });
    const refused = await wire.login(caller.scope ?? Object.keys(config.databases)[0]!);
    if (refused) {
      await wire.close();
      if (refused.code.startsWith('28')) {
        limiter.record('mcp', req.ip, false);
        return unauthorized(reply, `logging in as ${caller.user} failed: ${refused.message}`);
      }
      return reply.code(503).send({ jsonrpc: '2.0', error: { code: -32000, message: `Warden's listener refused the session: ${refused.message} (SQLSTATE ${refused.code})` }, id: null });
    }
    limiter.record('mcp', req.ip, true);
    const ctx: McpContext = {
      config: o.config,
      caller,
      wire,
      code,
      request: async (id) => (await o.state()?.getRequest(id)) ?? null,
    };
    // One JSON answer per call (src/mcp/http-transport.ts): the tools send nothing mid-call. Ping and query calls take the fast path (server.ts).
    const transport = new JsonHttpTransport(crypto.randomUUID(), createFastPath(ctx));
    const entry: HttpSession = { transport, wire, caller, credentialHash: sha256(credential), lastUsed: Date.now() };
    sessions.set(transport.sessionId, entry);
    transport.onclose = () => {
      if (sessions.get(transport.sessionId) === entry) sessions.delete(transport.sessionId);
      void wire.close();
    };
    const server = createWardenMcpServer(ctx);
    await server.connect(transport);
    return serve(transport, req, reply);
  };
  app.post('/mcp', handle);
  app.get('/mcp', handle);
  app.delete('/mcp', handle);
}
