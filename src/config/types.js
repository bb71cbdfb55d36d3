/**
 * The validated, normalized configuration Warden runs on.
 *
 * `loadConfig()` (config/load.ts) turns a `warden.yaml` (version 1, see
 * ../shared/spec/warden.example.yaml and docs/configuration.md) into this shape:
 * env vars substituted, defaults applied, relative paths resolved against the
 * config file's directory, URLs parsed. Every other module consumes only this.
 */
export {};
