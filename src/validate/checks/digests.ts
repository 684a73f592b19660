/**
 * Image digests: every image pinned by digest (built-in rule `digest-pinned`), and one service version
 * is one image everywhere — in every cluster of the new revision and in what clusters run now.
 */
import { formatLocation, type Finding } from '../../findings/finding.js';
import { type CheckContext, valueAt } from '../context.js';

/** `sha256:0123456789ab…`, short enough for a message. */
export function shortDigest(d: string): string {
  return d.length > 19 ? `${d.slice(0, 19)}…` : d;
}

export function checkDigests(ctx: CheckContext): Finding[] {
  const findings: Finding[] = [];
  const pinned = ctx.rules.has('digest-pinned');
  /** service\0version → digest → where it was first seen. */
  const seen = new Map<string, Map<string, { cluster: string; where: string }>>();
  for (const [cluster, c] of Object.entries(ctx.revision.clusters)) {
    for (const [service, s] of Object.entries(c.services)) {
      if (s.digest === null) {
        if (!pinned) continue;
        const origin = ctx.origin(cluster, service, 'image');
        const written = valueAt(ctx.fleet, origin.segments);
        const image = typeof written === 'string' ? written : s.image;
        findings.push({
          code: 'MERIDIAN_E_IMAGE_UNPINNED',
          severity: 'error',
          rule: 'digest-pinned',
          message: `the image of ${service} (${image}) is not pinned by digest`,
          path: origin.path,
          ...(origin.location ? { location: origin.location } : {}),
          fix: `append the digest the tag resolves to now: ${image.replace(/@.*$/, '')}@sha256:<64 hex> (for example from \`crane digest ${image.replace(/@.*$/, '')}\`); a tag can move, a digest cannot`,
          target: { service, cluster, region: c.region },
        });
        continue;
      }
      const key = `${service}\u0000${s.version}`;
      let byDigest = seen.get(key);
      if (!byDigest) seen.set(key, (byDigest = new Map()));
      const first = byDigest.values().next().value;
      if (!byDigest.has(s.digest)) {
        const origin = ctx.origin(cluster, service, 'image'); // located only when a version first shows a digest
        byDigest.set(s.digest, { cluster, where: formatLocation(origin.location) || origin.path });
        if (first) {
          const firstDigest = [...byDigest.keys()][0] ?? '';
          findings.push({
            code: 'MERIDIAN_E_DIGEST_MISMATCH',
            severity: 'error',
            message: `${service} ${s.version} is ${shortDigest(s.digest)} on ${cluster} but ${shortDigest(firstDigest)} on ${first.cluster} (set at ${first.where}); one version must be one image everywhere`,
            path: origin.path,
            ...(origin.location ? { location: origin.location } : {}),
            fix: `use the same digest for ${service} ${s.version} in every cluster, or give the other build its own version`,
            target: { service },
            clusters: [first.cluster, cluster].sort(),
          });
        }
      }
    }
  }
  // The recorded state: a version already running must not change its image underneath.
  for (const [cluster, c] of Object.entries(ctx.recorded ?? {})) {
    for (const [service, s] of Object.entries(c.services)) {
      if (s.digest === null) continue;
      const byDigest = seen.get(`${service}\u0000${s.version}`);
      if (!byDigest || byDigest.has(s.digest)) continue;
      const [newDigest, at] = [...byDigest.entries()][0] ?? [];
      if (!newDigest || !at) continue;
      const origin = ctx.origin(at.cluster, service, 'image');
      findings.push({
        code: 'MERIDIAN_E_DIGEST_MISMATCH',
        severity: 'error',
        message: `${service} ${s.version} is ${shortDigest(newDigest)} in this revision but ${cluster} runs ${service} ${s.version} as ${shortDigest(s.digest)} now; a released version must not change its image`,
        path: origin.path,
        ...(origin.location ? { location: origin.location } : {}),
        fix: `give the new build of ${service} a new version (e.g. bump the patch number), or pin the digest that runs now`,
        target: { service },
        clusters: [cluster, at.cluster].sort(),
      });
      byDigest.set(s.digest, { cluster, where: `the recorded state of ${cluster}` }); // report once per digest
    }
  }
  return findings;
}
