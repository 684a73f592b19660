/**
 * The guided demo's story: a rollout's events (the JSON lines of `meridian rollout -o jsonl`, its public
 * contract) told as a few plain lines per step — which wave, what weight, what the gate measured and
 * decided, approvals, promotions and rollbacks. Pure: events in, lines out.
 */
import { formatValue } from '../rollout/analysis/verdict.js';

/** A wave as the plan names it. */
export interface NarratedWave {
  readonly name: string;
  readonly clusters: readonly string[];
  readonly steps: readonly { readonly weight: number }[];
}

type Json = Record<string, unknown>;

/** A reason cut to one readable line. */
const brief = (v: unknown, max = 110): string => {
  const text = String(v ?? '');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
};

const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});

/** What one measurement of the gate says, in a few words: `error rate 0% (0/212) vs 0.1% baseline`. */
export function measurementText(m: unknown): string {
  const v = obj(m);
  const unit = (v['unit'] ?? null) as Parameters<typeof formatValue>[1];
  const side = (x: unknown): string => {
    const s = obj(x);
    if (typeof s['value'] !== 'number') return 'no data';
    const o = obj(s['observation']);
    const value = formatValue(s['value'], unit);
    return typeof o['errors'] === 'number' && typeof o['requests'] === 'number' ? `${value} (${o['errors']}/${o['requests']})` : value;
  };
  const name = String(v['metric'] ?? 'metric');
  const outcome = String(v['outcome'] ?? '?');
  return `${name} ${outcome}: canary ${side(v['canary'])} vs baseline ${side(v['baseline'])}`;
}

/** Tells a rollout's events as lines, keeping what it needs to know between them. */
export class Narrator {
  readonly #waves: readonly NarratedWave[];
  readonly #versions: { readonly from: string; readonly to: string };
  #rollout = '';

  constructor(waves: readonly NarratedWave[], versions: { from: string; to: string }) {
    this.#waves = waves;
    this.#versions = versions;
  }

  /** The rollout's id, once its first event was seen. */
  get rollout(): string {
    return this.#rollout;
  }

  #where(p: Json): string {
    const w = this.#waves[Number(p['wave'])];
    if (!w) return `wave #${String(p['wave'])}`;
    const step = typeof p['step'] === 'number' ? ` step ${p['step'] + 1}/${w.steps.length} (${w.steps[p['step']]?.weight ?? '?'}%)` : '';
    return `wave ${w.name}${step}`;
  }

  /** The lines for one JSON line of `meridian rollout -o jsonl` (none for events the story skips). */
  tell(line: Json): string[] {
    if (line['type'] === 'rollout.result') return [];
    if (line['type'] !== 'rollout.event') return [];
    this.#rollout = String(line['rollout'] ?? this.#rollout);
    const d = obj(line['data']);
    const to = obj(d['to']);
    const from = obj(d['from']);
    const wave = this.#waves[Number(to['wave'])];
    const out: string[] = [];
    switch (line['event']) {
      case 'created':
        out.push(`rollout ${this.#rollout}: ${this.#versions.from} → ${this.#versions.to}, ${this.#waves.length} waves`);
        break;
      case 'verdict': {
        const outcome = String(d['outcome']);
        const metrics = Array.isArray(d['metrics']) ? d['metrics'] : [];
        const numbers = metrics.map(measurementText).join('; ');
        if (outcome === 'running') out.push(`    measuring ${this.#where(from)}: ${numbers}`);
        else if (outcome === 'pass') out.push(`  ✓ gate passed at ${this.#where(from)}: ${numbers}`);
        else out.push(`  ✗ gate ${outcome} at ${this.#where(from)}: ${numbers || String(d['reason'] ?? '')}`);
        break;
      }
      case 'approvals-met':
        out.push(`  ✓ approved by ${JSON.stringify(d['approvers'] ?? [])}`);
        break;
      case 'cluster-rolled-back':
        out.push(`  ↩ ${String(d['cluster'])} is back on the old revision`);
        break;
      default:
        break;
    }
    switch (to['phase']) {
      case 'deploy':
        if (wave && line['event'] !== 'verdict')
          out.push(
            `▸ wave ${wave.name} [${wave.clusters.join(', ')}]: ${this.#versions.to} starts beside ${this.#versions.from} as a canary`,
          );
        break;
      case 'weight':
        if (wave)
          out.push(`  ${this.#where(to)}: the router sends the canary ${wave.steps[Number(to['step'])]?.weight ?? '?'}% of the traffic`);
        break;
      case 'approval':
        if (wave) out.push(`▸ wave ${wave.name} [${wave.clusters.join(', ')}] waits for an approval`);
        break;
      case 'bake':
        out.push(`  baking ${this.#where(to)}: watching the promoted clusters a little longer`);
        break;
      case 'promote':
        if (wave) out.push(`  promoting wave ${wave.name}: ${this.#versions.to} becomes the stable version there`);
        break;
      case 'rollback':
        if (line['event'] !== 'cluster-rolled-back')
          out.push(`  rolling back ${JSON.stringify(to['remaining'] ?? [])}: ${brief(to['reason'])}`);
        break;
      case 'done':
        out.push(`${to['outcome'] === 'promoted' ? '✓' : '↩'} rollout ${this.#rollout} ${String(to['outcome'])}: ${brief(to['reason'])}`);
        break;
      default:
        break;
    }
    return out;
  }
}
