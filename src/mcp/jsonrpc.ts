/**
 * What Warden's own MCP transports (stdio-transport.ts, http-transport.ts) check of a message
 * before handing it to the SDK's protocol layer: that it has the shape of a JSON-RPC 2.0
 * message. The protocol layer then checks each method's params against its schema; a message
 * of the wrong shape is answered here with a JSON-RPC error and goes no further.
 */
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';

export type Json = Record<string, unknown>;
export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
export const isId = (v: unknown): v is RequestId => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

export type MessageKind = 'request' | 'notification' | 'response';

/** The kind of a JSON-RPC 2.0 message, or undefined when it is not one. */
export function kindOf(m: unknown): MessageKind | undefined {
  if (!isObject(m) || m.jsonrpc !== '2.0') return undefined;
  if (typeof m.method === 'string') {
    if (m.params !== undefined && !isObject(m.params)) return undefined;
    return 'id' in m ? (isId(m.id) ? 'request' : undefined) : 'notification';
  }
  if (isId(m.id) && ('result' in m || (isObject(m.error) && typeof m.error.code === 'number'))) return 'response';
  return undefined;
}

/** A request as the fast path sees it (its shape checked by kindOf). */
export interface RpcRequest {
  id: RequestId;
  method: string;
  params?: Json;
}

/**
 * A fast path for hot requests: the result of `request` when this handler answers it itself,
 * or undefined to leave it to the SDK's protocol layer (which then answers exactly as it would
 * without a fast path: every request that is not plainly valid goes there). See server.ts.
 */
export type FastPath = (request: RpcRequest) => Promise<unknown> | undefined;

/** A JSON-RPC error answer. */
export const errorMessage = (id: RequestId | null, code: number, message: string): JSONRPCMessage =>
  ({ jsonrpc: '2.0', id, error: { code, message } }) as JSONRPCMessage;
