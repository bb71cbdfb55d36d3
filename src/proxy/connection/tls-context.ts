/** Warden's server-side TLS material, loaded once at start. */
import fs from 'node:fs';
import tls from 'node:tls';
import crypto from 'node:crypto';
import type { ListenTlsConfig } from '../../config/types.js';
import { tlsServerEndPointBinding, type ChannelBinding } from '../../auth/index.js';

export interface ServerTls {
  readonly context: tls.SecureContext;
  readonly require: boolean;
  /** For SCRAM-SHA-256-PLUS: the hash of Warden's own certificate. */
  readonly channelBinding: ChannelBinding;
}

export function loadServerTls(cfg: ListenTlsConfig): ServerTls {
  const cert = fs.readFileSync(cfg.cert);
  const key = fs.readFileSync(cfg.key);
  const context = tls.createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  const leaf = new crypto.X509Certificate(cert);
  return { context, require: cfg.require, channelBinding: tlsServerEndPointBinding(leaf.raw) };
}
