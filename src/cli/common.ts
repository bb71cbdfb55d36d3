/** What every CLI command shares: config loading, output, errors. */
import fs from 'node:fs';
import path from 'node:path';
import { Option } from 'commander';
import { loadConfig } from '../config/load.js';
import type { WardenConfig } from '../config/types.js';

export const DEFAULT_CONFIG = './warden.yaml';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export function load(file: string | undefined): WardenConfig {
  const p = path.resolve(file ?? DEFAULT_CONFIG);
  if (!fs.existsSync(p)) {
    if (file) throw new CliError(`${p}: configuration file not found`, 2);
    throw new CliError(
      `no configuration: ${p} does not exist. Pass --config FILE (see docs/configuration.md; an example is in the README).`,
      2,
    );
  }
  return loadConfig(p);
}

export function out(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text() + '\n');
}

export const configOption = (): Option => new Option('-c, --config <file>', `configuration file (default ${DEFAULT_CONFIG})`);

