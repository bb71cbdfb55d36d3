/**
 * Opens a connection to an upstream PostgreSQL with the service credentials of
 * a configured database: TCP, optional TLS, startup, and authentication
 * (trust, cleartext, md5, SCRAM-SHA-256[-PLUS]). Returns the socket ready for
 * the relay, with what the upstream reported during startup.
 */
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import type { Duplex } from 'node:stream';
import type { DatabaseConfig } from '../../config/types.js';
import {
  AUTH,
  B,
  decodeAuth,
  decodeBackendKeyData,
  decodeErrorFields,
  decodeParameterStatus,
  encodePassword,
  encodeSASLInitialResponse,
  encodeCancelRequest,
  encodeQuery,
  decodeDataRow,
  encodeSASLResponse,
  encodeSSLRequest,
  encodeStartup,
  type PgErrorFields,
  type TxStatus,
} from '../../wire/index.js';
import { ScramClientExchange, md5PasswordResponse, tlsServerEndPointBinding } from '../../auth/index.js';
import { SocketReader } from '../transport/socket-reader.js';
import { connectFast } from '../transport/fast-io.js';

/** Why an upstream connection failed; `message` never contains credentials. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    /** The upstream's own error, when it sent one (kept for logs, not for clients). */
    readonly upstream?: PgErrorFields,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

export interface UpstreamConnection {
  socket: net.Socket | tls.TLSSocket;
  tls: boolean;
  /** ParameterStatus values in the order received. */
  parameters: Map<string, string>;
  backendKey: { pid: number; secret: Buffer };
  /** NoticeResponse messages (raw) received during startup, to pass on. */
  notices: Buffer[];
  txStatus: TxStatus;
  /** Bytes received after ReadyForQuery (normally none). */
  leftover: Buffer;
  /** The value of `probeSetting`, when asked for. */
  probed?: string;
}

export interface UpstreamOptions {
  connectTimeoutMs?: number;
  /**
   * A setting to read once the session is ready (e.g. `search_path`), before
   * the client's traffic starts: Warden needs some session facts the protocol
   * does not report.
   */
  probeSetting?: string;
}

const MAX_UPSTREAM_STARTUP_MESSAGE = 1 << 20;

function connectTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = connectFast(host, port);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new UpstreamError(`timed out after ${timeoutMs} ms connecting to the upstream`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolve(sock);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new UpstreamError(`could not connect to the upstream (${err.code ?? err.message})`));
    });
  });
}

async function startTls(sock: net.Socket, db: DatabaseConfig): Promise<tls.TLSSocket> {
  const reader = new SocketReader(sock);
  sock.write(encodeSSLRequest());
  let answer: number;
  try {
    answer = await reader.peekByte();
  } finally {
    const rest = reader.detach();
    if (rest.length > 1) {
      sock.destroy();
      throw new UpstreamError('the upstream sent unexpected data after the SSL request');
    }
  }
  if (answer !== 'S'.charCodeAt(0)) {
    sock.destroy();
    throw new UpstreamError(`the upstream does not accept TLS (tls: ${db.tls})`);
  }
  const host = db.upstream.host;
  return await new Promise<tls.TLSSocket>((resolve, reject) => {
    const t = tls.connect({
      socket: sock,
      servername: net.isIP(host) ? undefined : host,
      rejectUnauthorized: db.tls === 'verify-full',
      ca: db.ca ? fs.readFileSync(db.ca) : undefined,
      // verify-full also checks the host name. Check the configured host explicitly: with an
      // existing socket and no servername (IP hosts), tls.connect would check 'localhost'.
      checkServerIdentity: db.tls === 'verify-full' ? (_name, cert) => tls.checkServerIdentity(host, cert) : () => undefined,
    });
    t.once('secureConnect', () => {
      t.removeAllListeners('error');
      resolve(t);
    });
    t.once('error', (err) => {
      t.destroy();
      reject(new UpstreamError(`TLS with the upstream failed: ${err.message}`));
    });
  });
}

/**
 * Connect and authenticate. `params` are the startup parameters to send
 * (user and database are taken from the config and override any given).
 */
export async function connectUpstream(
  db: DatabaseConfig,
  params: Iterable<[string, string]>,
  opts: UpstreamOptions = {},
): Promise<UpstreamConnection> {
  const { host, port, user, password, database } = db.upstream;
  let socket: net.Socket | tls.TLSSocket = await connectTcp(host, port, opts.connectTimeoutMs ?? 10_000);
  let onTls = false;
  try {
    if (db.tls !== 'disable') {
      socket = await startTls(socket, db);
      onTls = true;
    }
    socket.setNoDelay(true);
    const startup = new Map<string, string>();
    for (const [k, v] of params) startup.set(k, v);
    startup.set('user', user);
    startup.set('database', database);
    const reader = new SocketReader(socket);
    socket.write(encodeStartup(startup));

    const parameters = new Map<string, string>();
    const notices: Buffer[] = [];
    let backendKey: { pid: number; secret: Buffer } | undefined;
    let scram: ScramClientExchange | undefined;
    try {
      for (;;) {
        const { type, body } = await reader.readMessage(MAX_UPSTREAM_STARTUP_MESSAGE);
        switch (type) {
          case B.Authentication: {
            const req = decodeAuth(body);
            if (req.code === AUTH.Ok) break;
            if ('unsupported' in req) throw new UpstreamError(`the upstream asked for an unsupported authentication method (${req.code})`);
            if (req.code !== AUTH.SASLContinue && req.code !== AUTH.SASLFinal && password === undefined) {
              throw new UpstreamError('the upstream asked for a password but the database config has none');
            }
            const pw = password ?? '';
            if (req.code === AUTH.CleartextPassword) socket.write(encodePassword(pw));
            else if (req.code === AUTH.MD5Password && 'salt' in req) socket.write(encodePassword(md5PasswordResponse(user, pw, req.salt).toString()));
            else if (req.code === AUTH.SASL && 'mechanisms' in req) {
              const cert = onTls ? (socket as tls.TLSSocket).getPeerCertificate()?.raw : undefined;
              scram = new ScramClientExchange({
                password: pw,
                channelBinding: cert ? tlsServerEndPointBinding(cert) : undefined,
              });
              const first = scram.clientFirst(req.mechanisms);
              socket.write(encodeSASLInitialResponse(first.mechanism, first.data));
            } else if (req.code === AUTH.SASLContinue && 'data' in req) {
              if (!scram) throw new UpstreamError('the upstream sent SASLContinue without SASL');
              socket.write(encodeSASLResponse(scram.handleServerFirst(req.data)));
            } else if (req.code === AUTH.SASLFinal && 'data' in req) {
              if (!scram) throw new UpstreamError('the upstream sent SASLFinal without SASL');
              scram.handleServerFinal(req.data);
            }
            break;
          }
          case B.ErrorResponse: {
            const f = decodeErrorFields(body);
            throw new UpstreamError(`the upstream refused the connection (SQLSTATE ${f.code})`, f);
          }
          case B.ParameterStatus: {
            const { name, value } = decodeParameterStatus(body);
            parameters.set(name, value);
            break;
          }
          case B.BackendKeyData:
            backendKey = decodeBackendKeyData(body);
            break;
          case B.NoticeResponse: {
            const raw = Buffer.allocUnsafe(body.length + 5);
            raw[0] = type;
            raw.writeInt32BE(body.length + 4, 1);
            body.copy(raw, 5);
            notices.push(raw);
            break;
          }
          case B.NegotiateProtocolVersion:
            break;
          case B.ReadyForQuery: {
            const probed = opts.probeSetting ? await probe(socket, reader, opts.probeSetting) : undefined;
            const leftover = reader.detach();
            return {
              probed,
              socket,
              tls: onTls,
              parameters,
              backendKey: backendKey ?? { pid: 0, secret: Buffer.alloc(4) },
              notices,
              txStatus: String.fromCharCode(body[0]) as TxStatus,
              leftover,
            };
          }
          default:
            throw new UpstreamError(`unexpected message from the upstream during startup (type ${type})`);
        }
      }
    } catch (err) {
      reader.detach();
      if (err instanceof UpstreamError) throw err;
      throw new UpstreamError(`upstream startup failed: ${(err as Error).message}`);
    }
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** Read one setting with a simple query on a just-started session. */
async function probe(socket: Duplex, reader: SocketReader, setting: string): Promise<string> {
  socket.write(encodeQuery(`SELECT pg_catalog.current_setting(${quoteLiteral(setting)})`));
  let value: string | undefined;
  let error: PgErrorFields | undefined;
  for (;;) {
    const { type, body } = await reader.readMessage(MAX_UPSTREAM_STARTUP_MESSAGE);
    if (type === B.DataRow) {
      const cols = decodeDataRow(body);
      value = cols[0]?.toString('utf8');
    } else if (type === B.ErrorResponse) error = decodeErrorFields(body);
    else if (type === B.ReadyForQuery) break;
  }
  if (error || value === undefined) throw new UpstreamError(`could not read ${setting} from the upstream (SQLSTATE ${error?.code ?? 'none'})`, error);
  return value;
}

function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Send a CancelRequest to an upstream backend (fire and forget, bounded in time). */
export async function sendUpstreamCancel(db: DatabaseConfig, pid: number, secret: Buffer): Promise<void> {
  let sock: Duplex = await connectTcp(db.upstream.host, db.upstream.port, 5_000);
  try {
    if (db.tls !== 'disable') sock = await startTls(sock as net.Socket, db);
    await new Promise<void>((resolve) => {
      sock.write(encodeCancelRequest(pid, secret), () => resolve());
    });
    // The server closes the connection when done; wait briefly for that.
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2_000);
      sock.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      sock.on('error', () => undefined);
      sock.resume();
    });
  } finally {
    sock.destroy();
  }
}
