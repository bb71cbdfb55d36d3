/**
 * The MCP stdio transport of `warden mcp`: newline-delimited JSON-RPC messages on stdin and
 * stdout, a transport of the SDK's `Transport` interface (the SDK's McpServer and protocol
 * layer run on it unchanged).
 *
 * Why not the SDK's StdioServerTransport: it validates every incoming message with a zod union
 * of all JSON-RPC message schemas (whose failed branches build zod errors) before the protocol
 * layer validates it again, and concatenates buffers for every chunk. Here a message gets the
 * JSON-RPC shape check of jsonrpc.ts, and the protocol layer checks each method's params as
 * before. Hot requests that are plainly valid (`ping`, a `query` call) can be answered by a
 * {@link FastPath}; everything else goes to the SDK.
 *
 * Malformed input never ends the process: a line that is not JSON is answered with a JSON-RPC
 * parse error (-32700), one that is not a JSON-RPC 2.0 message (or a batch, which this
 * transport does not take) with Invalid Request (-32600), and a message longer than
 * `maxMessage` bytes is dropped up to its newline and answered with Invalid Request. Each
 * message is written to stdout in one write.
 */
import type { Readable, Writable } from 'node:stream';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { errorMessage, isId, isObject, kindOf, type FastPath, type RpcRequest } from './jsonrpc.js';

/** The SDK's limit for a buffered message. */
export const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

const NEWLINE = 0x0a;

export class LineTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;
  /** The start of a message whose newline has not come yet. */
  private parts: Buffer[] = [];
  private size = 0;
  /** Dropping an over-long message up to its newline. */
  private skipping = false;
  /** Requests the fast path is answering: id → cancelled by the client. */
  private readonly fastInFlight = new Map<RequestId, boolean>();
  private started = false;
  private closed = false;

  constructor(
    private readonly input: Readable = process.stdin,
    private readonly output: Writable = process.stdout,
    private readonly fast?: FastPath,
    private readonly maxMessage = MAX_MESSAGE_BYTES,
  ) {}

  async start(): Promise<void> {
    if (this.started) throw new Error('LineTransport already started');
    this.started = true;
    this.input.on('data', this.ondata);
    this.input.on('error', this.onInputError);
    // A write to a client that went away (EPIPE) must not end the process with an unhandled error.
    this.output.on('error', this.onOutputError);
  }

  private readonly onInputError = (err: Error): void => this.onerror?.(err);

  private readonly onOutputError = (err: Error): void => {
    this.onerror?.(err);
    void this.close();
  };

  private readonly ondata = (data: Buffer | string): void => {
    const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE, start); nl !== -1 && !this.closed; nl = chunk.indexOf(NEWLINE, start)) {
      if (this.skipping) this.skipping = false;
      else if (this.size === 0) this.line(chunk.toString('utf8', start, nl));
      else {
        this.parts.push(chunk.subarray(start, nl));
        const whole = Buffer.concat(this.parts, this.size + nl - start);
        this.parts = [];
        this.size = 0;
        this.line(whole.toString('utf8'));
      }
      start = nl + 1;
    }
    if (start >= chunk.length || this.skipping || this.closed) return;
    const rest = chunk.length - start;
    if (this.size + rest > this.maxMessage) {
      this.parts = [];
      this.size = 0;
      this.skipping = true;
      this.reply(errorMessage(null, -32600, `Invalid Request: a message longer than ${this.maxMessage} bytes`));
      return;
    }
    // A copy: the part is kept past this event.
    this.parts.push(Buffer.from(chunk.subarray(start)));
    this.size += rest;
  };

  /** One line of input: one JSON-RPC message. */
  private line(text: string): void {
    const end = text.length > 0 && text.charCodeAt(text.length - 1) === 13 ? text.length - 1 : text.length;
    if (end !== text.length) text = text.slice(0, end);
    let m: unknown;
    try {
      m = JSON.parse(text);
    } catch {
      if (text.trim() === '') return; // an empty line carries no message
      this.reply(errorMessage(null, -32700, 'Parse error: a line that is not JSON'));
      return;
    }
    const kind = kindOf(m);
    if (kind === undefined) {
      const id = isObject(m) && isId(m.id) ? m.id : null;
      this.reply(errorMessage(id, -32600, Array.isArray(m) ? 'Invalid Request: batches are not taken over stdio (send one message per line)' : 'Invalid Request: not a JSON-RPC 2.0 message'));
      return;
    }
    if (kind === 'request' && this.fast) {
      const r = m as RpcRequest;
      if (!this.fastInFlight.has(r.id)) {
        const answer = this.fast(r);
        if (answer) {
          this.fastInFlight.set(r.id, false);
          answer.then(
            (result) => this.finish(r.id, { result, jsonrpc: '2.0', id: r.id } as JSONRPCMessage),
            () => this.finish(r.id, errorMessage(r.id, -32603, 'Internal error')),
          );
          return;
        }
      }
    } else if (kind === 'notification' && (m as RpcRequest).method === 'notifications/cancelled' && this.fastInFlight.size > 0) {
      const id = (m as RpcRequest).params?.requestId;
      if (isId(id) && this.fastInFlight.has(id)) this.fastInFlight.set(id, true); // answered by nobody, as the SDK does for a cancelled request
    }
    try {
      this.onmessage?.(m as JSONRPCMessage);
    } catch (err) {
      this.onerror?.(err as Error);
    }
  }

  private finish(id: RequestId, message: JSONRPCMessage): void {
    const cancelled = this.fastInFlight.get(id);
    this.fastInFlight.delete(id);
    if (cancelled === false) this.reply(message);
  }

  private reply(message: JSONRPCMessage): void {
    this.send(message).catch((err: unknown) => this.onerror?.(err as Error));
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) return;
    if (this.output.write(JSON.stringify(message) + '\n')) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.output.off('drain', done);
        this.output.off('close', done);
        resolve();
      };
      this.output.on('drain', done);
      this.output.on('close', done);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.input.off('data', this.ondata);
    this.input.off('error', this.onInputError);
    if (this.input.listenerCount('data') === 0) this.input.pause();
    this.parts = [];
    this.size = 0;
    this.fastInFlight.clear();
    this.onclose?.();
  }
}
