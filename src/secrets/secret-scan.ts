/**
 * Finds secrets pasted as literals into env, config or targets: by the key's name (PASSWORD, TOKEN…)
 * with a non-trivial value, by known value shapes (AWS keys, GitHub tokens, private keys, JWTs,
 * passwords in connection strings…), and by entropy. A finding shows a masked value only.
 */

/** Why a value looks like a secret. */
export interface SecretHit {
  readonly reason: string;
}

/** Key names that say the value is a secret. */
const SECRET_KEY =
  /(PASS(WORD|WD)?|PWD|SECRET|TOKEN|API[_-]?KEY|APIKEY|PRIVATE[_-]?KEY|CREDENTIAL|ACCESS[_-]?KEY|AUTH[_-]?KEY|SIGNING[_-]?KEY|ENCRYPTION[_-]?KEY|CLIENT[_-]?SECRET|SESSION[_-]?KEY|MASTER[_-]?KEY|DSN|CONN(ECTION)?[_-]?STR(ING)?)/i;
/** Key names that merely talk about a secret (where it is, how long it lives, what it is called). */
const NOT_A_SECRET_KEY =
  /(_|-|^)(FILE|PATH|DIR|TTL|TIMEOUT|LENGTH|LEN|SIZE|EXPIRY|EXPIRES|EXPIRATION|LIFETIME|NAME|HEADER|ENABLED|ENABLE|DISABLED|ENDPOINT|URL|URI|ISSUER|AUDIENCE|ALGORITHM|ALG|TYPE|MODE|FORMAT|VERSION|POLICY|ROTATION|REF|ID|USER|USERNAME|COOKIE|PARAM|FIELD|MIN|MAX|COUNT|RETRIES)$/i;

const VALUE_PATTERNS: readonly (readonly [RegExp, string])[] = [
  [/\b(AKIA|ASIA)[0-9A-Z]{16}\b/, 'an AWS access key id'],
  [/\bgh[pousr]_[A-Za-z0-9]{36,}\b/, 'a GitHub token'],
  [/\bgithub_pat_[A-Za-z0-9_]{22,}\b/, 'a GitHub fine-grained token'],
  [/\bxox[abposr]-[A-Za-z0-9-]{10,}/, 'a Slack token'],
  [/-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/, 'a private key'],
  [/\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/, 'a JSON Web Token'],
  [/\b[sr]k_live_[A-Za-z0-9]{16,}\b/, 'a Stripe live key'],
  [/\bAIza[0-9A-Za-z_-]{35}\b/, 'a Google API key'],
  [/\bnpm_[A-Za-z0-9]{36}\b/, 'an npm token'],
  [/\bglpat-[A-Za-z0-9_-]{20,}\b/, 'a GitLab token'],
  [/\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b/, 'a SendGrid key'],
];

/** A URL with a password in its userinfo, like postgres://user:pass@host/db (placeholders excepted). */
const CONNECTION_PASSWORD = /\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:([^\s/@]+)@/i;

/** Shannon entropy in bits per character. */
export function shannonEntropy(s: string): number {
  if (!s) return 0;
  const counts = new Map<string, number>();
  for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  const n = [...s].length;
  let h = 0;
  for (const c of counts.values()) {
    const p = c / n;
    h -= p * Math.log2(p);
  }
  return h;
}

function classes(s: string): number {
  return [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((r) => r.test(s)).length;
}

/** Values that are plainly not secrets, whatever their key: booleans, numbers, durations, sizes, paths, refs… */
function trivial(v: string): boolean {
  const s = v.trim();
  if (s.length < 4) return true;
  if (/^(true|false|yes|no|on|off|null|none|enabled|disabled|required|optional|strict)$/i.test(s)) return true;
  if (/^-?\d+(\.\d+)?(ms|s|m|h|d|Ki|Mi|Gi|Ti|K|M|G|T|%)?$/.test(s)) return true;
  if (/^\$\{[^}]+\}$/.test(s)) return true; // a placeholder, filled elsewhere
  if (/^(env|file|vault|k8s):\S+$/.test(s)) return true; // a secret reference
  if (/^(\.{0,2}\/|~\/)[\w./-]*$/.test(s)) return true; // a path
  if (/^[a-z][a-z0-9+.-]*:\/\/\S+$/i.test(s) && !CONNECTION_PASSWORD.test(s)) return true; // a URL without a password
  if (/^(<[^>]*>|\*+|x+|changeme-later|redacted|todo|tbd)$/i.test(s)) return true;
  return false;
}

/** Shapes of long, random-looking values that are not secrets. */
function benignHighEntropy(s: string): boolean {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)) return true; // UUID
  if (/^(sha(1|256|384|512)|md5):[0-9a-f]+$/i.test(s)) return true; // digest
  if (/@sha256:[0-9a-f]{64}$/.test(s)) return true; // image pinned by digest
  if (/^[a-z0-9.-]+\.[a-z]{2,}(:\d+)?$/i.test(s)) return true; // hostname
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return true; // URL (passwords in URLs are caught above)
  if (/^[\w.-]*\/[\w./-]*$/.test(s) && !/[A-Z].*[0-9]|[0-9].*[A-Z]/.test(s.replace(/[/._-]/g, ''))) return true; // path-like
  if (/\s/.test(s)) return true; // prose, commands
  // lowercase slugs of words and numbers (`prod-latam-buenosaires-102`, `gke_acme_eu-west1_prod`): names, not keys
  if (/^[a-z0-9]+([-_.:][a-z0-9]+)+$/.test(s) && s.split(/[-_.:]/).every((w) => /^[a-z]+$|^\d+$|^[a-z]+\d{1,3}$/.test(w))) return true;
  return false;
}

/**
 * Whether a literal value (under a key name) looks like a secret, and why; undefined when it does not.
 * Never returns the value.
 */
export function looksLikeSecret(key: string, value: string): SecretHit | undefined {
  const v = value.trim();
  const pw = CONNECTION_PASSWORD.exec(v)?.[1];
  if (pw && !/^\$\{[^}]+\}$/.test(pw) && !/^\*+$/.test(pw)) return { reason: 'a password in a connection string' };
  for (const [re, what] of VALUE_PATTERNS) if (re.test(v)) return { reason: `the value looks like ${what}` };
  if (trivial(v)) return undefined;
  if (SECRET_KEY.test(key) && !NOT_A_SECRET_KEY.test(key)) return { reason: `the key name ${key} says it is a secret` };
  if (v.length >= 20 && !benignHighEntropy(v)) {
    const h = shannonEntropy(v);
    // at least three character classes: hex ids, commit hashes and lowercase slugs are not flagged
    if (h >= 4.0 && classes(v) >= 3) {
      return { reason: `the value is random-looking (${h.toFixed(1)} bits/char over ${v.length} chars)` };
    }
  }
  return undefined;
}

/** A value masked for messages: its first 2 characters and its length. */
export function maskSecret(value: string): string {
  return `${JSON.stringify(value.slice(0, 2))}… (${value.length} chars)`;
}
