/**
 * The starter `warden.yaml` written by `warden init`: every section commented,
 * valid as written once the environment variables it names are set.
 */
export interface InitOptions {
  /** The database name clients will use. */
  database: string;
  /** Upstream URL, normally with ${APP_DB_PASSWORD} as the password. */
  upstream: string;
  environment: string;
}

export function starterConfig(o: InitOptions): string {
  return `# Warden configuration (format version 1), written by \`warden init\`.
# Every key is described in docs/configuration.md, the rule language in docs/policy.md.
#
# \${NAME} is replaced by the environment variable NAME; a variable that is not set is a
# configuration error (its value never appears in errors or logs). Check the file with:
#   warden config check --config warden.yaml
version: 1

listen:                          # where PostgreSQL clients connect
  host: 127.0.0.1
  port: 6432
  # tls:                         # optional: let clients negotiate TLS (and SCRAM-SHA-256-PLUS)
  #   cert: ./certs/server.crt   # paths are relative to this file's directory
  #   key: ./certs/server.key
  #   require: true              # refuse clients that do not use TLS

admin:                           # HTTP: approvals and audit API, /metrics, /healthz
  host: 127.0.0.1                # passwords cross it (HTTP Basic): keep it on loopback or add tls
  port: 7070
  auditors: [dba]                # groups that may read the audit log through the API

databases:                       # the name a client gives as dbname → the real database
  ${o.database}:
    # Warden's own (service) credentials. Clients never see them: they log in as an identity.
    upstream: ${o.upstream}
    environment: ${o.environment}      # a free label that rules can match
    tls: disable                 # disable | require | verify-full
    # trusted_functions: ["util.*"]  # functions whose bodies Warden does not judge (docs/policy.md#code-functions-procedures-triggers-rules)

identities:                      # who may connect: psql "host=127.0.0.1 port=6432 user=alice dbname=${o.database}"
  - name: alice
    kind: human                  # human | service | agent
    groups: [analysts]
    password: \${ALICE_PASSWORD}  # or \`scram: SCRAM-SHA-256$4096:...\` (warden identity hash-password)
  - name: dana
    kind: human
    groups: [dba]
    password: \${DANA_PASSWORD}

sensitive:                       # what counts as sensitive, and how it is masked (docs/masking.md)
  columns:                       # schema.table.column (* wildcards) → type
    public.customers.email: email
    public.customers.ssn: ssn
  detect: [email, credit_card, ssn]    # also scan values of other text columns
  maskers:                       # default: fake (realistic, deterministic, type-preserving)
    ssn: partial                 # keep the last four
  key: \${WARDEN_MASK_KEY}        # secret of the deterministic fakes (16+ characters)

# Every rule whose match applies counts; the strictest action wins (deny > approve > mask > allow).
# Try a statement without running it: warden policy explain "DROP TABLE t" --as alice
rules:
  - name: no-destructive-ddl
    match: { statement: [drop, truncate] }
    action: deny
    reason: Destructive DDL is not run through Warden

  - name: schema-changes-by-dba-only
    match: { statement: [ddl], not: { groups: [dba] } }
    action: deny
    reason: Only the dba group changes the schema

  - name: customer-writes-need-approval
    match: { statement: [write], tables: ["public.customers"] }
    action: approve              # held until a dba approves: warden approvals approve ID --as dana ...
    approvers: { groups: [dba], count: 1 }

  - name: mask-pii-except-dba
    match: { not: { groups: [dba] } }
    action: mask

default: allow                   # when no rule matches: allow | deny

approvals:                       # docs/approvals.md
  mode: hold                     # hold: the statement waits on the wire; reject: fails with a request id
  timeout: 10m
  # webhook: https://hooks.slack.com/services/...   # Slack-compatible JSON for each request

state:                           # approval requests, decisions and grants
  store: sqlite:./warden-state.db        # or postgres://... shared by several Warden instances

audit:                           # the tamper-evident audit log (docs/audit.md)
  store: sqlite:./warden-audit.db        # or postgres://... or jsonl:./audit.jsonl
  on_failure: block              # no statement runs unless it is recorded
  # signing_key: ./audit-signing.pem     # warden audit keygen --out audit-signing.pem
`;
}
