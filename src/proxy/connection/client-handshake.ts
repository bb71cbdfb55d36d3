/**
 * The client side of a connection up to AuthenticationOk: SSL/GSSENC
 * negotiation (and direct TLS), CancelRequest routing, protocol version
 * negotiation, startup parameters, and SCRAM-SHA-256 authentication of the
 * Warden identity. Authentication never reveals whether an identity exists.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { DatabaseConfig, IdentityConfig } from '../../config/types.js';
import {
  AUTH,
  F,
  GSSENC_REQUEST_CODE,
  ProtocolError,
  SSL_REQUEST_CODE,
  decodeSASLInitialResponse,
  decodeStartupPacket,
  encodeAuth,
  encodeAuthSASL,
  encodeNegotiateProtocolVersion,
  parseStartupOptions,
} from '../../wire/index.js';
import { ScramServerExchange, type ScramVerifier } from '../../auth/index.js';
import { SocketReader } from '../transport/socket-reader.js';
import { FatalClientError } from './errors.js';
import type { ServerTls } from './tls-context.js';
import type { SessionAuth } from '../../contract/statement-hooks.js';
import type { TokenCredential } from '../../contract/login-tokens.js';

/** Facts about a login attempt for the auth callbacks. */
export interface AuthDetail {
  readonly tls: boolean;
  readonly database: string;
}

export interface HandshakeContext {
  readonly tls?: ServerTls;
  /** The verifier of an identity, or undefined when unknown. */
  verifierFor(name: string): { identity: IdentityConfig; verifier: ScramVerifier } | undefined;
  /** A fake verifier for unknown names (same cost, same messages). */
  mockVerifier(name: string): ScramVerifier;
  database(name: string): DatabaseConfig | undefined;
  /** Route a CancelRequest (returns nothing to the client either way). */
  cancel(pid: number, secret: Buffer): void;
  /** Before an authentication attempt: throw a FatalClientError to refuse (rate limit). */
  beforeAuth?(name: string, address: string, detail: AuthDetail): void;
  /** After an authentication attempt. */
  afterAuth?(name: string, address: string, ok: boolean, detail: AuthDetail): void;
  /**
   * The connection now runs over TLS: from here on anything sent to the client
   * (a FATAL refusal included) must go through `socket`, not the raw TCP socket.
   */
  onTls?(socket: tls.TLSSocket): void;
  /** Short-lived tokens the identity may log in with on this database (checked in the same SCRAM exchange). */
  credentials?(name: string, database: string): Promise<readonly TokenCredential[]>;
  /**
   * OIDC: a JWT as the password of a name that is not a configured identity,
   * only over TLS (the token must be sent in the clear). Resolves to the
   * identity the token proves, or a reason.
   */
  oidc?(name: string, jwt: string): Promise<{ ok: true; identity: IdentityConfig; expiresAt: Date; onBehalfOf?: string; actor?: string } | { ok: false; reason: string }>;
}

export type HandshakeResult =
  | { kind: 'cancel' }
  | {
      kind: 'session';
      socket: net.Socket | tls.TLSSocket;
      tls: boolean;
      identity: IdentityConfig;
      auth: SessionAuth;
      database: DatabaseConfig;
      /** Startup parameters to forward upstream (no user/database/options/warden.*). */
      forward: Map<string, string>;
      /** All startup parameters as sent (options excluded). */
      startupParams: Map<string, string>;
      /** `warden.*` settings from options, without the prefix. */
      wardenSettings: Map<string, string>;
      /** Non-warden `-c` settings from options, forwarded in the upstream's options. */
      optionSettings: [string, string][];
      leftover: Buffer;
    };

/** Settings a client may not choose at startup: they would change who it is upstream. */
const FORBIDDEN_STARTUP_SETTINGS = new Set(['role', 'session_authorization']);
/** Startup parameters Warden consumes itself. */
const NOT_FORWARDED = new Set(['user', 'database', 'options', 'replication']);

const TLS_HANDSHAKE_BYTE = 0x16;

function upgrade(raw: Duplex, ctx: ServerTls, direct: boolean): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = new tls.TLSSocket(raw as net.Socket, {
      isServer: true,
      secureContext: ctx.context,
      ALPNProtocols: ['postgresql'],
    });
    const timer = setTimeout(() => {
      t.destroy();
      reject(new Error('TLS handshake timed out'));
    }, 30_000);
    t.once('secure', () => {
      clearTimeout(timer);
      t.removeAllListeners('error');
      // Direct TLS (sslnegotiation=direct) requires the postgresql ALPN, like PostgreSQL 17.
      if (direct && t.alpnProtocol !== 'postgresql') {
        t.destroy();
        reject(new ProtocolError('direct TLS connection without the "postgresql" ALPN protocol'));
        return;
      }
      resolve(t);
    });
    t.once('error', (err) => {
      clearTimeout(timer);
      t.destroy();
      reject(err);
    });
  });
}

export async function clientHandshake(
  raw: net.Socket,
  ctx: HandshakeContext,
  maxMessageSize: number,
): Promise<HandshakeResult> {
  let socket: net.Socket | tls.TLSSocket = raw;
  let onTls = false;
  let reader = new SocketReader(socket);
  const address = raw.remoteAddress ?? '';

  // Direct TLS: the first byte of a TLS ClientHello instead of a startup packet.
  if (ctx.tls && (await reader.peekByte()) === TLS_HANDSHAKE_BYTE) {
    // The bytes read so far are the start of the ClientHello: hand them back for TLS to read.
    const early = reader.detach();
    if (early.length > 0) raw.unshift(early);
    const secured = await upgrade(raw, ctx.tls, true);
    ctx.onTls?.(secured);
    socket = secured;
    onTls = true;
    reader = new SocketReader(socket);
  }

  // As PostgreSQL's ProcessStartupPacket (15, 16): after an SSLRequest another SSLRequest is not
  // a negotiation, and a GSSENCRequest is one only if TLS was refused; after a GSSENCRequest
  // another GSSENCRequest is not, an SSLRequest is (GSSAPI is always refused here). A request
  // that is not a negotiation is read as a startup packet of an unsupported protocol version
  // (1234.5679 / 1234.5680): FATAL 0A000, as PostgreSQL answers.
  let sslDone = onTls;
  let gssDone = onTls;
  const refuseRepeat = (code: number): FatalClientError =>
    new FatalClientError('0A000', `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0 to 3.0`);
  let startup: { major: number; minor: number; params: Map<string, string> } | undefined;
  while (!startup) {
    const pkt = decodeStartupPacket(await reader.readStartupPacket());
    switch (pkt.kind) {
      case 'ssl': {
        if (sslDone) throw refuseRepeat(SSL_REQUEST_CODE);
        sslDone = true;
        gssDone = false;
        if (!ctx.tls) {
          socket.write('N');
          break;
        }
        gssDone = true;
        // CVE-2021-23214: no plaintext may follow the SSL request before the handshake.
        if (reader.buffered > 0) throw new ProtocolError('received unencrypted data after SSL request');
        reader.detach();
        socket.write('S');
        const secured = await upgrade(raw, ctx.tls, false);
        ctx.onTls?.(secured);
        socket = secured;
        onTls = true;
        reader = new SocketReader(socket);
        break;
      }
      case 'gssenc':
        if (gssDone) throw refuseRepeat(GSSENC_REQUEST_CODE);
        gssDone = true;
        sslDone = false;
        if (reader.buffered > 0) throw new ProtocolError('received unencrypted data after GSSAPI encryption request');
        socket.write('N');
        break;
      case 'cancel':
        reader.detach();
        ctx.cancel(pkt.pid, pkt.secret);
        return { kind: 'cancel' };
      case 'startup':
        if (pkt.major !== 3) {
          throw new FatalClientError(
            '0A000',
            `unsupported frontend protocol ${pkt.major}.${pkt.minor}: server supports 3.0 to 3.0`,
          );
        }
        startup = pkt;
    }
  }

  const unsupported = [...startup.params.keys()].filter((k) => k.startsWith('_pq_.'));
  if (startup.minor > 0 || unsupported.length > 0) socket.write(encodeNegotiateProtocolVersion(0, unsupported));

  if (ctx.tls?.require && !onTls) {
    throw new FatalClientError(
      '28000',
      'Warden requires an encrypted connection',
      undefined,
      'Connect with TLS, e.g. sslmode=require.',
    );
  }

  const params = startup.params;
  const user = params.get('user');
  if (!user) throw new FatalClientError('28000', 'no PostgreSQL user name specified in startup packet');
  const dbName = params.get('database') || user;
  const replication = params.get('replication');
  if (replication && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
    throw new FatalClientError('0A000', 'replication connections are not supported through Warden');
  }

  const wardenSettings = new Map<string, string>();
  const optionSettings: [string, string][] = [];
  const { settings, other } = parseStartupOptions(params.get('options') ?? '');
  if (other.length > 0) {
    throw new FatalClientError('22023', `unsupported startup option "${other[0]}"`, undefined, 'Only -c name=value settings are accepted in options.');
  }
  const forward = new Map<string, string>();
  const classify = (name: string, value: string, fromOptions: boolean): void => {
    const lower = name.toLowerCase();
    if (lower.startsWith('warden.')) {
      wardenSettings.set(lower.slice('warden.'.length), value);
      return;
    }
    if (FORBIDDEN_STARTUP_SETTINGS.has(lower)) {
      throw new FatalClientError('42501', `setting "${lower}" at startup is not allowed through Warden`);
    }
    if (fromOptions) optionSettings.push([name, value]);
    else forward.set(name, value);
  };
  for (const [k, v] of params) if (!NOT_FORWARDED.has(k) && !k.startsWith('_pq_.')) classify(k, v, false);
  for (const [k, v] of settings) classify(k, v, true);

  // ---- SCRAM-SHA-256 -------------------------------------------------------
  const authDetail: AuthDetail = { tls: onTls, database: dbName };
  ctx.beforeAuth?.(user, address, authDetail);
  const known = ctx.verifierFor(user);
  // Without TLS nobody can log in with an OIDC token: say so on every failed login
  // (for every name alike, so it tells nothing about which names exist).
  const oidcHint = ctx.oidc && !onTls ? 'To log in with an OIDC token (JWT) as the password, connect with TLS (sslmode=require).' : undefined;
  /** Authentication succeeded: AuthenticationOk and the session's facts. */
  const authenticated = (identity: IdentityConfig, auth: SessionAuth): HandshakeResult => {
    const database = ctx.database(dbName);
    if (!database) throw new FatalClientError('3D000', `database "${dbName}" does not exist`);
    socket.write(encodeAuth(AUTH.Ok));
    const startupParams = new Map(params);
    startupParams.delete('options');
    return { kind: 'session', socket, tls: onTls, identity, auth, database, forward, startupParams, wardenSettings, optionSettings, leftover: reader.detach() };
  };
  const authFailed = (detail?: string): FatalClientError => {
    ctx.afterAuth?.(user, address, false, authDetail);
    return new FatalClientError('28P01', `password authentication failed for user "${user}"`, detail, oidcHint);
  };

  // ---- OIDC: a JWT as the password, over TLS, for a name that is not a configured identity
  if (!known && ctx.oidc && onTls) {
    socket.write(encodeAuth(AUTH.CleartextPassword));
    const msg = await reader.readMessage(Math.min(maxMessageSize, 1 << 16), [F.Password]);
    const nul = msg.body.indexOf(0);
    const jwt = msg.body.subarray(0, nul < 0 ? msg.body.length : nul).toString('utf8');
    const r = await ctx.oidc(user, jwt);
    if (!r.ok) throw authFailed(r.reason);
    ctx.afterAuth?.(user, address, true, authDetail);
    return authenticated(r.identity, { method: 'oidc', expiresAt: r.expiresAt, ...(r.onBehalfOf ? { onBehalfOf: r.onBehalfOf } : {}) });
  }

  // Looked up for unknown names too: the same work whether the identity exists or not.
  const tokens = ctx.credentials ? await ctx.credentials(user, dbName) : [];
  const exchange = new ScramServerExchange({
    verifier: known?.verifier ?? ctx.mockVerifier(user),
    channelBinding: onTls ? ctx.tls?.channelBinding : undefined,
    alternatives: () => tokens,
  });
  socket.write(encodeAuthSASL(exchange.mechanisms()));
  const first = await reader.readMessage(Math.min(maxMessageSize, 1 << 16), [F.Password]);
  const init = decodeSASLInitialResponse(first.body);
  const r1 = exchange.handleClientFirst(init.mechanism, init.data);
  if (!r1.ok) {
    // A malformed exchange or a mechanism we did not offer is a protocol violation, not a wrong password.
    ctx.afterAuth?.(user, address, false, authDetail);
    throw new FatalClientError('28000', `SCRAM authentication failed: ${r1.error}`);
  }
  socket.write(encodeAuth(AUTH.SASLContinue, r1.serverFirst));
  const second = await reader.readMessage(Math.min(maxMessageSize, 1 << 16), [F.Password]);
  const r2 = exchange.handleClientFinal(second.body);
  if (!r2.ok || !known) throw authFailed();
  const token = r2.alternative !== undefined ? tokens.find((t) => t.id === r2.alternative) : undefined;
  ctx.afterAuth?.(user, address, true, authDetail);
  socket.write(encodeAuth(AUTH.SASLFinal, r2.serverFinal));
  return authenticated(
    known.identity,
    token
      ? { method: 'token', tokenId: token.id, expiresAt: token.expiresAt, ...(token.onBehalfOf ? { onBehalfOf: token.onBehalfOf } : {}) }
      : { method: 'password' },
  );
}
