/**
 * Stop and start a test cluster's server in place (the data directory stays):
 * an upstream that goes away and comes back. As root, pg_ctl runs as the
 * `postgres` OS user, as startPgCluster does.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';

function pgCtl(cluster: PgCluster, args: string[]): Promise<void> {
  const bin = path.join(cluster.binDir, 'pg_ctl');
  const [cmd, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { cwd: path.dirname(cluster.dataDir), timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`pg_ctl ${args[0]} failed: ${err.message}\n${stderr}${stdout}`)) : resolve(),
    );
  });
}

/** Fast shutdown; the cluster keeps its data directory. */
export function stopServer(cluster: PgCluster): Promise<void> {
  return pgCtl(cluster, ['stop', '-w', '-m', 'fast', '-D', cluster.dataDir]);
}

/** Start it again on the same port (after {@link stopServer}). */
export function startServer(cluster: PgCluster): Promise<void> {
  const tmpDir = path.dirname(cluster.dataDir);
  const o = `-p ${cluster.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${tmpDir} -c fsync=off`;
  return pgCtl(cluster, ['start', '-w', '-t', '60', '-D', cluster.dataDir, '-l', path.join(cluster.dataDir, 'postgres.log'), '-o', o]);
}
