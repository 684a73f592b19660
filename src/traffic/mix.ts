/** A traffic mix (`DE:30,US:40,IN:20,BR:10`) and a smooth weighted round-robin over it, so any prefix of the stream follows the mix. */
import { UsageError } from '../errors.js';

export type Mix = ReadonlyArray<{ readonly country: string; readonly weight: number }>;

/** Parses `DE:30,US:40` into a mix; countries are ISO alpha-2 codes, weights positive numbers. */
export function parseMix(text: string): Mix {
  const out: { country: string; weight: number }[] = [];
  for (const part of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z]{2}):(\d+(?:\.\d+)?)$/.exec(part);
    if (!m)
      throw new UsageError(
        `bad traffic mix entry ${JSON.stringify(part)}`,
        'write the mix as COUNTRY:WEIGHT pairs, e.g. --mix "DE:30,US:40,IN:20,BR:10"',
      );
    const weight = Number(m[2]);
    if (weight <= 0) throw new UsageError(`the weight of ${m[1]} must be positive`, 'drop the country from the mix instead of giving it 0');
    out.push({ country: (m[1] ?? '').toUpperCase(), weight });
  }
  if (out.length === 0) throw new UsageError('the traffic mix is empty', 'e.g. --mix "DE:30,US:40,IN:20,BR:10"');
  return out;
}

/** Smooth weighted round-robin (as nginx does): deterministic, and evenly interleaved. */
export class MixPicker {
  private readonly current: number[];
  private readonly total: number;
  constructor(private readonly mix: Mix) {
    this.current = mix.map(() => 0);
    this.total = mix.reduce((s, m) => s + m.weight, 0);
  }
  next(): string {
    let best = 0;
    for (let i = 0; i < this.mix.length; i++) {
      this.current[i] = (this.current[i] ?? 0) + (this.mix[i]?.weight ?? 0);
      if ((this.current[i] ?? 0) > (this.current[best] ?? 0)) best = i;
    }
    this.current[best] = (this.current[best] ?? 0) - this.total;
    return this.mix[best]?.country ?? '';
  }
}
