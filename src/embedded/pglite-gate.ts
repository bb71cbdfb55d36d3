/**
 * A PostgreSQL-protocol front for PGlite's socket server that makes its
 * connections take turns, and asks them for a password (SCRAM-SHA-256):
 * PGlite's own server trusts everyone, so it listens on a Unix socket in a
 * private directory and only the gate is on TCP. PGlite is one backend: its socket server queues the
 * messages of all connections onto it, so without turns the extended-protocol
 * messages of two clients interleave (one's Bind lands on the other's Parse),
 * and every SET — Warden's `warden.identity` included — is shared by all.
 *
 * The gate gives the backend to one connection at a time, for as long as that
 * connection has anything unanswered or a transaction open (other connections
 * wait, as behind a lock), and starts every turn that follows another
 * connection's by resetting the session and applying this connection's own
 * settings: those of its startup packet (which PGlite itself ignores) and what
 * it SET during its earlier turns (read back from pg_settings when its turn
 * ends). Settings therefore behave per connection, as on a real server.
 * What stays shared: prepared statements, cursors, temporary tables and custom
 * settings a client SETs itself (`SET app.x`; they are reset at a switch).
 * Cancel requests are not supported (the connection is closed), and a
 * `COPY ... FROM STDIN`, which would break PGlite for everyone, is replaced by
 * a statement that fails with 0A000 and says why.
 */
import net from 'node:net';
import { ScramServerExchange, makeScramVerifier } from '../auth/index.js';
import {
  AUTH,
  B,
  CANCEL_REQUEST_CODE,
  F,
  Framer,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_PACKET_LENGTH,
  SSL_REQUEST_CODE,
  decodeDataRow,
  decodeErrorFields,
  decodeParse,
  decodeQueryAt,
  decodeSASLInitialResponse,
  decodeStartupPacket,
  encodeAuth,
  encodeAuthSASL,
  encodeError,
  encodeParse,
  encodeQuery,
  type PgErrorFields,
} from '../wire/index.js';
import {
  COPY_FROM_STDIN_REFUSAL,
  ConversationState,
  RESET_SQL,
  copiesFromStdin, SNAPSHOT_SQL, TurnQueue, setConfigSql, startupSettings, turnSettings } from './turns.js';

export interface TurnGate {
  readonly port: number;
  /** Connections open now. */
  readonly connections: number;
  close(): Promise<void>;
}

export interface TurnGateOptions {
  /** PGlite's socket server (a Unix socket in a private directory: PGlite itself asks for no password). */
  upstream: { path: string };
  /** What clients must log in with (SCRAM-SHA-256, any user name). */
  password: string;
  host?: string;
  port?: number;
  /** Told about problems the gate handles itself (a setting that could not be restored, ...). */
  onWarning?: (message: string) => void;
}

/** What the responses up to the next ReadyForQuery belong to. */
type Group =
  | { kind: 'client' }
  | { kind: 'internal'; onRow?: (cols: (Buffer | null)[]) => void; onError?: (f: PgErrorFields) => void };

/** Settings whose loss would change who the session is: failing to apply them ends the connection. */
const essential = (name: string): boolean => name.startsWith('warden.') || name === 'role' || name === 'session_authorization';

export async function startTurnGate(o: TurnGateOptions): Promise<TurnGate> {
  const turns = new TurnQueue<GateConnection>();
  const open = new Set<GateConnection>();
  /** Whose settings the backend holds now. */
  const live: { conn: GateConnection | null } = { conn: null };

  class GateConnection {
    readonly state = new ConversationState();
    readonly groups: Group[] = [];
    readonly held: Buffer[] = [];
    startup: [string, string][] = [];
    snapshot: [string, string][] | undefined;
    upstream: net.Socket | null = null;
    /** Connected to PGlite (the turn is asked for from then on). */
    connected = false;
    startupSent = false;
    closed = false;
    private readonly toUpstream: Framer;
    private readonly fromUpstream: Framer;

    constructor(readonly client: net.Socket) {
      this.toUpstream = new Framer({
        // Statements are looked at whole (a COPY FROM STDIN must not reach PGlite); the rest streams.
        wantsWhole: (t) => t === F.Query || t === F.Parse,
        onMessage: (type, buf, start, end) => {
          this.sending(type);
          const msg = buf.subarray(start, end);
          if (type === F.Query) {
            this.write(copiesFromStdin(decodeQueryAt(buf, start, end)) ? encodeQuery(COPY_FROM_STDIN_REFUSAL) : msg);
            return;
          }
          const parse = decodeParse(msg.subarray(5));
          this.write(copiesFromStdin(parse.sql) ? encodeParse(parse.name, COPY_FROM_STDIN_REFUSAL) : msg);
        },
        onStream: (type, buf, start, end, first) => {
          if (first) {
            if (type === F.Terminate) {
              this.close();
              return;
            }
            this.sending(type);
          }
          this.write(buf.subarray(start, end));
        },
      });
      this.fromUpstream = new Framer({
        wantsWhole: (t) => t === B.ReadyForQuery || this.groups[0]?.kind === 'internal',
        onMessage: (type, buf, start, end) => this.onServerMessage(type, buf.subarray(start, end)),
        onStream: (_t, buf, start, end) => {
          if (!this.client.destroyed) this.client.write(buf.subarray(start, end));
        },
      });
    }

    /** The client starts sending a message of this type. */
    private sending(type: number): void {
      if (this.state.sent(type)) this.groups.push({ kind: 'client' });
    }

    private write(b: Buffer): void {
      if (!this.closed) this.upstream?.write(b);
    }

    /** The startup packet arrived: connect to PGlite and wait for the turn. */
    begin(startupPacket: Buffer, params: ReadonlyMap<string, string>): void {
      this.startup = startupSettings(params);
      const up = net.connect({ path: o.upstream.path });
      this.upstream = up;
      up.on('data', (chunk: Buffer) => {
        try {
          this.fromUpstream.push(chunk);
        } catch (err) {
          this.fail({ code: '08P01', message: `invalid data from PGlite: ${(err as Error).message}` });
        }
      });
      up.on('error', () => this.close());
      up.on('close', () => this.close());
      this.held.push(startupPacket);
      this.client.pause();
      up.once('connect', () => {
        this.connected = true;
        turns.request(this, () => this.granted());
      });
    }

    /** Bytes from the client after startup: forwarded in our turn, held until it otherwise. */
    fromClient(chunk: Buffer): void {
      if (this.closed) return;
      if (turns.owner === this) {
        this.forward(chunk);
        return;
      }
      this.held.push(chunk);
      this.client.pause();
      if (this.connected) turns.request(this, () => this.granted());
    }

    private forward(chunk: Buffer): void {
      try {
        this.toUpstream.push(chunk);
      } catch (err) {
        this.fail({ code: '08P01', message: (err as Error).message });
      }
    }

    private granted(): void {
      if (this.closed || !this.upstream) {
        turns.release(this);
        return;
      }
      let held = this.held.splice(0);
      if (!this.startupSent) {
        this.startupSent = true;
        this.upstream.write(held[0]);
        this.state.sentStartup();
        this.groups.push({ kind: 'client' });
        held = held.slice(1);
      }
      if (live.conn !== this) this.switchSettings();
      for (const chunk of held) this.forward(chunk);
      this.client.resume();
      this.maybeRelease();
    }

    /** Read back the previous owner's settings, reset, apply ours. Pipelined: no round trip of its own. */
    private switchSettings(): void {
      const prev = live.conn;
      live.conn = this;
      if (prev && !prev.closed) {
        const snap: [string, string][] = [];
        prev.snapshot = snap;
        this.internal(SNAPSHOT_SQL, {
          onRow: (cols) => {
            if (cols[0] && cols[1]) snap.push([cols[0].toString('utf8'), cols[1].toString('utf8')]);
          },
          onError: (f) => o.onWarning?.(`could not read the session settings of a PGlite connection: ${f.message}`),
        });
      }
      this.internal(RESET_SQL, { onError: (f) => this.fail({ code: '08006', message: `PGlite could not reset the session: ${f.message}` }) });
      for (const [name, value] of turnSettings(this.startup, this.snapshot)) {
        this.internal(setConfigSql(name, value), {
          onError: (f) => {
            if (essential(name)) this.fail({ code: '08006', message: `PGlite could not apply the session setting ${name}: ${f.message}` });
            else o.onWarning?.(`PGlite ignored the session setting ${name}: ${f.message}`);
          },
        });
      }
    }

    private internal(sql: string, g: Omit<Extract<Group, { kind: 'internal' }>, 'kind'>): void {
      this.groups.push({ kind: 'internal', ...g });
      this.upstream?.write(encodeQuery(sql));
    }

    private onServerMessage(type: number, msg: Buffer): void {
      const g = this.groups[0];
      if (type === B.ReadyForQuery) {
        this.groups.shift();
        if (g?.kind !== 'internal') {
          this.state.ready(msg[5]);
          if (!this.client.destroyed) this.client.write(msg);
        }
        this.maybeRelease();
        return;
      }
      if (g?.kind === 'internal') {
        if (type === B.DataRow) g.onRow?.(decodeDataRow(msg.subarray(5)));
        else if (type === B.ErrorResponse) g.onError?.(decodeErrorFields(msg.subarray(5)));
        return;
      }
      if (!this.client.destroyed) this.client.write(msg);
    }

    private maybeRelease(): void {
      if (turns.owner === this && this.groups.length === 0 && this.state.idle && this.held.length === 0) turns.release(this);
    }

    fail(f: Omit<PgErrorFields, 'severity'>): void {
      if (!this.client.destroyed) this.client.write(encodeError({ ...f, severity: 'FATAL' }));
      this.close();
    }

    close(): void {
      if (this.closed) return;
      this.closed = true;
      open.delete(this);
      if (live.conn === this) live.conn = null;
      // PGlite's socket server rolls back a transaction the connection left open.
      this.upstream?.destroy();
      this.client.end();
      setTimeout(() => this.client.destroy(), 1_000).unref();
      turns.release(this);
    }
  }

  const verifier = makeScramVerifier(o.password);
  const server = net.createServer({ noDelay: true }, (client) => {
    client.on('error', () => undefined);
    let conn: GateConnection | null = null;
    let pending = Buffer.alloc(0);
    let startup: { packet: Buffer; params: ReadonlyMap<string, string> } | null = null;
    let scram: ScramServerExchange | null = null;
    let scramStarted = false;
    const refuse = (code: string, message: string): void => {
      client.end(encodeError({ severity: 'FATAL', code, message }));
      pending = Buffer.alloc(0);
    };
    // Unauthenticated connections get 30 s.
    const authTimer = setTimeout(() => {
      if (!conn) refuse('08P01', 'authentication timed out');
    }, 30_000);
    authTimer.unref();
    client.on('close', () => {
      clearTimeout(authTimer);
      conn?.close();
    });
    client.on('data', (chunk: Buffer) => {
      if (conn) {
        conn.fromClient(chunk);
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      // Startup: SSL/GSS requests answered 'N', a cancel request refused, the startup packet,
      // then SCRAM-SHA-256 with the gate's password; then the connection is PGlite's.
      while (!conn && !client.writableEnded) {
        const typed = startup !== null;
        const head = typed ? 5 : 4;
        if (pending.length < head) return;
        const len = pending.readInt32BE(typed ? 1 : 0) + (typed ? 1 : 0);
        if (len < head + (typed ? 0 : 4) || len > MAX_STARTUP_PACKET_LENGTH) return refuse('08P01', 'invalid startup packet length');
        if (pending.length < len) return;
        const packet = Buffer.from(pending.subarray(0, len));
        pending = pending.subarray(len);
        if (!typed) {
          const code = packet.readInt32BE(4);
          if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
            client.write('N');
            continue;
          }
          if (code === CANCEL_REQUEST_CODE) return void client.end();
          try {
            const p = decodeStartupPacket(packet.subarray(4));
            if (p.kind !== 'startup' || p.major !== 3) throw new Error('unsupported protocol version');
            startup = { packet, params: p.params };
          } catch (err) {
            return refuse('08P01', (err as Error).message);
          }
          scram = new ScramServerExchange({ verifier });
          client.write(encodeAuthSASL(scram.mechanisms()));
          continue;
        }
        if (packet[0] !== F.Password || !scram || !startup) return refuse('08P01', 'expected a SASL response');
        const body = packet.subarray(5);
        const user = startup.params.get('user') ?? '';
        if (!scramStarted) {
          scramStarted = true;
          let first;
          try {
            const m = decodeSASLInitialResponse(body);
            first = scram.handleClientFirst(m.mechanism, m.data);
          } catch (err) {
            return refuse('08P01', (err as Error).message);
          }
          if (!first.ok) return refuse('28P01', `password authentication failed for user "${user}"`);
          client.write(encodeAuth(AUTH.SASLContinue, first.serverFirst));
          continue;
        }
        const final = scram.handleClientFinal(body);
        if (!final.ok) return refuse('28P01', `password authentication failed for user "${user}"`);
        client.write(encodeAuth(AUTH.SASLFinal, final.serverFinal));
        clearTimeout(authTimer);
        conn = new GateConnection(client);
        open.add(conn);
        conn.begin(startup.packet, startup.params);
        if (pending.length) conn.fromClient(Buffer.from(pending));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('turn gate: no TCP address');
  return {
    port: addr.port,
    get connections() {
      return open.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of [...open]) c.close();
        server.close(() => resolve());
      }),
  };
}
