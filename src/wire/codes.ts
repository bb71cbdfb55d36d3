/** PostgreSQL v3 protocol constants. */

/** Startup-packet request codes (the int32 after the length). */
export const PROTOCOL_3_0 = 196608; // 3 << 16
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

/** Like PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
export const MAX_STARTUP_PACKET_LENGTH = 10000;

const c = (s: string): number => s.charCodeAt(0);

/** Frontend (client → server) message type bytes. */
export const F = {
  Bind: c('B'),
  Close: c('C'),
  CopyData: c('d'),
  CopyDone: c('c'),
  CopyFail: c('f'),
  Describe: c('D'),
  Execute: c('E'),
  Flush: c('H'),
  FunctionCall: c('F'),
  Parse: c('P'),
  Password: c('p'), // PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse
  Query: c('Q'),
  Sync: c('S'),
  Terminate: c('X'),
} as const;

/** Backend (server → client) message type bytes. */
export const B = {
  Authentication: c('R'),
  BackendKeyData: c('K'),
  BindComplete: c('2'),
  CloseComplete: c('3'),
  CommandComplete: c('C'),
  CopyData: c('d'),
  CopyDone: c('c'),
  CopyInResponse: c('G'),
  CopyOutResponse: c('H'),
  CopyBothResponse: c('W'),
  DataRow: c('D'),
  EmptyQueryResponse: c('I'),
  ErrorResponse: c('E'),
  FunctionCallResponse: c('V'),
  NegotiateProtocolVersion: c('v'),
  NoData: c('n'),
  NoticeResponse: c('N'),
  NotificationResponse: c('A'),
  ParameterDescription: c('t'),
  ParameterStatus: c('S'),
  ParseComplete: c('1'),
  PortalSuspended: c('s'),
  ReadyForQuery: c('Z'),
  RowDescription: c('T'),
} as const;

/** Authentication request codes (int32 in an 'R' message). */
export const AUTH = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** Every frontend message type Warden accepts after startup. */
export const FRONTEND_TYPES: ReadonlySet<number> = new Set(Object.values(F));

export function typeName(t: number): string {
  return t >= 32 && t < 127 ? `'${String.fromCharCode(t)}'` : `0x${t.toString(16)}`;
}
