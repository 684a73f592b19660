/** `${region.params.domain}`-style interpolation in string values. `$${` is a literal `${`. */

const PLACEHOLDER = /\$(\$?)\{([^}]*)\}/g;

/** The variables a placeholder may name, flattened (`region.params.domain` → value). */
export type Vars = ReadonlyMap<string, string>;

/** The result of interpolating one string: the text, and the placeholders that did not resolve. */
export interface Interpolated {
  readonly text: string;
  readonly unresolved: readonly string[];
}

export function interpolate(text: string, vars: Vars): Interpolated {
  if (!text.includes('${')) return { text, unresolved: [] };
  const unresolved: string[] = [];
  const out = text.replace(PLACEHOLDER, (whole, escape: string, name: string) => {
    if (escape) return whole.slice(1);
    const v = vars.get(name.trim());
    if (v === undefined) {
      unresolved.push(name.trim());
      return whole;
    }
    return v;
  });
  return { text: out, unresolved };
}
