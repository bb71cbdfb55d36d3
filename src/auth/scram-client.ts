/**
 * Client side of SCRAM-SHA-256[-PLUS] (RFC 5802 / RFC 7677), for Warden's
 * connection to the upstream PostgreSQL, behaving like libpq. Pure: the caller
 * moves the bytes. Methods throw an Error on any protocol violation; a failed
 * server signature check means the peer does not know the verifier (MITM).
 */
import crypto from 'node:crypto';
import type { ChannelBinding } from './channel-binding.js';
import { scramPasswordBytes } from './saslprep.js';
import {
  SCRAM_NONCE_BYTES,
  SCRAM_SHA_256,
  SCRAM_SHA_256_PLUS,
  clientSignature,
  constantTimeEqual,
  decodeBase64,
  decodeMessage,
  hmacSha256,
  isPrintable,
  parseAttributes,
  saltedPassword,
  serverSignature,
  sha256,
  xorBuffers,
} from './scram-common.js';

export interface ScramClientOptions {
  password: string;
  /** Hash of the upstream's TLS certificate (tlsServerEndPointHash of the peer cert), if on TLS. */
  channelBinding?: ChannelBinding | undefined;
  /** Fail unless SCRAM-SHA-256-PLUS can be used (libpq's channel_binding=require). */
  requireChannelBinding?: boolean;
  /** Username sent in client-first (PostgreSQL ignores it; libpq sends ''). */
  username?: string;
  /** Refuse server-first iteration counts above this (protects against CPU exhaustion). Default 1e6. */
  maxIterations?: number;
  /** Source of the raw client nonce (default: 18 random bytes). */
  nonceBytes?: () => Buffer;
}

export interface ScramClientFirst {
  mechanism: string;
  data: Buffer;
}

export const DEFAULT_MAX_CLIENT_ITERATIONS = 1_000_000;

/** saslname escaping (RFC 5802 §5.1): "=" -> "=3D", "," -> "=2C". */
function saslname(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

export class ScramClientExchange {
  private readonly opts: ScramClientOptions;
  private state: 'start' | 'first-sent' | 'final-sent' | 'done' | 'failed' = 'start';
  private gs2Header = '';
  private clientNonce = '';
  private clientFirstBare = '';
  private expectedServerSignature: Buffer = Buffer.alloc(0);

  constructor(opts: ScramClientOptions) {
    this.opts = opts;
  }

  /** Pick a mechanism from AuthenticationSASL and build the SASLInitialResponse data. */
  clientFirst(mechanisms: string[]): ScramClientFirst {
    return this.guard('start', () => {
      const cb = this.opts.channelBinding;
      const canBind = cb !== undefined && cb.data.length > 0;
      let mechanism: string;
      if (canBind && mechanisms.includes(SCRAM_SHA_256_PLUS)) {
        mechanism = SCRAM_SHA_256_PLUS;
        this.gs2Header = `p=${cb.type},,`;
      } else if (this.opts.requireChannelBinding) {
        throw new Error('SCRAM: channel binding is required, but SCRAM-SHA-256-PLUS cannot be used');
      } else if (mechanisms.includes(SCRAM_SHA_256)) {
        mechanism = SCRAM_SHA_256;
        // "y": we could bind but the server did not offer it (lets a server that does detect a downgrade).
        this.gs2Header = canBind ? 'y,,' : 'n,,';
      } else {
        throw new Error(`SCRAM: no supported SASL mechanism offered (${mechanisms.join(', ')})`);
      }
      const raw = (this.opts.nonceBytes ?? (() => crypto.randomBytes(SCRAM_NONCE_BYTES)))();
      if (raw.length === 0) throw new Error('SCRAM: empty client nonce');
      this.clientNonce = raw.toString('base64');
      this.clientFirstBare = `n=${saslname(this.opts.username ?? '')},r=${this.clientNonce}`;
      this.state = 'first-sent';
      return { mechanism, data: Buffer.from(this.gs2Header + this.clientFirstBare, 'utf8') };
    });
  }

  /** AuthenticationSASLContinue data -> SASLResponse data (client-final-message). */
  handleServerFirst(data: Buffer): Buffer {
    return this.guard('first-sent', () => {
      const text = decodeMessage(data) ?? fail('malformed server-first-message');
      // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
      const attrs = parseAttributes(text) ?? fail('malformed server-first-message');
      if (attrs[0].name === 'm') fail('server requires an unsupported SCRAM extension');
      if (attrs.length < 3 || attrs[0].name !== 'r' || attrs[1].name !== 's' || attrs[2].name !== 'i') {
        fail('malformed server-first-message');
      }
      const [nonce, saltAttr, iterAttr] = attrs;
      if (!isPrintable(nonce.value)) fail('server nonce contains invalid characters');
      if (!nonce.value.startsWith(this.clientNonce) || nonce.value.length <= this.clientNonce.length) {
        fail('server nonce does not extend the client nonce');
      }
      const salt = decodeBase64(saltAttr.value);
      if (!salt || salt.length === 0) fail('invalid salt');
      if (!/^[1-9][0-9]*$/.test(iterAttr.value)) fail(`invalid iteration count "${iterAttr.value}"`);
      const iterations = Number(iterAttr.value);
      const max = this.opts.maxIterations ?? DEFAULT_MAX_CLIENT_ITERATIONS;
      if (!Number.isSafeInteger(iterations) || iterations > max) {
        fail(`iteration count ${iterAttr.value} exceeds the limit of ${max}`);
      }

      const bound = this.gs2Header.startsWith('p=');
      const cbData = bound ? (this.opts.channelBinding?.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
      const c = Buffer.concat([Buffer.from(this.gs2Header), cbData]).toString('base64');
      const withoutProof = `c=${c},r=${nonce.value}`;
      const authMessage = `${this.clientFirstBare},${text},${withoutProof}`;

      const salted = saltedPassword(scramPasswordBytes(this.opts.password), salt, iterations);
      const clientKey = hmacSha256(salted, 'Client Key');
      const proof = xorBuffers(clientKey, clientSignature(sha256(clientKey), authMessage));
      this.expectedServerSignature = serverSignature(hmacSha256(salted, 'Server Key'), authMessage);
      this.state = 'final-sent';
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
    });
  }

  /** AuthenticationSASLFinal data: verifies the server signature (throws if wrong). */
  handleServerFinal(data: Buffer): void {
    this.guard('final-sent', () => {
      const text = decodeMessage(data) ?? fail('malformed server-final-message');
      // server-final-message = (server-error / verifier) ["," extensions]
      const attrs = parseAttributes(text) ?? fail('malformed server-final-message');
      const first = attrs[0];
      if (first.name === 'e') fail(`server reported error "${first.value}"`);
      if (first.name !== 'v') fail('malformed server-final-message');
      const signature = decodeBase64(first.value) ?? fail('malformed server signature');
      if (!constantTimeEqual(signature, this.expectedServerSignature)) {
        fail('server signature mismatch: the server does not know the password (possible man-in-the-middle)');
      }
      this.state = 'done';
    });
  }

  private guard<T>(expected: 'start' | 'first-sent' | 'final-sent', body: () => T): T {
    if (this.state !== expected) {
      this.state = 'failed';
      throw new Error('SCRAM: exchange step called out of order');
    }
    try {
      return body();
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }
}

function fail(message: string): never {
  throw new Error(`SCRAM: ${message}`);
}
