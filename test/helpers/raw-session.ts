/**
 * A logged-in raw-protocol session (SCRAM by hand) for tests that send exact
 * bytes after startup: extended-protocol batches, odd encodings, hostile input.
 */
import { ScramClientExchange } from '../../src/auth/index.js';
import { Wire, cstr, int16, int32, message, parseErrorFields, startupPacket, type ErrorFields, type Msg } from './raw-wire.js';

/** Startup (with extra parameters) and SCRAM; resolves at the first ReadyForQuery, or with the error. */
export async function rawLogin(
  port: number,
  user: string,
  password: string,
  params: Record<string, string> = {},
): Promise<{ wire: Wire; error?: ErrorFields; parameters: Map<string, string> }> {
  const wire = await Wire.connect(port);
  const parameters = new Map<string, string>();
  wire.write(startupPacket({ user, database: 'app', ...params }));
  const mechs = (await wire.read()).body.toString('utf8', 4).split('\0').filter(Boolean);
  const scram = new ScramClientExchange({ password });
  const first = scram.clientFirst(mechs);
  wire.write(message('p', Buffer.concat([cstr(first.mechanism), int32(first.data.length), first.data])));
  const cont = await wire.read();
  if (cont.type === 'E') return { wire, error: parseErrorFields(cont.body), parameters };
  wire.write(message('p', scram.handleServerFirst(cont.body.subarray(4))));
  for (;;) {
    const m = await wire.read();
    if (m.type === 'E') return { wire, error: parseErrorFields(m.body), parameters };
    if (m.type === 'S') {
      const [k, v] = m.body.toString('utf8').split('\0');
      parameters.set(k, v);
    }
    if (m.type === 'Z') return { wire, parameters };
  }
}

/** A simple Query message of raw bytes. */
export function queryMessage(sql: Buffer | string): Buffer {
  const b = typeof sql === 'string' ? Buffer.from(sql, 'utf8') : sql;
  return message('Q', Buffer.concat([b, Buffer.from([0])]));
}

/** Parse (unnamed, no parameter types) + Bind (unnamed portal, no parameters) + Execute + Sync, of raw bytes. */
export function extendedMessages(sql: Buffer | string): Buffer {
  const b = typeof sql === 'string' ? Buffer.from(sql, 'utf8') : sql;
  return Buffer.concat([
    message('P', Buffer.concat([cstr(''), b, Buffer.from([0]), int16(0)])),
    message('B', Buffer.concat([cstr(''), cstr(''), int16(0), int16(0), int16(0)])),
    message('E', Buffer.concat([cstr(''), int32(0)])),
    message('S'),
  ]);
}

/** Every message up to and including the next ReadyForQuery. */
export async function untilReady(wire: Wire, timeoutMs = 10_000): Promise<Msg[]> {
  const out: Msg[] = [];
  for (;;) {
    const m = await wire.read(timeoutMs);
    out.push(m);
    if (m.type === 'Z') return out;
  }
}

/** The ErrorResponses among messages, as fields. */
export function errorsOf(msgs: readonly Msg[]): ErrorFields[] {
  return msgs.filter((m) => m.type === 'E').map((m) => parseErrorFields(m.body));
}
