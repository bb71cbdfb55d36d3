/**
 * Warden's own reads on a session's upstream connection: the messages for one
 * parameterised query, and the collector of its answer. Pure (bytes in, rows
 * out); the session sends and receives (see Session.catalogQuery).
 *
 * Why on the session's own connection: inside the session's transaction it
 * sees what the session has created or changed and not yet committed, and it
 * never waits on the session's own locks — a separate catalog connection does
 * both wrong (a migration that drops an index and then alters its table in one
 * transaction would make that connection wait for the lock until it times out).
 */
import pg from 'pg';
import { B, F, decodeCommandComplete, decodeDataRow, decodeErrorFields, decodeRowDescription, encodeParse, encodeSync, type FieldDescription } from '../../wire/index.js';
import { MessageWriter } from '../../wire/writer.js';

/** The names of Warden's statement, portal and savepoint (never a client's: a client using them would clash visibly). */
export const INTERNAL_NAME = 'warden_internal';

/** Parse, Bind (text parameters, text results), Describe, Execute, Close of portal and statement, Sync. */
export function encodeInternalQuery(sql: string, params: readonly (string | null)[]): Buffer {
  const bind = new MessageWriter().begin(F.Bind).cstring(INTERNAL_NAME).cstring(INTERNAL_NAME).int16(0).int16(params.length);
  for (const p of params) {
    if (p === null) bind.int32(-1);
    else {
      const b = Buffer.from(p, 'utf8');
      bind.int32(b.length).bytes(b);
    }
  }
  bind.int16(0).end();
  // The extended protocol sends a RowDescription only for a Describe.
  const describe = new MessageWriter().begin(F.Describe).byte(0x50).cstring(INTERNAL_NAME).end();
  const execute = new MessageWriter().begin(F.Execute).cstring(INTERNAL_NAME).int32(0).end();
  const closePortal = new MessageWriter().begin(F.Close).byte(0x50).cstring(INTERNAL_NAME).end();
  const closeStatement = new MessageWriter().begin(F.Close).byte(0x53).cstring(INTERNAL_NAME).end();
  return Buffer.concat([
    encodeParse(INTERNAL_NAME, sql),
    bind.toBuffer(),
    describe.toBuffer(),
    execute.toBuffer(),
    closePortal.toBuffer(),
    closeStatement.toBuffer(),
    encodeSync(),
  ]);
}

// Extended messages only, with a named statement: a simple Query would destroy the client's
// unnamed prepared statement and portal (a driver's Bind of it may be the very message being decided).
export const SAVEPOINT = encodeInternalQuery(`SAVEPOINT ${INTERNAL_NAME}`, []);
export const RELEASE = encodeInternalQuery(`RELEASE SAVEPOINT ${INTERNAL_NAME}`, []);
export const ROLLBACK = encodeInternalQuery(`ROLLBACK TO SAVEPOINT ${INTERNAL_NAME}`, []);

export interface InternalResult {
  rows: Record<string, unknown>[];
  /** The upstream's error, if the request failed. */
  error?: string;
  /** Transaction status of the ReadyForQuery that ended it. */
  status?: 'I' | 'T' | 'E';
}

/**
 * Collects the answer to one internal request; values are parsed from text by
 * the same type parsers the `pg` client uses, so rows look like the catalog
 * connection's.
 */
export class InternalCollector {
  private fields: FieldDescription[] = [];
  readonly result: InternalResult = { rows: [] };

  constructor(private readonly done: (r: InternalResult) => void) {}

  readonly sink = (type: number, body: Buffer): void => {
    switch (type) {
      case B.RowDescription:
        this.fields = decodeRowDescription(body);
        return;
      case B.DataRow: {
        const values = decodeDataRow(body);
        const row: Record<string, unknown> = {};
        this.fields.forEach((f, i) => {
          const v = values[i];
          row[f.name] = v === null || v === undefined ? null : pg.types.getTypeParser(f.typeOid, 'text')(v.toString('utf8'));
        });
        this.result.rows.push(row);
        return;
      }
      case B.ErrorResponse:
        this.result.error ??= decodeErrorFields(body).message;
        return;
      case B.CommandComplete:
        decodeCommandComplete(body);
        return;
      case B.ReadyForQuery: {
        const st = body[0];
        this.result.status = st === 0x49 ? 'I' : st === 0x54 ? 'T' : 'E';
        this.done(this.result);
        return;
      }
      default:
      // ParseComplete, BindComplete, CloseComplete, NoData, notices: nothing to keep.
    }
  };
}
