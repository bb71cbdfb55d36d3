/**
 * `tls-server-end-point` channel binding (RFC 5929 §4.1), the only type
 * PostgreSQL supports. Pure: works on a DER certificate already in memory.
 */
import crypto from 'node:crypto';

export type ChannelBindingType = 'tls-server-end-point';

/** Channel-binding data for SCRAM-SHA-256-PLUS: `data` is the server certificate hash. */
export interface ChannelBinding {
  readonly type: ChannelBindingType;
  readonly data: Buffer;
}

/** Signature-algorithm OID -> Node hash name used for the certificate hash. */
const SIGNATURE_HASH: Readonly<Record<string, string>> = {
  // RSA PKCS#1 v1.5
  '1.2.840.113549.1.1.4': 'md5',
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.14': 'sha224',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '2.16.840.1.101.3.4.3.13': 'sha3-224',
  '2.16.840.1.101.3.4.3.14': 'sha3-256',
  '2.16.840.1.101.3.4.3.15': 'sha3-384',
  '2.16.840.1.101.3.4.3.16': 'sha3-512',
  // ECDSA
  '1.2.840.10045.4.1': 'sha1',
  '1.2.840.10045.4.3.1': 'sha224',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '2.16.840.1.101.3.4.3.9': 'sha3-224',
  '2.16.840.1.101.3.4.3.10': 'sha3-256',
  '2.16.840.1.101.3.4.3.11': 'sha3-384',
  '2.16.840.1.101.3.4.3.12': 'sha3-512',
  // DSA
  '1.2.840.10040.4.3': 'sha1',
  '2.16.840.1.101.3.4.3.1': 'sha224',
  '2.16.840.1.101.3.4.3.2': 'sha256',
};

interface Tlv {
  readonly tag: number;
  /** Offset of the first content byte. */
  readonly start: number;
  /** Offset just past the content. */
  readonly end: number;
}

/** Read one DER TLV at `offset` (definite lengths only), bounds-checked against `limit`. */
function readTlv(der: Buffer, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new Error('truncated DER');
  const tag = der[offset];
  let len = der[offset + 1];
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i];
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new Error('truncated DER');
  return { tag, start, end };
}

function decodeOid(bytes: Buffer): string {
  if (bytes.length === 0) throw new Error('empty OID');
  const arcs: number[] = [];
  let value = 0;
  for (const b of bytes) {
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  const first = arcs.shift() ?? 0;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

/**
 * OID of the outer `signatureAlgorithm` of an X.509 certificate:
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm SEQUENCE { OID, params }, signature }.
 */
export function certificateSignatureOid(certDer: Buffer): string {
  const SEQUENCE = 0x30;
  const OID = 0x06;
  const cert = readTlv(certDer, 0, certDer.length);
  if (cert.tag !== SEQUENCE) throw new Error('certificate is not a DER SEQUENCE');
  const tbs = readTlv(certDer, cert.start, cert.end);
  if (tbs.tag !== SEQUENCE) throw new Error('tbsCertificate is not a SEQUENCE');
  const alg = readTlv(certDer, tbs.end, cert.end);
  if (alg.tag !== SEQUENCE) throw new Error('signatureAlgorithm is not a SEQUENCE');
  const oid = readTlv(certDer, alg.start, alg.end);
  if (oid.tag !== OID) throw new Error('signatureAlgorithm has no OID');
  return decodeOid(certDer.subarray(oid.start, oid.end));
}

/**
 * RFC 5929 `tls-server-end-point` data: hash of the DER certificate with the
 * certificate's signature hash, MD5/SHA-1 upgraded to SHA-256. Throws (this is
 * configuration-time input) for non-certificates and for signature algorithms
 * without a single hash (RSASSA-PSS, EdDSA), which PostgreSQL rejects too.
 */
export function tlsServerEndPointHash(certDer: Buffer): Buffer {
  new crypto.X509Certificate(certDer); // validates that this really is a certificate
  let oid: string;
  try {
    oid = certificateSignatureOid(certDer);
  } catch (err) {
    throw new Error(`tls-server-end-point: cannot parse certificate: ${(err as Error).message}`);
  }
  const hash = SIGNATURE_HASH[oid];
  if (hash === undefined) {
    throw new Error(`tls-server-end-point: unsupported certificate signature algorithm ${oid}`);
  }
  const effective = hash === 'md5' || hash === 'sha1' ? 'sha256' : hash;
  return crypto.createHash(effective).update(certDer).digest();
}

/** Convenience: the binding for a server/peer certificate. */
export function tlsServerEndPointBinding(certDer: Buffer): ChannelBinding {
  return { type: 'tls-server-end-point', data: tlsServerEndPointHash(certDer) };
}
