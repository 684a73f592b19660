/**
 * Envoy's own .proto definitions as a checker (no Envoy binary exists for this machine): the v3 API as
 * vendored by `@grpc/grpc-js-xds` (deps/envoy-api, with the xds, googleapis and protoc-gen-validate
 * protos it imports), loaded with protobufjs. {@link checkEnvoyJson} reads a config in Envoy's proto3
 * JSON form as a message of the given type, rejecting what Envoy rejects when it parses JSON: unknown
 * fields, unknown enum names, two fields of one oneof, a wrong JSON type, an `Any` of an unknown type; then
 * it encodes the message to the wire format and decodes it again. The protoc-gen-validate rules
 * (`(validate.rules)`, e.g. minimums) are not checked.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';

const DEPS = join(dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const INCLUDE = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(DEPS, d));
/** protobufjs ships descriptor.proto as a file; its other well-known types are built in by name. */
const PROTOBUFJS = dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));

let root: protobuf.Root | undefined;

/** The Envoy API root with the bootstrap and the filters Meridian's export uses. */
export function envoyRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    if (target.startsWith('google/protobuf/'))
      return existsSync(join(PROTOBUFJS, target)) && target.endsWith('descriptor.proto') ? join(PROTOBUFJS, target) : target;
    for (const dir of INCLUDE) if (existsSync(join(dir, target))) return join(dir, target);
    return target;
  };
  r.loadSync(
    [
      'envoy/config/bootstrap/v3/bootstrap.proto',
      'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
      'envoy/extensions/filters/http/router/v3/router.proto',
    ],
    { keepCase: true },
  );
  r.resolveAll();
  root = r;
  return r;
}

/** A config that Envoy's schema rejects, with the JSON path. */
export class EnvoySchemaError extends Error {}

const INT = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const WRAPPERS: Record<string, string> = {
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
};

/** A proto3 JSON scalar → protobufjs's value, or an error. */
function scalar(type: string, v: unknown, path: string): unknown {
  const fail = (): never => {
    throw new EnvoySchemaError(`${path}: ${JSON.stringify(v)} is not a ${type}`);
  };
  if (type === 'string') return typeof v === 'string' ? v : fail();
  if (type === 'bool') return typeof v === 'boolean' ? v : fail();
  if (type === 'bytes') return typeof v === 'string' ? Buffer.from(v, 'base64') : fail();
  if (type === 'double' || type === 'float') return typeof v === 'number' ? v : fail();
  if (INT.has(type)) {
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) fail();
    if (type.startsWith('u') || type.startsWith('fixed')) if ((n as number) < 0) fail();
    return n;
  }
  return fail();
}

/** Converts proto3 JSON of a message type into protobufjs's object form, rejecting what Envoy rejects. */
function convert(type: protobuf.Type, v: unknown, path: string): Record<string, unknown> {
  const full = type.fullName;
  if (full === '.google.protobuf.Duration') {
    const m = typeof v === 'string' ? /^(-?\d+)(\.\d{1,9})?s$/.exec(v) : null;
    if (!m) throw new EnvoySchemaError(`${path}: ${JSON.stringify(v)} is not a duration like "1.5s"`);
    return { seconds: Number(m[1]), nanos: Math.round(Number(`0${m[2] ?? ''}`) * 1e9) };
  }
  if (full in WRAPPERS) return { value: scalar(WRAPPERS[full] ?? '', v, path) };
  if (full === '.google.protobuf.Struct' || full === '.google.protobuf.Value')
    throw new EnvoySchemaError(`${path}: Struct not supported by this checker`);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EnvoySchemaError(`${path}: expected an object for ${full}`);
  if (full === '.google.protobuf.Any') {
    const { '@type': url, ...rest } = v as Record<string, unknown>;
    if (typeof url !== 'string' || !url.startsWith('type.googleapis.com/')) throw new EnvoySchemaError(`${path}: an Any needs "@type"`);
    const inner = envoyRoot().lookupType(url.slice('type.googleapis.com/'.length));
    const obj = convert(inner, rest, path);
    return { type_url: url, value: inner.encode(inner.fromObject(obj)).finish() };
  }
  const out: Record<string, unknown> = {};
  const oneofs = new Map<string, string>();
  for (const [key, value] of Object.entries(v as Record<string, unknown>)) {
    const field = type.fields[key] ?? Object.values(type.fields).find((f) => f.options?.['json_name'] === key);
    const at = `${path}.${key}`;
    if (!field) throw new EnvoySchemaError(`${at}: no field ${key} in ${full}`);
    if (field.partOf) {
      const other = oneofs.get(field.partOf.name);
      if (other !== undefined) throw new EnvoySchemaError(`${at}: ${key} and ${other} are one oneof (${field.partOf.name})`);
      oneofs.set(field.partOf.name, key);
    }
    const one = (x: unknown, p: string): unknown => {
      field.resolve();
      if (field.resolvedType instanceof protobuf.Type) return convert(field.resolvedType, x, p);
      if (field.resolvedType instanceof protobuf.Enum) {
        if (typeof x !== 'string' || !(x in field.resolvedType.values))
          throw new EnvoySchemaError(`${p}: ${JSON.stringify(x)} is not a ${field.resolvedType.name}`);
        return field.resolvedType.values[x];
      }
      return scalar(field.type, x, p);
    };
    if (field.map) {
      if (typeof value !== 'object' || value === null) throw new EnvoySchemaError(`${at}: expected a map`);
      out[key] = Object.fromEntries(Object.entries(value).map(([k, x]) => [k, one(x, `${at}.${k}`)]));
    } else if (field.repeated) {
      if (!Array.isArray(value)) throw new EnvoySchemaError(`${at}: expected a list`);
      out[key] = value.map((x, i) => one(x, `${at}[${i}]`));
    } else out[key] = one(value, at);
  }
  return out;
}

/**
 * Reads `json` as an Envoy message of `typeName` (e.g. `envoy.config.bootstrap.v3.Bootstrap`), encodes
 * it to the wire format and decodes it; returns the decoded message's size in bytes. Throws
 * {@link EnvoySchemaError} for what Envoy's JSON parser would reject.
 */
export function checkEnvoyJson(typeName: string, json: unknown): number {
  const type = envoyRoot().lookupType(typeName);
  const obj = convert(type, json, typeName);
  const err = type.verify(obj);
  if (err) throw new EnvoySchemaError(`${typeName}: ${err}`);
  const bytes = type.encode(type.fromObject(obj)).finish();
  const back = type.decode(bytes);
  const again = type.encode(back).finish();
  if (Buffer.compare(Buffer.from(bytes), Buffer.from(again)) !== 0)
    throw new EnvoySchemaError(`${typeName}: the wire form does not survive a decode`);
  return bytes.length;
}
