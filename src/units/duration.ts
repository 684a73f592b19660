/** Durations in one syntax (`250ms`, `10s`, `2m`, `1h`), parsed once into milliseconds. */

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const FACTOR = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** The regular expression every duration string matches (also exported into the JSON Schema). */
export const DURATION_PATTERN = DURATION.source;

/** Parses a duration string into milliseconds; returns undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * FACTOR[m[2] as keyof typeof FACTOR];
}

/** Formats milliseconds in the largest unit that keeps it whole. */
export function formatDuration(ms: number): string {
  for (const unit of ['h', 'm', 's'] as const) {
    if (ms >= FACTOR[unit] && ms % FACTOR[unit] === 0) return `${ms / FACTOR[unit]}${unit}`;
  }
  return `${ms}ms`;
}
