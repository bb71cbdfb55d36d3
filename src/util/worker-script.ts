/**
 * The path of a compiled worker-thread script that sits beside the calling
 * module. Under the test runner modules run from src/ (TypeScript), where no
 * .js worker exists: then the build's copy in dist/ is used.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `dir` is the script's directory under src/ and dist/ (e.g. `audit`); `what` names it in the error. */
export function workerScript(moduleUrl: string, file: string, dir: string, what: string): string {
  const here = fileURLToPath(new URL(`./${file}`, moduleUrl));
  if (existsSync(here)) return here;
  const built = path.resolve(path.dirname(here), `../../dist/${dir}/${file}`);
  if (existsSync(built)) return built;
  throw new Error(`${what} not found (${here}); run npm run build`);
}
