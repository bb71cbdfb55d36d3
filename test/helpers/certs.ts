/**
 * Throw-away TLS material for the integration tests, made with the `openssl` CLI
 * (run asynchronously: Warden may be running in the test process).
 *
 * - a test CA, and a server certificate signed by it for `DNS:localhost, IP:127.0.0.1`;
 * - two more certificates signed by it, for host-name checks: `DNS:localhost` only (no IP
 *   address) and `DNS:db.example.invalid`;
 * - a second, unrelated CA (for verification failures).
 *
 * Everything lives in one temp dir; `cleanup()` removes it. `forPostgres()` copies the server
 * certificate and key to a directory the `postgres` OS user can read (PostgreSQL refuses a
 * key that is not owned by its user or readable by others).
 */
import { execFile } from 'node:child_process';
import { chmod, chown, copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface TestCerts {
  dir: string;
  /** The test CA certificate (PEM). */
  ca: string;
  caKey: string;
  /** Server certificate signed by `ca`, SAN DNS:localhost, IP:127.0.0.1. */
  serverCert: string;
  serverKey: string;
  /** A CA that signed nothing here. */
  otherCa: string;
  /** Signed by `ca`, SAN DNS:localhost only (no IP address). */
  localhostOnly: { cert: string; key: string };
  /** Signed by `ca`, SAN DNS:db.example.invalid only. */
  otherHost: { cert: string; key: string };
  /** Copy the server cert and key where PostgreSQL (running as `postgres` when we are root) can use them. */
  forPostgres(): Promise<{ dir: string; cert: string; key: string }>;
  cleanup(): Promise<void>;
}

function exec(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const openssl = (args: string[], cwd: string): Promise<string> => exec('openssl', args, cwd);

/** EC P-256 keys: fast to generate, and signatures (ecdsa-with-SHA256) PostgreSQL channel binding handles. */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, name: string, cn: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  await openssl(
    [
      'req', '-x509', ...NEW_KEY, '-keyout', key, '-out', cert, '-days', '3', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  return { cert, key };
}

/** A server certificate signed by `ca`. */
async function issue(
  dir: string,
  ca: { cert: string; key: string },
  name: string,
  cn: string,
  san: string,
): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  await openssl(['req', '-new', ...NEW_KEY, '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], dir);
  await writeFile(
    ext,
    [
      `subjectAltName = ${san}`,
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = serverAuth',
      '',
    ].join('\n'),
  );
  await openssl(
    ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '3', '-sha256', '-extfile', ext],
    dir,
  );
  await chmod(key, 0o600);
  return { cert, key };
}

async function postgresOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const uid = Number((await exec('id', ['-u', 'postgres'], '/')).trim());
  const gid = Number((await exec('id', ['-g', 'postgres'], '/')).trim());
  return { uid, gid };
}

export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-certs-'));
  const extra: string[] = [];
  try {
    const ca = await makeCa(dir, 'ca', 'Warden Test CA');
    const other = await makeCa(dir, 'other-ca', 'Unrelated Test CA');

    const server = await issue(dir, ca, 'server', 'localhost', 'DNS:localhost, IP:127.0.0.1');
    const localhostOnly = await issue(dir, ca, 'localhost-only', 'localhost', 'DNS:localhost');
    const otherHost = await issue(dir, ca, 'other-host', 'db.example.invalid', 'DNS:db.example.invalid');
    const serverCert = server.cert;
    const serverKey = server.key;

    return {
      dir,
      ca: ca.cert,
      caKey: ca.key,
      serverCert,
      serverKey,
      otherCa: other.cert,
      localhostOnly,
      otherHost,
      async forPostgres() {
        const pgDir = await mkdtemp(path.join(os.tmpdir(), 'warden-pgcerts-'));
        extra.push(pgDir);
        const cert = path.join(pgDir, 'server.crt');
        const key = path.join(pgDir, 'server.key');
        await copyFile(serverCert, cert);
        await copyFile(serverKey, key);
        const owner = await postgresOwner();
        if (owner) {
          await chown(cert, owner.uid, owner.gid);
          await chown(key, owner.uid, owner.gid);
        }
        await chmod(cert, 0o644);
        await chmod(key, 0o600);
        await chmod(pgDir, 0o755); // the postgres user must be able to traverse it
        return { dir: pgDir, cert, key };
      },
      async cleanup() {
        for (const d of [dir, ...extra]) await rm(d, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
