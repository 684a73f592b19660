/** Reads a V8 `.cpuprofile` (from `node --cpu-prof`) and sums self and total time per function. */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One function's share of a profile. */
export interface HotFunction {
  /** `name (file:line)` */
  readonly where: string;
  readonly selfMs: number;
  /** Time with this function on the stack (recursion counted once). */
  readonly totalMs: number;
}

function label(frame: ProfileNode['callFrame'], root: string): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  let file = frame.url.replace(/^file:\/\//, '');
  if (file.startsWith('/')) file = relative(root, file);
  file = file.replace(/^node_modules\//, '');
  return `${name} (${file}:${frame.lineNumber + 1})`;
}

/** The functions of a profile by self time, largest first, and the profile's total duration. */
export function hotFunctions(path: string, root: string): { totalMs: number; functions: HotFunction[] } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfById = new Map<number, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    totalUs += dt;
    selfById.set(id, (selfById.get(id) ?? 0) + dt);
  });
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  for (const [id, us] of selfById) {
    const node = byId.get(id);
    if (!node) continue;
    const key = label(node.callFrame, root);
    self.set(key, (self.get(key) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (!n) break;
      const k = label(n.callFrame, root);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + us);
    }
  }
  const functions = [...total.keys()].map((where) => ({
    where,
    selfMs: (self.get(where) ?? 0) / 1000,
    totalMs: (total.get(where) ?? 0) / 1000,
  }));
  functions.sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs: totalUs / 1000, functions };
}
