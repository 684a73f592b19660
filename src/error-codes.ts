/**
 * The catalogue of Meridian's runtime error codes: one entry per `MERIDIAN_E_…` code an error carries, with
 * the class that raises it, what it means, how to fix it, the CLI's exit code and the API's HTTP status.
 * The CLI (src/cli/exit-codes.ts) and the API (src/server/api-error.ts) read their mappings from here and
 * nowhere else; docs/errors.md is generated from it (test/error-codes.test.ts). Like Fastify's
 * `lib/errors.js`, the table is the one place a code is defined: adding a code is adding its entry here.
 * A code is never reused for something else. Finding codes (`meridian validate`) have their own catalogue.
 *
 * Ground floor: this module imports nothing.
 */

/**
 * How the CLI exits on an error (the numbers are in src/cli/exit-codes.ts): `input` 2, the user's to fix;
 * `unavailable` 3, the state store or another dependency failed; `locked` 6, another rollout holds a
 * service; `internal` 70, a bug in Meridian (the CLI prints the stack and asks for a report).
 */
export type ExitKind = 'input' | 'unavailable' | 'locked' | 'internal';

/** One code of the catalogue. */
export interface ErrorSpec {
  /** The class that raises it; null for a code only ever written into an answer for an unexpected error. */
  readonly class: string | null;
  /** How the CLI exits when the error ends a command. */
  readonly exit: ExitKind;
  /** The HTTP status when the error ends an API call. */
  readonly status: number;
  /** What it means, in one sentence. */
  readonly summary: string;
  /** How to fix it in general; an error's own hint, when it has one, is more precise. */
  readonly hint: string;
}

const STORE_HINT = 'check MERIDIAN_STATE (or --state) and the store itself; the message names the file or server';

/** Every runtime error code, grouped by the part that raises it. */
export const ERROR_CODES = {
  // the CLI and the fleet loader (src/errors.ts)
  MERIDIAN_E_USAGE: {
    class: 'UsageError',
    exit: 'input',
    status: 400,
    summary: 'a command was called with a bad flag or argument',
    hint: 'run the command with --help; the message names the flag',
  },
  MERIDIAN_E_INPUT: {
    class: 'InputError',
    exit: 'input',
    status: 422,
    summary: 'the fleet description does not load; the findings listed with it say where and why',
    hint: 'fix each finding (docs/findings.md explains every finding code), then run `meridian validate`',
  },
  MERIDIAN_E_FLEET_NOT_FOUND: {
    class: 'FleetNotFoundError',
    exit: 'input',
    status: 404,
    summary: 'there is no fleet at the path given: it does not exist, or holds no file that starts with `apiVersion: meridian/v1`',
    hint: 'pass the fleet directory (or one of its .yaml files), e.g. `meridian validate examples/shop`',
  },
  MERIDIAN_E_UP_FAILED: {
    class: 'MeridianError',
    exit: 'input',
    status: 409,
    summary: '`meridian up` started the local fleet, but it did not become healthy',
    hint: 'read the services’ output printed above; fix the service or its configuration and run `meridian up` again',
  },

  // recovery drills (src/cli/commands/drill.ts, docs/recovery.md)
  MERIDIAN_E_DRILL_FLEET: {
    class: 'MeridianError',
    exit: 'unavailable',
    status: 502,
    summary: "a drill could not read the running local fleet's replicas from its control API",
    hint: 'check that `meridian up` still runs in this directory (`.meridian/up.json`), then run the drill again',
  },
  MERIDIAN_E_DRILL_BLOCKED: {
    class: 'MeridianError',
    exit: 'input',
    status: 409,
    summary: 'a drill was asked for inside a blocked window or on a blocked date of `recovery.drills`',
    hint: 'run it outside the blocked windows and dates, or change recovery.drills in the fleet',
  },
  MERIDIAN_E_DRILL_REFUSED: {
    class: 'MeridianError',
    exit: 'input',
    status: 409,
    summary: "an evacuation drill's evacuation was refused by the fleet's safety rules",
    hint: 'drill a place the rules allow (the message names each rule that fired), or change the policy (docs/recovery.md)',
  },

  // authentication and the audit anchor (src/server/auth, src/store/audit-anchor.ts)
  MERIDIAN_E_OIDC_RULE: {
    class: 'OidcRuleError',
    exit: 'input',
    status: 422,
    summary: 'an OIDC rule would give its role to too many tokens (no claims, or a shared CI issuer without a pinned repository)',
    hint: 'pin the rule with `claims` (e.g. repository: org/repo); to accept every token of a private issuer on purpose, set anyTokenOfIssuer: true (docs/security.md)',
  },
  MERIDIAN_E_AUDIT_CHECKPOINT: {
    class: 'AuditCheckpointError',
    exit: 'input',
    status: 422,
    summary: 'an audit checkpoint or a head given to `audit verify` is malformed, unsigned or signed by another key',
    hint: 'give the head as printed by `meridian audit verify` (64 hex digits) and the checkpoint with the public key that signed it',
  },
  MERIDIAN_E_API_HOST: {
    class: 'ApiError',
    exit: 'input',
    status: 403,
    summary: 'a request named a Host the control plane does not answer for (DNS rebinding protection)',
    hint: 'call it by a loopback name, or start `meridian serve` with --allowed-host NAME',
  },

  // exporters (src/export, docs/export.md)
  MERIDIAN_E_EXPORT_NO_ADDRESS: {
    class: 'NoAddressError',
    exit: 'input',
    status: 422,
    summary: 'a data plane outside the clusters needs an address for a cluster that has none',
    hint: 'set clusters.<name>.ingress.address (host:port), or run the local fleet (`meridian up`) so its endpoints are known',
  },
  MERIDIAN_E_HAPROXY_RUNTIME: {
    class: 'MeridianError',
    exit: 'unavailable',
    status: 502,
    summary: "HAProxy's runtime API did not answer, or refused a weight or state change",
    hint: 'check that HAProxy runs with the exported config (its `stats socket` line) and that the backend and server names match the export',
  },

  MERIDIAN_E_HAPROXY_START: {
    class: 'MeridianError',
    exit: 'unavailable',
    status: 503,
    summary: 'HAProxy as the data plane of `meridian up --data-plane haproxy` refused its configuration, exited or did not answer',
    hint: 'install HAProxy 2.6 or later (`apt-get install haproxy`), check the exported configuration with `haproxy -c -f`, or run `meridian up` without --data-plane',
  },

  // the state store (src/store)
  MERIDIAN_E_STORE_OPEN: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'the state store cannot be opened (a directory that cannot be made, a file that cannot be opened, no such database)',
    hint: STORE_HINT,
  },
  MERIDIAN_E_STORE_NOT_FOUND: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'a read-only command found no state store at the path given',
    hint: 'run `meridian plan` once to create it, or point MERIDIAN_STATE (or --state) at the right file',
  },
  MERIDIAN_E_STORE_CONFIG: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'the store address is unusable: not a URL, or a schema name PostgreSQL would not accept',
    hint: 'write it as postgres://USER:PASSWORD@HOST:PORT/DB?schema=NAME, or give a SQLite file path',
  },
  MERIDIAN_E_STORE_UNREACHABLE: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'the PostgreSQL store does not answer; nothing was written',
    hint: 'check that the server runs and accepts connections from here (`pg_isready -h HOST -p PORT`)',
  },
  MERIDIAN_E_STORE_AUTH: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'PostgreSQL refused the login',
    hint: 'check the user and password in the store URL',
  },
  MERIDIAN_E_STORE_PERMISSION: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'the PostgreSQL user may not create or write the store’s tables',
    hint: 'grant the user the rights on the schema, or use another schema with ?schema=NAME',
  },
  MERIDIAN_E_STORE_READ_ONLY: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'a write was asked of a store that is read-only (opened so, on a read-only volume, or a read-only replica)',
    hint: 'make the file and its directory writable, or point MERIDIAN_STATE (or --state) at a writable store',
  },
  MERIDIAN_E_STORE_BUSY: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'another meridian process held the store’s write lock too long; nothing was written',
    hint: 'wait for the other command to finish and run this one again',
  },
  MERIDIAN_E_STORE_FULL: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'the disk (or database server) that holds the store is full; the change was rolled back',
    hint: 'free some space, then run the command again',
  },
  MERIDIAN_E_STORE_IO: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'reading or writing the SQLite file failed; the change was rolled back',
    hint: 'check the disk and the file permissions, then run the command again',
  },
  MERIDIAN_E_STORE_CORRUPT: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'the store is not a usable meridian store: not a database, damaged, or missing a table or column it created',
    hint: 'restore it from a backup, or point MERIDIAN_STATE (or --state) at the right store',
  },
  MERIDIAN_E_STORE_SCHEMA_TOO_NEW: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'the store was written by a newer meridian than this one',
    hint: 'upgrade meridian to the version that wrote it',
  },
  MERIDIAN_E_STORE_MIGRATION_MISMATCH: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'a migration recorded in the store differs from the one this meridian ships',
    hint: 'run the meridian version the store was made with, or restore the store from a backup',
  },
  MERIDIAN_E_STORE_AUDIT_ANCHOR_MISSING: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 503,
    summary: 'the audit log’s head anchor is missing, so no entry can be appended safely',
    hint: 'run `meridian audit verify`, then restore the store from a backup',
  },
  MERIDIAN_E_STORE_REVISION_CONFLICT: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 409,
    summary: 'a revision with this id but other content is already recorded',
    hint: 'a revision id is the hash of its content: a conflict means the store was edited; run `meridian audit verify`',
  },
  MERIDIAN_E_STORE_UNKNOWN_REVISION: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 404,
    summary: 'the store has no revision with this id',
    hint: 'list the recorded revisions with GET /api/v1/revisions',
  },
  MERIDIAN_E_STORE_ROLLOUT_EXISTS: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 409,
    summary: 'a rollout with this id is already recorded',
    hint: 'start the rollout again: it gets a new id',
  },
  MERIDIAN_E_STORE_UNKNOWN_ROLLOUT: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 404,
    summary: 'the store has no rollout with this id',
    hint: 'list the rollouts with `meridian rollout list`',
  },
  MERIDIAN_E_STORE_TOKEN_EXISTS: {
    class: 'StoreError',
    exit: 'unavailable',
    status: 409,
    summary: 'an API token with this id is already recorded',
    hint: 'create the token again: it gets a new id',
  },
  MERIDIAN_E_AUDIT_CHAIN_BROKEN: {
    class: 'AuditChainError',
    exit: 'unavailable',
    status: 503,
    summary: 'the audit log failed verification: an entry was edited, deleted or inserted',
    hint: 'restore the store from a backup; the entry named and everything after it cannot be trusted',
  },

  // saved plans (src/plan, `meridian rollout --plan`)
  MERIDIAN_E_PLAN_INVALID: {
    class: 'PlanError',
    exit: 'input',
    status: 422,
    summary: 'the plan file is not a plan meridian wrote',
    hint: 'pass the file that `meridian plan --out FILE` wrote',
  },
  MERIDIAN_E_PLAN_TAMPERED: {
    class: 'PlanError',
    exit: 'input',
    status: 409,
    summary: 'the plan file does not match its own hash: it was edited after `meridian plan` wrote it',
    hint: 'make the plan again with `meridian plan --out FILE`',
  },
  MERIDIAN_E_PLAN_MISMATCH: {
    class: 'PlanError',
    exit: 'input',
    status: 409,
    summary: 'the plan was made for another fleet or revision than the one given',
    hint: 'make the plan again from this fleet, or pass the fleet the plan was made from',
  },
  MERIDIAN_E_PLAN_STALE: {
    class: 'PlanError',
    exit: 'input',
    status: 409,
    summary: 'a cluster runs something else than when the plan was made',
    hint: 'make the plan again with `meridian plan --out FILE` (approvals of the old plan do not carry over)',
  },
  MERIDIAN_E_PLAN_SHARES: {
    class: 'PlanError',
    exit: 'input',
    status: 422,
    summary: 'a traffic share given to the blast-radius estimate is outside 0..1 or not a number',
    hint: 'give each region’s share of traffic as a number from 0 to 1',
  },

  // rollouts, approvals, locks (src/rollout)
  MERIDIAN_E_ROLLOUT_UNKNOWN: {
    class: 'RolloutError',
    exit: 'input',
    status: 404,
    summary: 'there is no rollout with this id (or none unfinished)',
    hint: 'list the rollouts with `meridian rollout list`',
  },
  MERIDIAN_E_ROLLOUT_CONTROL: {
    class: 'RolloutError',
    exit: 'input',
    status: 409,
    summary: 'the rollout cannot be paused, resumed or aborted in the state it is in',
    hint: 'see its state with `meridian rollout status ID`',
  },
  MERIDIAN_E_MIGRATION_CONTRACT: {
    class: 'RolloutError',
    exit: 'input',
    status: 422,
    summary:
      'a contract data migration would run in the same rollout as a new version of its service, whose old version may still need the expanded schema',
    hint: 'ship the version first; contract in a later rollout',
  },
  MERIDIAN_E_ROLLOUT_LOCKED: {
    class: 'RolloutError',
    exit: 'locked',
    status: 409,
    summary: 'another rollout holds a service this one touches',
    hint: 'wait for the rollout named in the message to end, or abort it',
  },
  MERIDIAN_E_ROLLOUT_LEASE_LOST: {
    class: 'RolloutError',
    exit: 'locked',
    status: 409,
    summary: 'another process took the rollout over (its lease expired); this one stops',
    hint: 'follow the rollout with `meridian rollout status ID`; it goes on in the other process',
  },
  MERIDIAN_E_ROLLOUT_REVISION: {
    class: 'RolloutError',
    exit: 'input',
    status: 409,
    summary: 'the rollout names a revision or cluster the store does not hold',
    hint: 'make the plan again with `meridian plan` and start a new rollout',
  },
  MERIDIAN_E_ROLLOUT_NO_FLEET: {
    class: 'RolloutError',
    exit: 'unavailable',
    status: 503,
    summary: 'no local fleet with a control API runs here',
    hint: 'start it with `meridian up --detach`, or pass --control URL with MERIDIAN_CONTROL_TOKEN',
  },
  MERIDIAN_E_ROLLOUT_IDENTITY: {
    class: 'RolloutError',
    exit: 'input',
    status: 401,
    summary: 'with --server, the control plane refused the token in MERIDIAN_SERVER_TOKEN, or its role may not drive rollouts',
    hint: 'use a token of role deployer or admin: an API token, or an OIDC ID token an `--oidc` rule of the server accepts (docs/ci.md)',
  },
  MERIDIAN_E_ROLLOUT_SERVER: {
    class: 'RolloutError',
    exit: 'unavailable',
    status: 503,
    summary: 'with --server, the control plane that names who acts does not answer, or answers something other than an identity',
    hint: 'check the --server URL and that `meridian serve` runs there',
  },
  MERIDIAN_E_ROLLOUT_NO_KNOWN_GOOD: {
    class: 'RolloutError',
    exit: 'input',
    status: 409,
    summary: 'a rollback has no known-good revision to go back to',
    hint: 'name the revision to roll back to with --to REVISION',
  },
  MERIDIAN_E_APPROVAL_AUTHOR: {
    class: 'RolloutError',
    exit: 'input',
    status: 403,
    summary: 'the author of a change cannot approve it',
    hint: 'ask another person with the approver role',
  },
  MERIDIAN_E_APPROVAL_ROLE: {
    class: 'RolloutError',
    exit: 'input',
    status: 422,
    summary: 'the wave needs an approval from another role than the one given',
    hint: 'approve with the role the wave names (the message says which)',
  },
  MERIDIAN_E_APPROVAL_UNKNOWN_WAVE: {
    class: 'RolloutError',
    exit: 'input',
    status: 422,
    summary: 'the rollout has no wave of that name',
    hint: 'see the waves with `meridian rollout status ID`',
  },
  MERIDIAN_E_APPROVAL_NOT_REQUIRED: {
    class: 'RolloutError',
    exit: 'input',
    status: 422,
    summary: 'the wave needs no approval',
    hint: 'approve only the waves that wait for one (`meridian rollout status ID`)',
  },
  MERIDIAN_E_APPROVAL_FINISHED: {
    class: 'RolloutError',
    exit: 'input',
    status: 409,
    summary: 'the rollout is over; it takes no more approvals',
    hint: 'start a new rollout if the change should still go out',
  },

  // deployment drivers (src/targets)
  MERIDIAN_E_TARGET_UNREACHABLE: {
    class: 'TargetError',
    exit: 'unavailable',
    status: 503,
    summary: 'the fleet’s control API (`meridian up`) cannot be reached',
    hint: 'start the local fleet with `meridian up`, or pass --control URL',
  },
  MERIDIAN_E_TARGET_REMOTE: {
    class: 'TargetError',
    exit: 'unavailable',
    status: 502,
    summary: 'the fleet’s control API answered an error without a code',
    hint: 'read the message; check the `meridian up` process and its output',
  },
  MERIDIAN_E_TARGET_TIMEOUT: {
    class: 'TargetError',
    exit: 'unavailable',
    status: 504,
    summary: 'a cluster did not reach the state waited for in time',
    hint: 'read the last status in the message; check the service’s health check and output',
  },
  MERIDIAN_E_TARGET_CLOSED: {
    class: 'TargetError',
    exit: 'internal',
    status: 500,
    summary: 'the local driver was used after it was closed (a bug)',
    hint: 'please report it with the command you ran and its output',
  },
  MERIDIAN_E_TARGET_OPTIONS: {
    class: 'TargetError',
    exit: 'input',
    status: 422,
    summary: 'the local driver was given an unusable option',
    hint: 'the message names the option and the values it takes',
  },
  MERIDIAN_E_TARGET_PLATFORM: {
    class: 'TargetError',
    exit: 'input',
    status: 409,
    summary: 'the local driver needs a POSIX system (Linux, macOS)',
    hint: 'run `meridian up` under WSL 2',
  },
  MERIDIAN_E_TARGET_NO_PORT: {
    class: 'TargetError',
    exit: 'unavailable',
    status: 503,
    summary: 'the local driver found no free port',
    hint: 'stop what holds the ports, or free some',
  },
  MERIDIAN_E_TARGET_NO_LOCAL_COMMAND: {
    class: 'TargetError',
    exit: 'input',
    status: 422,
    summary: 'a service has no `local.command`, so the local driver cannot run it',
    hint: 'add `local: { command: [...] }` to the service',
  },
  MERIDIAN_E_TARGET_NO_COMMAND: {
    class: 'TargetError',
    exit: 'input',
    status: 422,
    summary: 'a replica was asked to run an empty command',
    hint: 'give the service a non-empty `local.command`',
  },
  MERIDIAN_E_TARGET_NO_CWD: {
    class: 'TargetError',
    exit: 'input',
    status: 422,
    summary: 'the working directory of a service does not exist',
    hint: 'fix `local.cwd` (relative to the fleet directory)',
  },
  MERIDIAN_E_TARGET_UNKNOWN_SERVICE: {
    class: 'TargetError',
    exit: 'input',
    status: 404,
    summary: 'the cluster runs no service of that name',
    hint: 'see what runs with `meridian up` status or the fleet description',
  },
  MERIDIAN_E_TARGET_SECRET_PROVIDER: {
    class: 'SecretResolutionError',
    exit: 'input',
    status: 422,
    summary: 'a driver cannot resolve secret references of this provider (local: only env: and file:; kubernetes: only k8s:)',
    hint: 'override the reference for those clusters with a provider their driver takes (the message names it)',
  },
  MERIDIAN_E_TARGET_SECRET_NOT_FOUND: {
    class: 'SecretResolutionError',
    exit: 'input',
    status: 422,
    summary: 'a secret reference names a variable, file or key that is not there',
    hint: 'set the variable, or add the key to the file the reference names',
  },
  MERIDIAN_E_TARGET_SECRET_INVALID: {
    class: 'SecretResolutionError',
    exit: 'input',
    status: 422,
    summary: 'a secret reference is malformed, or the file it names cannot be parsed',
    hint: 'write env:NAME or file:PATH#KEY; the file format follows its extension (.json, .yaml, else .env)',
  },
  MERIDIAN_E_TARGET_SECRET_NAMESPACE: {
    class: 'SecretResolutionError',
    exit: 'input',
    status: 422,
    summary: 'a k8s: secret reference names a Secret in another namespace than the one the cluster’s pods run in',
    hint: 'copy the Secret into the cluster’s target.namespace, or write the reference as k8s:NAMESPACE/NAME#KEY with that namespace',
  },
  MERIDIAN_E_TARGET_NO_DRIVER: {
    class: 'TargetError',
    exit: 'input',
    status: 422,
    summary: 'a cluster’s `driver:` has no driver in this build (gitops), or none was connected for it',
    hint: 'use driver: local or driver: kubernetes for the cluster the message names',
  },

  // the kubernetes driver (src/targets/kubernetes, docs/kubernetes.md)
  MERIDIAN_E_TARGET_K8S_CONFIG: {
    class: 'TargetError',
    exit: 'input',
    status: 422,
    summary:
      'a kubernetes cluster’s `target:` is missing or unusable: no kubeconfig or server, an unknown context, an unreadable CA or token',
    hint: 'give target: {namespace, kubeconfig[, context]} or {namespace, server, caFile, token: {ref}} (docs/kubernetes.md)',
  },
  MERIDIAN_E_TARGET_K8S_UNREACHABLE: {
    class: 'TargetError',
    exit: 'unavailable',
    status: 503,
    summary:
      'the cluster’s Kubernetes API server cannot be reached (refused, unresolvable, timed out, or its TLS certificate is not trusted)',
    hint: 'check target.server / the kubeconfig context and that `kubectl get --raw /readyz` answers from this machine',
  },
  MERIDIAN_E_TARGET_K8S_UNAUTHORIZED: {
    class: 'TargetError',
    exit: 'input',
    status: 401,
    summary: 'the Kubernetes API server did not accept Meridian’s credentials (HTTP 401): an expired or wrong token or certificate',
    hint: 'renew the token (the secret reference in the cluster’s target) or the kubeconfig user, then run again',
  },
  MERIDIAN_E_TARGET_K8S_FORBIDDEN: {
    class: 'TargetError',
    exit: 'input',
    status: 403,
    summary: 'RBAC forbids the identity Meridian uses a verb it needs on a resource in the cluster’s namespace',
    hint: 'grant the verb the message names (a Role and RoleBinding); check with `kubectl auth can-i VERB RESOURCE -n NS --as …`',
  },
  MERIDIAN_E_TARGET_K8S_QUOTA: {
    class: 'TargetError',
    exit: 'input',
    status: 403,
    summary: 'the object would exceed a ResourceQuota of the cluster’s namespace',
    hint: 'lower replicas or resources for that cluster (an override), or raise the namespace’s ResourceQuota',
  },
  MERIDIAN_E_TARGET_K8S_NAMESPACE: {
    class: 'TargetError',
    exit: 'input',
    status: 404,
    summary: 'the namespace a kubernetes cluster’s target names does not exist in the cluster',
    hint: 'create it (`kubectl create namespace NAME`) or fix target.namespace',
  },
  MERIDIAN_E_TARGET_K8S_NOT_FOUND: {
    class: 'TargetError',
    exit: 'unavailable',
    status: 404,
    summary: 'an object or API the kubernetes driver needs is not in the cluster (e.g. Gateway API CRDs for an HTTPRoute)',
    hint: 'read the message for the object; install the API it names or remove `gateway:` from the cluster’s target',
  },
  MERIDIAN_E_TARGET_K8S_CONFLICT: {
    class: 'TargetError',
    exit: 'input',
    status: 409,
    summary: 'server-side apply conflicts with fields another field manager owns; the message names the manager',
    hint: 'stop the other tool managing those fields, or take them over with --force-conflicts',
  },
  MERIDIAN_E_TARGET_K8S_INVALID: {
    class: 'TargetError',
    exit: 'input',
    status: 422,
    summary: 'the Kubernetes API server refused an object as invalid (HTTP 400/422, or an admission webhook)',
    hint: 'fix the value the message names in the fleet description; `meridian render --format kubernetes` shows the objects',
  },
  MERIDIAN_E_TARGET_K8S_FAILED: {
    class: 'TargetError',
    exit: 'unavailable',
    status: 502,
    summary: 'a call to the Kubernetes API server failed for another reason (HTTP 5xx, an unexpected answer)',
    hint: 'read the message and the API server’s logs; run again when the API server is healthy',
  },

  // the router (src/router)
  MERIDIAN_E_ROUTER_ENDPOINTS: {
    class: 'RouterError',
    exit: 'input',
    status: 422,
    summary: 'the endpoints file cannot be read, is not JSON, or does not match its schema',
    hint: 'the message names the file and the path of each problem',
  },
  MERIDIAN_E_ROUTER_GEOIP: {
    class: 'RouterError',
    exit: 'input',
    status: 422,
    summary: 'the GeoIP database cannot be opened',
    hint: 'pass an MMDB file (country level) with --geoip, or leave it out for the bundled one',
  },
  MERIDIAN_E_ROUTER_TRUSTED_SOURCE: {
    class: 'RouterError',
    exit: 'input',
    status: 422,
    summary: 'a trusted source is not an IP address or CIDR range',
    hint: 'write addresses like 10.0.0.0/8 or ::1',
  },
  MERIDIAN_E_ROUTER_SERVER: {
    class: 'RouterError',
    exit: 'input',
    status: 502,
    summary: 'the control plane the router follows refused it or knows no fleet yet',
    hint: 'check the server and the token (--token or MERIDIAN_SERVER_TOKEN, role viewer at least)',
  },

  // the control plane's API (src/server)
  MERIDIAN_E_API_BAD_REQUEST: {
    class: 'ApiError',
    exit: 'input',
    status: 400,
    summary: 'the request is malformed: a body that is not JSON or too large, a path with a broken percent-escape',
    hint: 'send JSON with content-type application/json; encode path segments with encodeURIComponent',
  },
  MERIDIAN_E_API_UNAUTHENTICATED: {
    class: 'ApiError',
    exit: 'input',
    status: 401,
    summary: 'the call has no bearer token, or one that is unknown, revoked, expired or refused',
    hint: 'create a token with `meridian token create` and send it as `Authorization: Bearer mrd_…`',
  },
  MERIDIAN_E_API_FORBIDDEN: {
    class: 'ApiError',
    exit: 'input',
    status: 403,
    summary: 'the token’s role may not do this',
    hint: 'use a token of a role that may (the hint of the answer names them)',
  },
  MERIDIAN_E_API_NOT_FOUND: {
    class: 'ApiError',
    exit: 'input',
    status: 404,
    summary: 'there is no such route, or no such rollout, revision, token, cluster or region',
    hint: 'the API is described at /api/v1/openapi.json',
  },
  MERIDIAN_E_API_METHOD: {
    class: 'ApiError',
    exit: 'input',
    status: 405,
    summary: 'the route does not take this method',
    hint: 'use a method of the `Allow` header',
  },
  MERIDIAN_E_API_INVALID: {
    class: 'ApiError',
    exit: 'input',
    status: 422,
    summary: 'the body or the query fails its schema; every problem is named with its path',
    hint: 'the schema of each route is in /api/v1/openapi.json',
  },
  MERIDIAN_E_API_EVACUATION_REFUSED: {
    class: 'ApiError',
    exit: 'input',
    status: 409,
    summary: 'a drain through the API breaks the fleet’s safety rules (capacity floor, residency, hold-down); the refusal is audited',
    hint: 'the answer names each rule with its numbers and how to fix it; a declared disaster lifts the floor and the hold-down',
  },
  MERIDIAN_E_API_FLEET_ROUTER: {
    class: 'ApiError',
    exit: 'unavailable',
    status: 502,
    summary: 'a drain was recorded, but the fleet’s control API did not carry it out',
    hint: 'the server sends it again when it reaches the control API; check that `meridian up` runs',
  },
  MERIDIAN_E_API_UNAVAILABLE: {
    class: 'ApiError',
    exit: 'unavailable',
    status: 503,
    summary: 'the control plane cannot answer yet: it knows no fleet, or an OIDC issuer cannot be reached',
    hint: 'run `meridian plan` against its store, or check the issuer’s discovery URL',
  },
  MERIDIAN_E_API_INTERNAL: {
    class: null,
    exit: 'internal',
    status: 500,
    summary: 'the control plane failed to answer (a bug); the error is in its log, not in the answer',
    hint: 'this is a bug in Meridian: please report it with the server log',
  },

  // the fleet's control API (`meridian up`, src/targets/local/control-api.ts)
  MERIDIAN_E_CONTROL_AUTH: {
    class: 'MeridianError',
    exit: 'input',
    status: 401,
    summary: 'a call to the fleet’s control API has no valid bearer token',
    hint: 'use the token of .meridian/up.json (MERIDIAN_CONTROL_TOKEN)',
  },
  MERIDIAN_E_CONTROL_BAD_REQUEST: {
    class: 'MeridianError',
    exit: 'input',
    status: 400,
    summary: 'a call to the fleet’s control API is malformed',
    hint: 'the message names the parameter or field',
  },
  MERIDIAN_E_CONTROL_NOT_FOUND: {
    class: 'MeridianError',
    exit: 'input',
    status: 404,
    summary: 'the fleet’s control API has no such route',
    hint: 'run the same meridian version as `meridian up`',
  },
  MERIDIAN_E_CONTROL_NO_ROUTER: {
    class: 'MeridianError',
    exit: 'input',
    status: 409,
    summary: 'the fleet’s control API has no router, or one that cannot do this',
    hint: 'start the fleet with its router (`meridian up` starts one)',
  },
  MERIDIAN_E_CONTROL_INTERNAL: {
    class: null,
    exit: 'internal',
    status: 500,
    summary: 'the fleet’s control API failed to answer (a bug)',
    hint: 'please report it with the output of `meridian up`',
  },

  // flags (src/flags)
  MERIDIAN_E_FLAG_UNKNOWN: {
    class: 'FlagError',
    exit: 'input',
    status: 404,
    summary: 'the fleet defines no flag of that name',
    hint: 'flags are declared under `flags:` in the fleet files; the message suggests the closest name',
  },
  MERIDIAN_E_FLAG_UNKNOWN_REGION: {
    class: 'FlagError',
    exit: 'input',
    status: 404,
    summary: 'the fleet defines no region of that name',
    hint: 'the message suggests the closest region',
  },

  // telemetry (src/telemetry)
  MERIDIAN_E_TRACING_CONFIG: {
    class: 'TracingConfigError',
    exit: 'input',
    status: 422,
    summary: 'the tracing configuration (OTEL_* variables or flags) cannot be used',
    hint: 'docs/observability.md lists the variables and their values',
  },
} as const satisfies Record<`MERIDIAN_E_${string}`, ErrorSpec>;

/** A catalogued runtime error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes raised by the classes named `C` (e.g. `ErrorCodeOf<'StoreError'>`). */
export type ErrorCodeOf<C extends string> = { [K in ErrorCode]: (typeof ERROR_CODES)[K]['class'] extends C ? K : never }[ErrorCode];

/** True when `code` is in the catalogue (for codes that arrive as text, e.g. from another process). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/** True when `code` is raised by one of `classes`. */
export function isErrorCodeOf<C extends string>(code: ErrorCode, ...classes: readonly C[]): code is ErrorCodeOf<C> {
  const cls = ERROR_CODES[code].class;
  return cls !== null && (classes as readonly string[]).includes(cls);
}

/** The catalogue's entry for a code; undefined for a code it does not hold. */
export function errorSpec(code: string): ErrorSpec | undefined {
  return isErrorCode(code) ? ERROR_CODES[code] : undefined;
}
