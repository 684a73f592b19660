/**
 * What a Kubernetes API's refusal means for the person running Meridian: each kind of failure becomes a
 * typed {@link TargetError} that names the cluster (and the object, verb or other field manager) and says
 * how to fix it. Pure: it reads the error, it calls nothing.
 */
import { TargetError } from '../errors.js';

/** The parts of a failed call this reads (client-node's ApiException, or a network error). */
interface Failure {
  readonly code?: number | string;
  readonly body?: unknown;
  readonly message?: string;
  readonly cause?: unknown;
}

interface StatusBody {
  readonly message?: string;
  readonly reason?: string;
  readonly details?: { readonly name?: string; readonly kind?: string; readonly causes?: readonly { message?: string; field?: string }[] };
}

const NETWORK = /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|ECONNRESET|socket hang up|certificate|self[- ]signed|fetch failed/i;

function statusOf(err: Failure): { code: number; body: StatusBody } | null {
  const code = typeof err.code === 'number' ? err.code : undefined;
  if (code === undefined || code < 100) return null;
  let body: unknown = err.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      body = { message: body };
    }
  }
  return { code, body: (body ?? {}) as StatusBody };
}

/** The field managers an apply conflict names (`conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`). */
export function conflictManagers(message: string): string[] {
  return [...new Set([...message.matchAll(/conflicts? with "([^"]+)"/g)].map((m) => m[1] as string))];
}

/**
 * Turns a failed API call on `cluster` into a typed error. `what` names the operation and object
 * (`apply Deployment web`), `verb` the RBAC verb it needed (`patch`, `list`, `delete`).
 */
export function kubeError(cluster: string, what: string, verb: string, err: unknown): TargetError {
  if (err instanceof TargetError) return err;
  const f = (err ?? {}) as Failure;
  const st = statusOf(f);
  const text = `${f.message ?? String(err)} ${f.cause instanceof Error ? f.cause.message : ''}`;
  if (!st) {
    if (NETWORK.test(text) || /request to .* failed/i.test(text)) {
      return new TargetError(
        'MERIDIAN_E_TARGET_K8S_UNREACHABLE',
        `cluster ${cluster}: cannot reach the Kubernetes API to ${what} (${text.trim().slice(0, 200)})`,
        {
          cause: err,
          hint: `check the cluster's target (server or kubeconfig/context) and that the API server answers: kubectl --context … get --raw /readyz`,
        },
      );
    }
    return new TargetError('MERIDIAN_E_TARGET_K8S_FAILED', `cluster ${cluster}: ${what} failed: ${text.trim().slice(0, 300)}`, {
      cause: err,
    });
  }
  const msg = st.body.message ?? `HTTP ${st.code}`;
  switch (st.code) {
    case 401:
      return new TargetError(
        'MERIDIAN_E_TARGET_K8S_UNAUTHORIZED',
        `cluster ${cluster}: the API server did not accept Meridian's credentials (${msg})`,
        {
          cause: err,
          hint: "the token or client certificate has expired or is wrong: renew it (the secret reference in the cluster's target, or the kubeconfig user) and run again",
        },
      );
    case 403:
      if (/exceeded quota/i.test(msg)) {
        const quota = /exceeded quota: ([^,\s]+)/.exec(msg)?.[1];
        const ns = /namespaces\/([^/\s]+)/.exec(msg)?.[1];
        return new TargetError(
          'MERIDIAN_E_TARGET_K8S_QUOTA',
          `cluster ${cluster}: ${what} exceeds ${quota ? `ResourceQuota "${quota}"` : 'a ResourceQuota'}: ${msg}`,
          {
            cause: err,
            hint: `lower replicas or resources for this cluster (an override), or raise the namespace's ResourceQuota${quota ? ` (kubectl describe resourcequota ${quota}${ns ? ` -n ${ns}` : ''})` : ''}`,
          },
        );
      }
      // a ValidatingAdmissionPolicy or an admission webhook said no: the object is refused, RBAC is not the problem
      if (/ValidatingAdmissionPolicy|admission webhook|denied the request/i.test(msg)) {
        return new TargetError('MERIDIAN_E_TARGET_K8S_INVALID', `cluster ${cluster}: the cluster's admission refused ${what}: ${msg}`, {
          cause: err,
          hint: "change the value the cluster's policy names in the fleet description, or ask the cluster's owners about the policy",
        });
      }
      return forbidden(cluster, what, verb, msg, err);
    case 404:
      if (st.body.details?.kind === 'namespaces' || /namespaces? "[^"]+" not found/.test(msg)) {
        return new TargetError('MERIDIAN_E_TARGET_K8S_NAMESPACE', `cluster ${cluster}: ${msg} (needed to ${what})`, {
          cause: err,
          hint: `create the namespace (kubectl create namespace ${st.body.details?.name ?? 'NAME'}) or fix target.namespace of cluster ${cluster}`,
        });
      }
      return new TargetError('MERIDIAN_E_TARGET_K8S_NOT_FOUND', `cluster ${cluster}: ${msg} (${what})`, { cause: err });
    case 409: {
      const managers = conflictManagers(msg);
      return new TargetError(
        'MERIDIAN_E_TARGET_K8S_CONFLICT',
        `cluster ${cluster}: ${what} conflicts with fields owned by ${managers.length > 0 ? managers.map((m) => `"${m}"`).join(', ') : 'another field manager'}: ${msg}`,
        {
          cause: err,
          hint: 'another tool manages these fields; stop it managing them, or take them over with --force-conflicts',
        },
      );
    }
    case 422:
    case 400:
      return new TargetError('MERIDIAN_E_TARGET_K8S_INVALID', `cluster ${cluster}: the API server refused ${what}: ${msg}`, {
        cause: err,
        hint: 'fix the value the message names in the fleet description (see `meridian render --format kubernetes`)',
      });
  }
  return new TargetError('MERIDIAN_E_TARGET_K8S_FAILED', `cluster ${cluster}: ${what} failed with HTTP ${st.code}: ${msg}`, { cause: err });
}

/**
 * RBAC's refusal, naming the verb the API server checked — which is not always the one the call implies:
 * server-side apply of an object that does not exist yet needs `create`, not `patch` — the resource, the
 * identity and the namespace, with the `kubectl auth can-i` line that checks the fix.
 */
function forbidden(cluster: string, what: string, verb: string, msg: string, err: unknown): TargetError {
  const denied = /cannot (\w+) resource "([^"]+)"(?: in API group "([^"]*)")?/.exec(msg);
  const v = denied?.[1] ?? verb;
  const group = denied?.[3];
  const resource = denied?.[2] !== undefined ? `${denied[2]}${group ? `.${group}` : ''}` : undefined;
  const user = /User "([^"]+)"/.exec(msg)?.[1];
  const ns = /in the namespace "([^"]+)"/.exec(msg)?.[1];
  const can = ['kubectl auth can-i', v, resource ?? 'RESOURCE', ns ? `-n ${ns}` : '', user ? `--as ${user}` : ''].filter(Boolean).join(' ');
  return new TargetError(
    'MERIDIAN_E_TARGET_K8S_FORBIDDEN',
    `cluster ${cluster}: RBAC forbids Meridian to ${v}${resource ? ` ${resource}` : ''} (${what}): ${msg}`,
    {
      cause: err,
      hint: `grant ${user ? `user ${user}` : 'the identity Meridian uses'} the verb "${v}" on ${resource ?? 'that resource'}${ns ? ` in namespace ${ns}` : ''} (a Role and RoleBinding); check with: ${can}`,
    },
  );
}

/** A cluster whose target names a Gateway but that does not serve the Gateway API: no silent fallback to another canary. */
export function gatewayApiMissing(
  cluster: string,
  gateway: { name: string; namespace?: string | undefined } | null,
  err: unknown,
): TargetError {
  const gw = gateway ? `${gateway.namespace ? `${gateway.namespace}/` : ''}${gateway.name}` : '';
  return new TargetError(
    'MERIDIAN_E_TARGET_K8S_NOT_FOUND',
    `cluster ${cluster}: target.gateway names Gateway ${gw}, but the cluster does not serve the Gateway API (HTTPRoute gateway.networking.k8s.io/v1)`,
    {
      cause: err,
      hint: 'install the Gateway API CRDs (standard channel) and a Gateway controller in the cluster, or remove target.gateway to split canary traffic by replica ratio',
    },
  );
}

/**
 * A refusal in the middle of an apply, saying what of it is in the cluster now: a wave never leaves a
 * cluster half-applied without saying so. `written` are the objects applied before it (`Kind/name`).
 */
export function partlyApplied(err: unknown, written: readonly string[], total: number): unknown {
  if (!(err instanceof TargetError)) return err;
  const left =
    written.length === 0
      ? 'nothing of this apply was written'
      : `${written.length} of ${total} objects were applied before it (${written.join(', ')}); the rest were not`;
  return new TargetError(err.code as ConstructorParameters<typeof TargetError>[0], `${err.message}; ${left}`, {
    cause: err.cause ?? err,
    ...(err.hint === undefined ? {} : { hint: err.hint }),
  });
}
