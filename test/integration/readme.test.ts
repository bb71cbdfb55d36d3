/**
 * The README's commands run as written. Its ```sh / ```bash blocks are run in order, in one bash
 * shell (so an `export` carries on, as in a reader's terminal), in an empty directory where
 * `bin/` is this repository's: `node bin/warden.js ...` works as in a checkout. A block whose
 * first line is `# readme-test: skip (REASON)` is not run (it needs an external database, or runs
 * until Ctrl-C); the reason is visible in the README. A line `# -> ACTION, by RULE` after a
 * `policy explain` is checked against what it printed. Every ```yaml block that is a whole file
 * (`version: 1`) must pass `config check` with the variables it names set.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli } from '../helpers/warden-process.js';

interface Block {
  lang: string;
  line: number;
  text: string;
  skip?: string;
}

function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]);
    if (!open) {
      if (/^```/.test(lines[i])) {
        // an unlabelled block: skip to its end
        for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++);
      }
      continue;
    }
    const body: string[] = [];
    const start = i + 1;
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    const skip = /^# readme-test: skip \((.+)\)\s*$/.exec(body[0] ?? '');
    out.push({ lang: open[1], line: start, text: body.join('\n'), ...(skip ? { skip: skip[1] } : {}) });
  }
  return out;
}

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const all = blocks(readme);
const shell = all.filter((b) => b.lang === 'sh' || b.lang === 'bash');

describe("the README's commands", () => {
  it('every shell block is either run or marked skipped with a reason', () => {
    const run = shell.filter((b) => !b.skip);
    const skipped = shell.filter((b) => b.skip);
    expect(run.length).toBeGreaterThanOrEqual(2);
    for (const b of skipped) expect(b.skip!.length, `README.md:${b.line}`).toBeGreaterThan(5);
    // A marker anywhere but the first line would be silently ignored: refuse it.
    for (const b of shell) expect(b.text.split('\n').slice(1).some((l) => l.includes('readme-test:')), `README.md:${b.line}`).toBe(false);
  });

  it('the blocks not marked skipped run as written, in order, in one shell', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-readme-'));
    fs.symlinkSync(path.join(ROOT, 'bin'), path.join(dir, 'bin'));
    const run = shell.filter((b) => !b.skip);
    const script = ['set -euo pipefail', ...run.map((b) => `echo "### README.md:${b.line}"\n${b.text}`)].join('\n');
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(APP_DB_PASSWORD|ALICE_PASSWORD|DANA_PASSWORD|WARDEN_|npm_)/.test(k)) env[k] = v;
    const r = spawnSync('bash', ['-c', script], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
    const shown = `${r.stdout}\n${r.stderr}`;
    expect(r.status, shown).toBe(0);
    // `# -> ACTION, by RULE` after a dry run: what it printed.
    const expectations = run.flatMap((b) => [...b.text.matchAll(/^# -> (\w+), by ([\w-]+)/gm)].map((m) => ({ action: m[1].toUpperCase(), rule: m[2] })));
    expect(expectations.length).toBeGreaterThanOrEqual(2);
    for (const e of expectations) expect(r.stdout, shown).toMatch(new RegExp(`Decision: ${e.action}\\b[^\\n]*"${e.rule}"`));
    fs.rmSync(dir, { recursive: true, force: true });
  }, 90_000);

  it('every whole-file YAML example passes config check', async () => {
    const files = all.filter((b) => b.lang === 'yaml' && /^version: 1$/m.test(b.text));
    expect(files.length).toBeGreaterThanOrEqual(1);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-readme-yaml-'));
    for (const b of files) {
      const file = path.join(dir, `example-${b.line}.yaml`);
      fs.writeFileSync(file, b.text);
      const vars = Object.fromEntries([...b.text.matchAll(/\$\{(\w+)\}/g)].map((m) => [m[1], 'example-value-0123456789']));
      const r = await runCli(['config', 'check', '--config', file, '--json'], vars, dir);
      expect(r.code, `README.md:${b.line}: ${r.out}${r.err}`).toBe(0);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
