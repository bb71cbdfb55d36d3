/**
 * The package as an operator installs it: `npm pack`, then `npm install -g` of the tarball into a
 * temporary prefix gives a working `warden` command; the systemd unit in deploy/ verifies.
 *
 * To stay within a minute, the tarball is packed from the dist/ that `npm test` has just built
 * (`--ignore-scripts`: `prepare` would run tsc again), and installed with `--ignore-scripts`,
 * after which the test runs Warden's own install script (the native addon) itself. What that
 * leaves out is better-sqlite3's install script: on this machine it compiles SQLite from source
 * (its prebuilt binaries come from outside the npm registry), ~4 minutes on 2 cores; the commands
 * run here (--version, init, config check) do not open a SQLite store.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/warden-process.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-pack-'));
const prefix = path.join(work, 'prefix');

/** The environment without npm's own variables (vitest may run under npx/npm). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd: o.cwd ?? work, env: o.env ?? cleanEnv(), encoding: 'utf8', timeout: o.timeout ?? 60_000 });
}

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
let tarball = '';

describe('npm pack + npm install -g', () => {
  beforeAll(() => {
    expect(fs.existsSync(path.join(ROOT, 'dist/cli/main.js')), 'dist/ is missing: run npm run build first').toBe(true);
    const packed = run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT });
    expect(packed.status, packed.stderr).toBe(0);
    tarball = path.join(work, `${pkg.name}-${pkg.version}.tgz`);
    expect(fs.existsSync(tarball)).toBe(true);
    // ~20-35 s here; the ceiling is higher for a full test run on a busy machine.
    const installed = run('npm', ['install', '-g', '--prefix', prefix, tarball, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], { timeout: 110_000 });
    expect(installed.status, `${installed.stdout}\n${installed.stderr}`).toBe(0);
  }, 150_000);

  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('the tarball holds what runs, and not the sources or tests', () => {
    const list = run('tar', ['-tzf', tarball]).stdout.split('\n');
    for (const f of ['package/package.json', 'package/bin/warden.js', 'package/dist/cli/main.js', 'package/native/warden_io.c', 'package/native/binding.gyp', 'package/scripts/build-native.js', 'package/deploy/warden.service', 'package/README.md']) {
      expect(list, f).toContain(f);
    }
    expect(list.filter((f) => /^package\/(src|test|bench|node_modules)\//.test(f))).toEqual([]);
  });

  it('gives a warden command: --version, init, config check', () => {
    const bin = path.join(prefix, 'bin', 'warden');
    const version = run(bin, ['--version']);
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe(pkg.version);

    const file = path.join(work, 'warden.yaml');
    const init = run(bin, ['init', '-o', file]);
    expect(init.status, init.stderr).toBe(0);
    const ok = run(bin, ['config', 'check', '--config', file, '--json'], {
      env: cleanEnv({ APP_DB_PASSWORD: 'x', ALICE_PASSWORD: 'a', DANA_PASSWORD: 'd', WARDEN_MASK_KEY: '0123456789abcdef0' }),
    });
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, problems: [] });
  });

  it("Warden's install script builds the native addon in the installed package, or says it falls back", () => {
    const dir = path.join(prefix, 'lib', 'node_modules', pkg.name);
    const r = run(process.execPath, [path.join(dir, 'scripts', 'build-native.js')], { cwd: dir });
    expect(r.status, r.stderr).toBe(0);
    const built = fs.existsSync(path.join(dir, 'native', 'build', 'Release', 'warden_io.node'));
    if (!built) expect(r.stderr).toMatch(/relay through Node\.js sockets/);
    else expect(r.stdout + r.stderr).toMatch(/built native\/build\/Release\/warden_io\.node/);
  });

  it('deploy/warden.service passes systemd-analyze verify (ExecStart pointed at the installed warden)', (ctx) => {
    const which = run('sh', ['-c', 'command -v systemd-analyze']);
    if (which.status !== 0) {
      ctx.skip(true, 'systemd-analyze is not installed on this machine');
      return;
    }
    const unit = fs.readFileSync(path.join(ROOT, 'deploy', 'warden.service'), 'utf8');
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(unit).toMatch(/^NoNewPrivileges=yes$/m);
    expect(unit).toMatch(/^ProtectSystem=strict$/m);
    const file = path.join(work, 'warden.service');
    fs.writeFileSync(file, unit.replace('/usr/local/bin/warden', path.join(prefix, 'bin', 'warden')));
    const ok = run('systemd-analyze', ['verify', file]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).not.toMatch(/Unknown (key|section)/);
    // And it would catch a unit that cannot start.
    fs.writeFileSync(file, unit.replace('/usr/local/bin/warden', path.join(work, 'no-such-warden')));
    expect(run('systemd-analyze', ['verify', file]).status).not.toBe(0);
  });
});
