/** Run the real `warden` CLI as a child process (for RSS, signals and exit codes). */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { freePort } from '../../src/embedded/free-port.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const BIN = path.join(ROOT, 'bin/warden.js');

export interface WardenProcess {
  child: ChildProcess;
  port: number;
  /** The config file it was started with (rewrite it, then SIGHUP, to test a reload). */
  config: string;
  stderr(): string;
  stop(): Promise<number | null>;
}

export function writeTempConfig(yaml: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cfg-'));
  const file = path.join(dir, 'warden.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (child.exitCode !== null) throw new Error(`warden exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('warden did not start listening');
}

/** Start `warden start --config` with `listen.port` replaced by a free port (`__PORT__` placeholder). */
export async function startWardenProcess(yaml: string, env: NodeJS.ProcessEnv = {}, logLevel = 'warn'): Promise<WardenProcess> {
  const port = await freePort();
  const file = writeTempConfig(yaml.replace('__PORT__', String(port)));
  const child = spawn(process.execPath, [BIN, 'start', '--config', file, '--log-level', logLevel], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  try {
    await waitForPort(port, child);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}: ${err}`);
  }
  return {
    child,
    port,
    config: file,
    stderr: () => err,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

/** Resident set size of a process in bytes (Linux). */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Run the CLI to completion (killed after `timeoutMs`, so a command that unexpectedly keeps running cannot outlive the test). */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT, timeoutMs = 50_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, cwd });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      err += `\n[runCli] killed after ${timeoutMs} ms`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}
