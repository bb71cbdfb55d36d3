/**
 * Sessions relay through the native socket I/O addon when it is built, and
 * through Node.js sockets when it is not (or WARDEN_NATIVE_IO=0): both paths
 * carry real clients the same way. Warden runs as a process, so each path is
 * the one a deployment gets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, baseYaml, PASSWORDS } from '../helpers/warden-env.js';
import { startWardenProcess, type WardenProcess } from '../helpers/warden-process.js';
import { run } from '../helpers/psql.js';
import { nativeIo } from '../../src/proxy/transport/native-io.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';

let cluster: PgCluster;

beforeAll(async () => {
  cluster = await startCluster();
});

afterAll(async () => {
  await cluster?.stop();
});

const modes = [
  { mode: 'native', env: {} as NodeJS.ProcessEnv, skip: !nativeIo.available },
  { mode: 'node', env: { WARDEN_NATIVE_IO: '0' } as NodeJS.ProcessEnv, skip: false },
];

describe.each(modes)('socket I/O: $mode', ({ mode, env, skip }) => {
  let warden: WardenProcess;
  const pgEnv = () => ({ ...process.env, PGPASSWORD: PASSWORDS.alice });
  const base = () => ['-h', '127.0.0.1', '-p', String(warden.port), '-U', 'alice'];

  beforeAll(async () => {
    if (skip) return;
    warden = await startWardenProcess(baseYaml(cluster.port).replace('port: 0', 'port: __PORT__'), env, 'info');
  });

  afterAll(async () => {
    await warden?.stop();
  });

  it.skipIf(skip)('says which I/O it uses when it starts', async () => {
    const listening = () =>
      warden
        .stderr()
        .split('\n')
        .find((l) => l.includes('"warden listening"'));
    // The log is written asynchronously: the port may accept connections first.
    await expect.poll(listening, { timeout: 5000 }).toBeDefined();
    const line = listening();
    expect(JSON.parse(line!).socketIo).toBe(mode);
    if (mode === 'node') expect(warden.stderr()).not.toContain('native socket I/O unavailable'); // asked for, not a failure
  });

  it.skipIf(skip)('pgbench select-only (simple and extended) and TPC-B complete without errors', async () => {
    const init = await run('pgbench', ['-i', '-s', '1', '-q', ...base(), 'app'], pgEnv());
    expect(init.code, init.err).toBe(0);
    for (const args of [['-S', '-M', 'simple'], ['-S', '-M', 'extended'], ['-M', 'simple']]) {
      const r = await run('pgbench', ['-n', '-c', '4', '-j', '2', '-t', '150', ...args, ...base(), 'app'], pgEnv());
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/number of transactions actually processed: 600\/600/);
    }
  });

  it.skipIf(skip)('COPY in both directions carries every byte', async () => {
    const rows = Array.from({ length: 5000 }, (_, i) => `${i}\t${'v'.repeat(i % 300)}`).join('\n');
    const table = `copy_${mode}`;
    const r = await run(
      'psql',
      ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', ...base(), '-d', 'app', '-f', '-'],
      pgEnv(),
      `create table ${table}(a int, b text);\ncopy ${table} from stdin;\n${rows}\n\\.\ncopy (select * from ${table} order by a) to stdout;\n`,
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim()).toBe(rows);
  });

  it.skipIf(skip)('a wrong password is refused and the next login works', async () => {
    const bad = await run('psql', ['-X', '-At', ...base(), '-d', 'app', '-c', 'select 1'], { ...process.env, PGPASSWORD: 'nope' });
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('password authentication failed');
    const good = await run('psql', ['-X', '-At', ...base(), '-d', 'app', '-c', 'select 41 + 1'], pgEnv());
    expect(good.out.trim()).toBe('42');
  });
});
