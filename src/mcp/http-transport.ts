/**
 * The MCP Streamable HTTP transport of `/mcp`, in its JSON-response form: a transport of the
 * SDK's `Transport` interface (the SDK's McpServer and protocol layer run on it unchanged)
 * that reads the JSON-RPC messages fastify has already parsed and answers each POST with one
 * JSON body.
 *
 * Why not the SDK's StreamableHTTPServerTransport: with `enableJsonResponse` it answers the
 * same way, but converts every request and answer between Node's and the fetch API's types
 * (a `Request`, `Headers`, a `Response` and its body stream, through @hono/node-server, whose
 * listener waits a timer tick for the end of a JSON body), and validates each message with a
 * zod union before the protocol layer validates it again against the method's schema. That
 * costs more than the statement the call runs (bench/README.md, MCP).
 *
 * What the specification (2025-06-18, "Streamable HTTP") asks of a server, and how it is met:
 * - POST carries one JSON-RPC message (or a batch): requests are answered with
 *   `application/json` (a server may answer so instead of an event stream); notifications and
 *   responses alone get 202 without a body.
 * - The session id is given in `Mcp-Session-Id` on the initialize answer (http.ts checks it,
 *   and the credential, on every later request); DELETE ends the session.
 * - GET (a stream for server-initiated messages) is answered 405, which the specification
 *   allows: Warden's tools send nothing outside the answer to a call.
 * - An `MCP-Protocol-Version` header that is not a supported version: 400.
 * - An Accept header that allows neither JSON nor anything: 406.
 * Messages the server sends outside an answer (notifications, server-to-client requests) have
 * no stream to go on and are dropped; Warden's server sends none.
 */
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { SUPPORTED_PROTOCOL_VERSIONS, type JSONRPCMessage, type RequestId } from '@modelcontextprotocol/sdk/types.js';
import { errorMessage, kindOf, type FastPath, type Json, type RpcRequest } from './jsonrpc.js';

/** What to write back: a status, headers and, for requests, the JSON body. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

const MAX_BATCH = 100;

const rpcError = (status: number, code: number, message: string): HttpAnswer => ({
  status,
  headers: { 'content-type': 'application/json' },
  body: { jsonrpc: '2.0', error: { code, message }, id: null },
});

export class JsonHttpTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: { requestInfo?: { headers: Record<string, string | string[] | undefined> } }) => void;
  private readonly waiting = new Map<RequestId, (m: JSONRPCMessage) => void>();
  private closed = false;

  /** `fast`: answers hot requests itself (server.ts, createFastPath); the others go to the SDK's protocol layer. */
  constructor(
    readonly sessionId: string,
    private readonly fast?: FastPath,
  ) {}

  async start(): Promise<void> {}

  async send(message: JSONRPCMessage): Promise<void> {
    const m = message as Json;
    if (!('id' in m) || !('result' in m || 'error' in m)) return; // no stream for messages outside an answer
    const resolve = this.waiting.get(m.id as RequestId);
    if (!resolve) return;
    this.waiting.delete(m.id as RequestId);
    resolve(message);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [id, resolve] of this.waiting) resolve({ jsonrpc: '2.0', id, error: { code: -32000, message: 'the MCP session ended' } } as JSONRPCMessage);
    this.waiting.clear();
    this.onclose?.();
  }

  /** One HTTP request of this session: `body` is the parsed JSON of a POST. */
  async handle(method: string, headers: Record<string, string | string[] | undefined>, body: unknown): Promise<HttpAnswer> {
    if (this.closed) return rpcError(404, -32001, 'Session not found');
    if (method === 'GET') return { status: 405, headers: { allow: 'POST, DELETE' } };
    if (method === 'DELETE') {
      await this.close();
      return { status: 200, headers: {} };
    }
    if (method !== 'POST') return { status: 405, headers: { allow: 'POST, DELETE' } };
    const accept = String(headers.accept ?? '*/*');
    if (!/application\/json|\*\/\*|application\/\*/.test(accept)) return rpcError(406, -32000, 'Not Acceptable: the client must accept application/json');
    const version = headers['mcp-protocol-version'];
    if (typeof version === 'string' && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return rpcError(400, -32000, `Bad Request: unsupported protocol version ${version} (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`);
    }
    const batch = Array.isArray(body);
    const messages: unknown[] = batch ? body : [body];
    if (messages.length === 0 || messages.length > MAX_BATCH) return rpcError(400, -32600, `Invalid Request: a batch holds 1 to ${MAX_BATCH} messages`);
    const kinds = messages.map(kindOf);
    if (kinds.some((k) => k === undefined)) return rpcError(400, -32700, 'Parse error: not a JSON-RPC 2.0 message');
    const ids = messages.filter((_, i) => kinds[i] === 'request').map((m) => (m as { id: RequestId }).id);
    if (new Set(ids).size !== ids.length || ids.some((id) => this.waiting.has(id))) {
      return rpcError(409, -32600, 'Invalid Request: a request with this id is already in progress in this session');
    }
    const answers: Promise<JSONRPCMessage>[] = [];
    const extra = { requestInfo: { headers } };
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as JSONRPCMessage;
      if (kinds[i] === 'request') {
        const id = (m as { id: RequestId }).id;
        answers.push(new Promise<JSONRPCMessage>((resolve) => this.waiting.set(id, resolve)));
        const answer = this.fast?.(m as RpcRequest);
        if (answer) {
          answer.then(
            (result) => this.send({ result, jsonrpc: '2.0', id } as JSONRPCMessage),
            () => this.send(errorMessage(id, -32603, 'Internal error')),
          );
          continue;
        }
      }
      this.onmessage?.(m, extra);
    }
    if (answers.length === 0) return { status: 202, headers: {} };
    const out = await Promise.all(answers);
    return { status: 200, headers: { 'content-type': 'application/json', 'mcp-session-id': this.sessionId }, body: batch ? out : out[0] };
  }
}
