/**
 * Resource quantities (CPU `250m` or `2`, memory `256Mi`, `4Gi`) and ratios (`1%` or `0.01`), parsed
 * once into numbers: CPU in millicores, memory in bytes, ratios as a fraction of 1.
 */

const CPU = /^(\d+(?:\.\d+)?)(m?)$/;
const MEMORY = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/;
const RATIO = /^(\d+(?:\.\d+)?)%$/;

export const CPU_PATTERN = CPU.source;
export const MEMORY_PATTERN = MEMORY.source;
export const RATIO_PATTERN = RATIO.source;

const MEMORY_FACTOR: Record<string, number> = {
  '': 1,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** CPU in millicores: `250m` → 250, `2` → 2000, 0.5 → 500. */
export function parseCpu(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined;
  const m = CPU.exec(value);
  if (!m) return undefined;
  return m[2] === 'm' ? Number(m[1]) : Math.round(Number(m[1]) * 1000);
}

/** Memory in bytes: `256Mi` → 268435456. */
export function parseMemory(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const m = MEMORY.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * (MEMORY_FACTOR[m[2] ?? ''] ?? 1);
}

/** A ratio as a fraction: `1%` → 0.01, 0.01 → 0.01. */
export function parseRatio(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 && value <= 1 ? value : undefined;
  const m = RATIO.exec(value);
  if (!m) return undefined;
  const r = Number(m[1]) / 100;
  return r <= 1 ? r : undefined;
}

/** Formats millicores as Kubernetes does (`250m`, `2`). */
export function formatCpu(millicores: number): string {
  return millicores % 1000 === 0 ? String(millicores / 1000) : `${millicores}m`;
}

/** Formats bytes in the largest binary unit that keeps it whole. */
export function formatMemory(bytes: number): string {
  for (const unit of ['Ti', 'Gi', 'Mi', 'Ki'] as const) {
    const f = MEMORY_FACTOR[unit] ?? 1;
    if (bytes >= f && bytes % f === 0) return `${bytes / f}${unit}`;
  }
  return String(bytes);
}
