#!/usr/bin/env node
/**
 * Builds the web console (docs/console.md) into dist/console/static: the TypeScript under
 * src/console/ui bundled with chart.js by esbuild into one script, the styles and the page.
 * Nothing is fetched at run time (no CDN): the admin listener serves these three files.
 * The UI's types are checked first (src/console/ui/tsconfig.json: the DOM library, which the
 * server's compilation does not load).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ui = path.join(root, 'src/console/ui');
const out = path.join(root, 'dist/console/static');

async function typecheck() {
  const { default: ts } = await import('typescript');
  const file = path.join(ui, 'tsconfig.json');
  const cfg = ts.readConfigFile(file, ts.sys.readFile);
  if (cfg.error) throw new Error(ts.flattenDiagnosticMessageText(cfg.error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(cfg.config, ts.sys, ui);
  const program = ts.createProgram(parsed.fileNames, { ...parsed.options, noEmit: true });
  const diags = ts.getPreEmitDiagnostics(program);
  if (diags.length > 0) {
    const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' };
    process.stderr.write(ts.formatDiagnostics(diags, host));
    throw new Error(`console UI: ${diags.length} type error(s)`);
  }
}

async function main() {
  const skipCheck = process.argv.includes('--no-check');
  if (!skipCheck) await typecheck();
  const esbuild = await import('esbuild');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  await esbuild.build({
    entryPoints: { app: path.join(ui, 'main.ts') },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2022'],
    minify: true,
    sourcemap: false,
    legalComments: 'linked',
    outdir: out,
    logLevel: 'warning',
  });
  await esbuild.build({ entryPoints: { app: path.join(ui, 'style.css') }, bundle: true, minify: true, outdir: out, logLevel: 'warning' });
  fs.copyFileSync(path.join(ui, 'index.html'), path.join(out, 'index.html'));
  const size = fs.readdirSync(out).map((f) => `${f} ${fs.statSync(path.join(out, f)).size} B`).join(', ');
  process.stdout.write(`console: ${size}\n`);
}

main().catch((err) => {
  process.stderr.write(`build-console: ${err.message}\n`);
  process.exit(1);
});
