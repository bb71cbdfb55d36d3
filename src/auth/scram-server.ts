/**
 * Server side of SCRAM-SHA-256[-PLUS] (RFC 5802 / RFC 7677), mirroring
 * PostgreSQL's auth-scram.c. A pure state machine: the caller moves the bytes
 * (AuthenticationSASL / SASLInitialResponse / AuthenticationSASLContinue /
 * SASLResponse / AuthenticationSASLFinal) and turns `{ ok: false }` into an
 * ErrorResponse. Methods never throw.
 */
import crypto from 'node:crypto';
import type { ChannelBinding } from './channel-binding.js';
import {
  SCRAM_KEY_LEN,
  SCRAM_NONCE_BYTES,
  SCRAM_SHA_256,
  SCRAM_SHA_256_PLUS,
  clientSignature,
  constantTimeEqual,
  decodeBase64,
  decodeMessage,
  isPrintable,
  parseAttributes,
  serverSignature,
  sha256,
  xorBuffers,
} from './scram-common.js';
import type { ScramVerifier } from './scram-verifier.js';

export { tlsServerEndPointHash } from './channel-binding.js';

export interface ScramServerOptions {
  /** The role's verifier, or a {@link mockScramVerifier} for unknown roles. */
  verifier: ScramVerifier;
  /**
   * Other secrets the role may log in with (short-lived tokens): their keys were
   * derived with the same salt and iteration count as `verifier`, so one
   * server-first message serves them all; the proof is checked against each.
   * Each is tried in constant time; the one that matched is reported.
   */
  alternatives?: () => readonly { readonly id: string; readonly storedKey: Buffer; readonly serverKey: Buffer }[];
  /** Hash of our TLS certificate; when set, SCRAM-SHA-256-PLUS is offered. */
  channelBinding?: ChannelBinding | undefined;
  /** Source of the raw server nonce (default: 18 random bytes, as PostgreSQL). */
  nonceBytes?: () => Buffer;
}

export type ScramServerFirstResult = { ok: true; serverFirst: Buffer } | { ok: false; error: string };
export type ScramServerFinalResult = { ok: true; serverFinal: Buffer; /** The alternative that matched, if not the verifier. */ alternative?: string } | { ok: false; error: string };

type Failure = { ok: false; error: string };

/** Same message for a wrong password and an unknown user. */
export const SCRAM_AUTH_FAILED = 'password authentication failed';

class ScramError extends Error {}

function reject(message: string): never {
  throw new ScramError(message);
}

export class ScramServerExchange {
  private readonly verifier: ScramVerifier;
  private readonly alternatives: ScramServerOptions['alternatives'];
  private readonly binding: ChannelBinding | undefined;
  private readonly nonceBytes: () => Buffer;
  private state: 'start' | 'continue' | 'done' | 'failed' = 'start';
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  constructor(opts: ScramServerOptions) {
    this.verifier = opts.verifier;
    this.alternatives = opts.alternatives;
    const cb = opts.channelBinding;
    this.binding = cb && cb.data.length > 0 ? cb : undefined;
    this.nonceBytes = opts.nonceBytes ?? (() => crypto.randomBytes(SCRAM_NONCE_BYTES));
  }

  /** Mechanisms for AuthenticationSASL, preferred first. */
  mechanisms(): string[] {
    return this.binding ? [SCRAM_SHA_256_PLUS, SCRAM_SHA_256] : [SCRAM_SHA_256];
  }

  /** SASLInitialResponse: returns the server-first-message for AuthenticationSASLContinue. */
  handleClientFirst(mechanism: string, data: Buffer): ScramServerFirstResult {
    return this.step('start', () => {
      this.readClientFirst(mechanism, data);
      const raw = this.nonceBytes();
      if (!Buffer.isBuffer(raw) || raw.length === 0) reject('internal error: empty server nonce');
      this.nonce += raw.toString('base64');
      this.serverFirst = `r=${this.nonce},s=${this.verifier.salt.toString('base64')},i=${this.verifier.iterations}`;
      this.state = 'continue';
      return { ok: true, serverFirst: Buffer.from(this.serverFirst, 'utf8') };
    });
  }

  /** SASLResponse: verifies the proof; returns the server-final-message for AuthenticationSASLFinal. */
  handleClientFinal(data: Buffer): ScramServerFinalResult {
    return this.step('continue', () => {
      const { withoutProof, proof } = this.readClientFinal(data);
      const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
      const check = (storedKey: Buffer): boolean => constantTimeEqual(sha256(xorBuffers(proof, clientSignature(storedKey, authMessage))), storedKey);
      let serverKey: Buffer | undefined;
      let alternative: string | undefined;
      if (check(this.verifier.storedKey) && this.verifier.doomed !== true) serverKey = this.verifier.serverKey;
      else {
        for (const alt of this.alternatives?.() ?? []) {
          if (check(alt.storedKey) && serverKey === undefined) {
            serverKey = alt.serverKey;
            alternative = alt.id;
          }
        }
      }
      if (serverKey === undefined) reject(SCRAM_AUTH_FAILED);
      this.state = 'done';
      const v = serverSignature(serverKey, authMessage).toString('base64');
      return { ok: true, serverFinal: Buffer.from(`v=${v}`, 'utf8'), ...(alternative !== undefined ? { alternative } : {}) };
    });
  }

  private step<T extends { ok: true }>(expected: 'start' | 'continue', body: () => T): T | Failure {
    if (this.state !== expected) {
      this.state = 'failed';
      return { ok: false, error: 'unexpected SCRAM message' };
    }
    try {
      return body();
    } catch (err) {
      this.state = 'failed';
      return { ok: false, error: err instanceof ScramError ? err.message : 'malformed SCRAM message' };
    }
  }

  private readClientFirst(mechanism: string, data: Buffer): void {
    if (!this.mechanisms().includes(mechanism)) {
      reject(`unsupported SASL mechanism ${JSON.stringify(String(mechanism).slice(0, 64))}`);
    }
    const plus = mechanism === SCRAM_SHA_256_PLUS;
    const text = decodeMessage(data) ?? reject('malformed client-first-message');

    // gs2-header = gs2-cbind-flag "," [authzid] ","
    const flagEnd = text.indexOf(',');
    if (flagEnd < 0) reject('malformed client-first-message');
    const flag = text.slice(0, flagEnd);
    if (flag.startsWith('p=')) {
      if (!plus) reject('channel binding data sent, but SCRAM-SHA-256-PLUS was not selected');
      if (flag !== `p=${this.binding?.type ?? ''}`) reject('unsupported SCRAM channel-binding type');
    } else if (flag === 'y') {
      if (plus) reject('SCRAM-SHA-256-PLUS selected without channel binding data');
      if (this.binding) reject('channel binding downgrade: client supports it but believes the server does not');
    } else if (flag === 'n') {
      if (plus) reject('SCRAM-SHA-256-PLUS selected without channel binding data');
    } else {
      reject('unexpected SCRAM channel-binding flag');
    }
    const afterFlag = text.slice(flagEnd + 1);
    if (afterFlag.startsWith('a=')) reject('SCRAM authorization identity is not supported');
    if (!afterFlag.startsWith(',')) reject('malformed SCRAM gs2 header');
    this.gs2Header = `${flag},,`;
    this.clientFirstBare = afterFlag.slice(1);

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    const attrs = parseAttributes(this.clientFirstBare) ?? reject('malformed client-first-message');
    if (attrs[0].name === 'm') reject('unsupported mandatory SCRAM extension');
    // The username is ignored, as in PostgreSQL: the startup packet's user counts.
    if (attrs[0].name !== 'n' || attrs.length < 2) reject('malformed client-first-message');
    const nonce = attrs[1];
    if (nonce.name !== 'r' || !isPrintable(nonce.value)) reject('malformed client nonce');
    this.nonce = nonce.value;
  }

  private readClientFinal(data: Buffer): { withoutProof: string; proof: Buffer } {
    const text = decodeMessage(data) ?? reject('malformed client-final-message');
    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    const attrs = parseAttributes(text) ?? reject('malformed client-final-message');
    if (attrs.length < 3) reject('malformed client-final-message');
    const [cb, nonce] = attrs;
    const proofAttr = attrs[attrs.length - 1];
    if (cb.name !== 'c' || nonce.name !== 'r' || proofAttr.name !== 'p') reject('malformed client-final-message');
    if (attrs.slice(2, -1).some((a) => a.name === 'p')) reject('malformed client-final-message');

    // c= is base64(gs2-header [+ cbind-data]); PostgreSQL compares the base64 text too.
    const cbData = this.gs2Header.startsWith('p=') && this.binding ? this.binding.data : Buffer.alloc(0);
    const expectedCb = Buffer.concat([Buffer.from(this.gs2Header), cbData]).toString('base64');
    if (cb.value !== expectedCb) reject('SCRAM channel binding check failed');
    if (nonce.value !== this.nonce) reject('SCRAM nonce mismatch');
    const proof = decodeBase64(proofAttr.value);
    if (!proof || proof.length !== SCRAM_KEY_LEN) reject('malformed SCRAM client proof');
    return { withoutProof: text.slice(0, text.length - proofAttr.value.length - 3), proof };
  }
}
