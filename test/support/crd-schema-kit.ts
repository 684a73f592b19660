/**
 * Validates Kubernetes objects against the OpenAPI v3 schemas of their CustomResourceDefinitions, as an
 * API server does on create with strict field validation — the stand-in where no API server with these
 * CRDs runs. Checked: the served group/version/kind; types (with `x-kubernetes-int-or-string`, `nullable`),
 * unknown fields (rejected unless `x-kubernetes-preserve-unknown-fields`), `required`, `enum`, numeric
 * bounds, string length and `pattern`, item counts, `oneOf`/`anyOf`/`allOf`/`not`, and the CRD's CEL rules
 * (`x-kubernetes-validations`) evaluated with cel-js. Not checked, and counted apart: `format`, and CEL
 * rules that need `oldSelf` or Kubernetes' own CEL libraries cel-js does not have.
 * The CRDs come from scripts/mesh-crds.sh (the Go module proxy, pinned versions; cached).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluate } from '@marcbachmann/cel-js';
import { parseAllDocuments } from 'yaml';

type Schema = Record<string, unknown>;

export interface CrdSet {
  /** `group/version/Kind` → the version's openAPIV3Schema. */
  readonly schemas: ReadonlyMap<string, Schema>;
  /** Where each CRD file came from. */
  readonly files: readonly string[];
}

export interface Validation {
  readonly errors: string[];
  /** CEL rules evaluated, and those skipped (with why). */
  celChecked: number;
  readonly celSkipped: string[];
}

const ROOT = join(import.meta.dirname, '..', '..');

/** Runs scripts/mesh-crds.sh (a no-op when cached) and loads the Istio and Gateway API CRDs. */
export function meshCrds(): CrdSet {
  const out = execFileSync('bash', [join(ROOT, 'scripts', 'mesh-crds.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const root = out.trim().split('\n').pop() ?? '';
  const files = [
    join(root, 'gateway-api-1.6.3', 'crds', 'gateway.networking.k8s.io_httproutes.yaml'),
    join(root, 'istio-api-1.32.0', 'crds', 'customresourcedefinitions.gen.yaml'),
  ];
  const schemas = new Map<string, Schema>();
  for (const f of files)
    for (const doc of parseAllDocuments(readFileSync(f, 'utf8'))) {
      const crd = doc.toJS() as {
        kind?: string;
        spec?: {
          group: string;
          names: { kind: string };
          versions: { name: string; served: boolean; schema?: { openAPIV3Schema: Schema } }[];
        };
      } | null;
      if (crd?.kind !== 'CustomResourceDefinition' || !crd.spec) continue;
      for (const v of crd.spec.versions)
        if (v.served && v.schema) schemas.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, v.schema.openAPIV3Schema);
    }
  return { schemas, files };
}

/** CEL's reserved words, which Kubernetes escapes as `__word__` when they are field names. */
const CEL_RESERVED = new Set(
  'true false null in as break const continue else for function if import let loop package namespace return var void while'.split(' '),
);

/** Field names as the API server's CEL sees them (reserved words and `.`, `-`, `/` escaped). */
const celKey = (k: string): string =>
  CEL_RESERVED.has(k)
    ? `__${k}__`
    : k.replace(/__/g, '__underscores__').replace(/\./g, '__dot__').replace(/-/g, '__dash__').replace(/\//g, '__slash__');

/** Integers become CEL ints (BigInt), as the API server's CEL sees them. */
function celValue(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(celValue);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [celKey(k), celValue(x)]));
  return v;
}

/** The object with the schema's defaults filled in, as the API server defaults before it validates. */
export function withDefaults(s: Schema, v: unknown): unknown {
  if (Array.isArray(v)) {
    const items = s['items'] as Schema | undefined;
    return items ? v.map((x) => withDefaults(items, x)) : v;
  }
  if (!v || typeof v !== 'object') return v;
  const o: Record<string, unknown> = { ...(v as Record<string, unknown>) };
  const props = s['properties'] as Record<string, Schema> | undefined;
  for (const [k, p] of Object.entries(props ?? {})) if (!(k in o) && p['default'] !== undefined) o[k] = structuredClone(p['default']);
  const extra = s['additionalProperties'];
  for (const [k, x] of Object.entries(o)) {
    const p = props?.[k] ?? (extra && typeof extra === 'object' ? (extra as Schema) : undefined);
    if (p) o[k] = withDefaults(p, x);
  }
  return o;
}

const typeOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v;

function check(s: Schema, v: unknown, path: string, out: Validation): void {
  const e = (msg: string): void => void out.errors.push(`${path}: ${msg}`);
  if (v === null) {
    if (!s['nullable']) e('null is not allowed');
    return;
  }
  const t = s['type'] as string | undefined;
  const actual = typeOf(v);
  if (s['x-kubernetes-int-or-string']) {
    if (actual !== 'integer' && actual !== 'string') return e(`must be an integer or a string, not ${actual}`);
  } else if (t !== undefined && !(t === actual || (t === 'number' && actual === 'integer'))) return e(`must be ${t}, not ${actual}`);
  const en = s['enum'] as unknown[] | undefined;
  if (en && !en.some((x) => x === v)) e(`${JSON.stringify(v)} is not one of ${JSON.stringify(en)}`);
  if (typeof v === 'number') {
    const min = s['minimum'] as number | undefined;
    const max = s['maximum'] as number | undefined;
    if (min !== undefined && (s['exclusiveMinimum'] ? v <= min : v < min)) e(`${v} is below the minimum ${min}`);
    if (max !== undefined && (s['exclusiveMaximum'] ? v >= max : v > max)) e(`${v} is above the maximum ${max}`);
  }
  if (typeof v === 'string') {
    const minL = s['minLength'] as number | undefined;
    const maxL = s['maxLength'] as number | undefined;
    if (minL !== undefined && v.length < minL) e(`shorter than ${minL}`);
    if (maxL !== undefined && v.length > maxL) e(`longer than ${maxL}`);
    const pattern = s['pattern'] as string | undefined;
    if (pattern !== undefined) {
      let re: RegExp | null = null;
      try {
        re = new RegExp(pattern, 'u');
      } catch {
        out.celSkipped.push(`${path}: pattern ${pattern} (not an ECMAScript regex)`);
      }
      if (re && !re.test(v)) e(`${JSON.stringify(v)} does not match ${pattern}`);
    }
  }
  if (Array.isArray(v)) {
    const minI = s['minItems'] as number | undefined;
    const maxI = s['maxItems'] as number | undefined;
    if (minI !== undefined && v.length < minI) e(`fewer than ${minI} items`);
    if (maxI !== undefined && v.length > maxI) e(`more than ${maxI} items`);
    const items = s['items'] as Schema | undefined;
    if (items) v.forEach((x, i) => check(items, x, `${path}[${i}]`, out));
  }
  if (actual === 'object') {
    const o = v as Record<string, unknown>;
    const props = s['properties'] as Record<string, Schema> | undefined;
    const extra = s['additionalProperties'] as Schema | boolean | undefined;
    for (const r of (s['required'] as string[] | undefined) ?? []) if (!(r in o)) e(`${r} is required`);
    for (const [k, x] of Object.entries(o)) {
      const p = props?.[k];
      if (p) check(p, x, `${path}.${k}`, out);
      else if (extra && typeof extra === 'object') check(extra, x, `${path}.${k}`, out);
      else if (!s['x-kubernetes-preserve-unknown-fields'] && extra !== true && (props !== undefined || extra === false))
        e(`unknown field ${JSON.stringify(k)}`);
    }
  }
  const sub = (schema: Schema): boolean => {
    const o: Validation = { errors: [], celChecked: 0, celSkipped: [] };
    check({ ...schema, type: schema['type'] ?? t }, v, path, o);
    return o.errors.length === 0;
  };
  const oneOf = s['oneOf'] as Schema[] | undefined;
  if (oneOf && oneOf.filter(sub).length !== 1)
    e(`must match exactly one of ${oneOf.length} alternatives (oneOf), matches ${oneOf.filter(sub).length}`);
  const anyOf = s['anyOf'] as Schema[] | undefined;
  if (anyOf && !anyOf.some(sub)) e('matches none of the anyOf alternatives');
  for (const a of (s['allOf'] as Schema[] | undefined) ?? []) if (!sub(a)) e('does not match an allOf alternative');
  const not = s['not'] as Schema | undefined;
  if (not && sub(not)) e(`must not match ${JSON.stringify(not)}`);
  for (const rule of (s['x-kubernetes-validations'] as { rule: string; message?: string }[] | undefined) ?? []) {
    if (/\boldSelf\b/.test(rule.rule)) {
      out.celSkipped.push(`${path}: ${rule.rule} (a transition rule)`);
      continue;
    }
    let ok: unknown;
    try {
      ok = evaluate(rule.rule, { self: celValue(v) });
    } catch (err) {
      out.celSkipped.push(`${path}: ${rule.rule} (${(err as Error).message.split('\n')[0]})`);
      continue;
    }
    out.celChecked++;
    if (ok !== true) e(`CEL rule failed: ${rule.message ?? rule.rule}`);
  }
}

/** Validates one object against its CRD's schema. */
export function validateObject(crds: CrdSet, obj: unknown): Validation {
  const out: Validation = { errors: [], celChecked: 0, celSkipped: [] };
  const o = obj as { apiVersion?: string; kind?: string; metadata?: { name?: string } };
  const schema = crds.schemas.get(`${o.apiVersion ?? ''}/${o.kind ?? ''}`);
  if (!schema) {
    out.errors.push(`no served CRD for ${o.apiVersion ?? '?'} ${o.kind ?? '?'}`);
    return out;
  }
  if (!o.metadata?.name || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(o.metadata.name) || o.metadata.name.length > 253)
    out.errors.push(`metadata.name ${JSON.stringify(o.metadata?.name)} is not a DNS subdomain name`);
  const { metadata: _m, apiVersion: _a, kind: _k, ...rest } = obj as Record<string, unknown>;
  const props = (schema['properties'] ?? {}) as Record<string, Schema>;
  for (const [k, v] of Object.entries(rest)) {
    const p = props[k];
    if (!p) out.errors.push(`${o.kind}: unknown field ${JSON.stringify(k)}`);
    else check(p, withDefaults(p, v), `${o.kind}.${k}`, out);
  }
  for (const r of (schema['required'] as string[] | undefined) ?? [])
    if (!(r in (obj as object))) out.errors.push(`${o.kind}: ${r} is required`);
  return out;
}

/** Every document of a multi-document YAML text. */
export function yamlObjects(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Record<string, unknown> | null)
    .filter((d): d is Record<string, unknown> => d !== null);
}
