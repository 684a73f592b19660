/**
 * The safety rules every evacuation is checked against before it happens (docs/recovery.md): a capacity
 * floor, residency, a hold-down against flapping and the master switch for automated evacuations — as
 * AWS ARC's assertion and gating rules, plus residency, which ARC does not know. Pure: the revision, the
 * policy and what is evacuated now in, a verdict with every rule that fired and its numbers out.
 */
import type { Revision } from '../render/render.js';
import { allows, ruleFor, servable } from '../routing/servable.js';

/** A place an evacuation moves traffic away from. */
export interface Place {
  readonly kind: 'region' | 'cluster';
  readonly name: string;
}

/** The key a place is remembered under (`region:eu-west`). */
export function placeKey(p: Place): string {
  return `${p.kind}:${p.name}`;
}

/** The safety settings in force, parsed (see `recovery.safety` in docs/fleet.md). */
export interface SafetyPolicy {
  /** 0..1: the share of each service's expected traffic that must stay servable. */
  readonly capacityFloor: number;
  readonly holdDownMs: number;
  readonly automatedEvacuations: boolean;
}

export interface EvacuationRequest {
  readonly place: Place;
  /** Jurisdictions declared down on purpose: their locked clients get 503 instead of being refused the evacuation. */
  readonly declaredDown: readonly string[];
  /** Started by automation (a health watcher, a drill's schedule), not by a person. */
  readonly automated: boolean;
  /** A disaster is declared and approved: the capacity floor and the hold-down give way (residency never does). */
  readonly disaster: boolean;
}

export interface RecoveryState {
  /** Places evacuated now. */
  readonly evacuated: readonly Place[];
  /** When each place (by {@link placeKey}) was last evacuated or restored, epoch ms. */
  readonly lastChange: ReadonlyMap<string, number>;
  readonly now: number;
}

export type SafetyRule = 'unknown-place' | 'capacity-floor' | 'residency' | 'hold-down' | 'master-switch';

export interface Violation {
  readonly rule: SafetyRule;
  readonly message: string;
  /** How to get past it, if at all. */
  readonly fix: string;
  /** Whether a declared disaster lets the evacuation through despite this rule. */
  readonly yieldsToDisaster: boolean;
  readonly numbers: Readonly<Record<string, number | string>>;
}

/** What the evacuation would do to one routed service. */
export interface ServiceEffect {
  readonly service: string;
  readonly demandRps: number;
  readonly servableBeforeRps: number;
  readonly servableAfterRps: number;
  /** Client jurisdictions whose locked traffic would be left with no cluster (declared down, or refused). */
  readonly lockedOut: readonly string[];
}

export interface SafetyVerdict {
  /** Whether the evacuation may go ahead now. */
  readonly allowed: boolean;
  /** Every rule that fired, including those a declared disaster overrode. */
  readonly violations: readonly Violation[];
  /** Violations overridden by the declared disaster (a subset of `violations`). */
  readonly overridden: readonly Violation[];
  /** The clusters that would carry no traffic afterwards (the evacuated ones included). */
  readonly removedClusters: readonly string[];
  readonly effects: readonly ServiceEffect[];
}

/** The clusters a set of places covers. */
export function clustersOf(revision: Revision, places: readonly Place[]): Set<string> {
  const out = new Set<string>();
  for (const [name, c] of Object.entries(revision.clusters)) {
    if (places.some((p) => (p.kind === 'cluster' ? p.name === name : p.name === c.region))) out.add(name);
  }
  return out;
}

const round = (n: number): number => Math.round(n * 100) / 100;

/** A span for people, to the second: `4m54s`, `40s`. */
function span(ms: number): string {
  const s = Math.round(ms / 1000);
  const m = Math.floor(s / 60);
  return m === 0 ? `${s}s` : s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
}
const pct = (n: number): string => `${round(n * 100)} %`;

/** Judges one evacuation against the safety rules. Pure. */
export function checkEvacuation(revision: Revision, policy: SafetyPolicy, state: RecoveryState, req: EvacuationRequest): SafetyVerdict {
  const violations: Violation[] = [];
  const { place } = req;
  const known = place.kind === 'cluster' ? place.name in revision.clusters : place.name in revision.regions;
  if (!known) {
    const names = Object.keys(place.kind === 'cluster' ? revision.clusters : revision.regions).sort();
    violations.push({
      rule: 'unknown-place',
      message: `the fleet has no ${place.kind} ${place.name}`,
      fix: `name one of its ${place.kind}s: ${names.join(', ')}`,
      yieldsToDisaster: false,
      numbers: {},
    });
    return { allowed: false, violations, overridden: [], removedClusters: [], effects: [] };
  }

  if (req.automated && !policy.automatedEvacuations) {
    violations.push({
      rule: 'master-switch',
      message: `automated evacuations are switched off (recovery.safety.automatedEvacuations: false)`,
      fix: 'a person may evacuate with a reason; set recovery.safety.automatedEvacuations: true to let automation do it',
      yieldsToDisaster: false,
      numbers: {},
    });
  }

  const last = state.lastChange.get(placeKey(place));
  if (last !== undefined && state.now - last < policy.holdDownMs) {
    const left = policy.holdDownMs - (state.now - last);
    violations.push({
      rule: 'hold-down',
      message: `${place.kind} ${place.name} changed ${span(state.now - last)} ago; the hold-down of ${span(policy.holdDownMs)} has ${span(left)} left`,
      fix: `wait ${span(left)}, or declare a disaster (its approvers may override the hold-down)`,
      yieldsToDisaster: true,
      numbers: { sinceMs: state.now - last, holdDownMs: policy.holdDownMs, leftMs: left },
    });
  }

  const before = clustersOf(revision, state.evacuated);
  const after = clustersOf(revision, [...state.evacuated, place]);
  const effects: ServiceEffect[] = [];
  const clientJurisdictions = [
    ...new Set(
      Object.values(revision.regions)
        .filter((r) => r.countries.length > 0)
        .map((r) => r.jurisdiction),
    ),
  ].sort();

  for (const [service, routing] of Object.entries(revision.routing).sort(([a], [b]) => a.localeCompare(b))) {
    const running = Object.entries(revision.clusters).filter(([, c]) => service in c.services);
    if (running.length === 0) continue;
    const left = (removed: ReadonlySet<string>) => running.filter(([n]) => !removed.has(n));

    // residency: a lock that had a cluster before must keep one, unless its jurisdiction is declared down
    const lockedOut: string[] = [];
    const juris = routing.residency?.['default'] ? [...clientJurisdictions, 'default'] : clientJurisdictions;
    for (const j of juris) {
      const rule = ruleFor(routing, j);
      if (rule.mode !== 'lock' || rule.key === null) continue;
      const had = left(before).filter(([, c]) => allows(rule, c.jurisdiction)).length;
      const has = left(after).filter(([, c]) => allows(rule, c.jurisdiction)).length;
      if (had === 0 || has > 0) continue;
      lockedOut.push(j);
      if (req.declaredDown.includes(j)) continue;
      violations.push({
        rule: 'residency',
        message: `${j} clients of ${service} would have no cluster left (routing.${service}.residency.${rule.key} locks them to ${rule.allow?.join(', ')}; ${had} cluster(s) serve them now, 0 after)`,
        fix: `keep a cluster of ${rule.allow?.join(', ')} serving ${service}, or declare ${j} down on purpose (--declare-down ${j}): its clients then get 503, never a cluster abroad`,
        yieldsToDisaster: false,
        numbers: { service, jurisdiction: j, clustersBefore: had, clustersAfter: 0 },
      });
    }

    // capacity floor: what the clusters left can carry of the expected traffic, under residency
    const demand = new Map<string, { rps: number; jurisdiction: string }>();
    for (const [name, r] of Object.entries(revision.regions)) {
      if ((r.trafficRps ?? 0) > 0) demand.set(name, { rps: r.trafficRps ?? 0, jurisdiction: r.jurisdiction });
    }
    const supplyOf = (removed: ReadonlySet<string>) => {
      const s = new Map<string, { rps: number; jurisdiction: string }>();
      for (const [, c] of left(removed)) {
        const e = s.get(c.region) ?? { rps: 0, jurisdiction: c.jurisdiction };
        e.rps += c.capacity.rps;
        s.set(c.region, e);
      }
      return s;
    };
    // a jurisdiction declared down is not asked to be served
    const asked = new Map([...demand].filter(([, v]) => !req.declaredDown.includes(v.jurisdiction)));
    const served = (removed: ReadonlySet<string>) => servable(asked, supplyOf(removed), (j) => ruleFor(routing, j));
    const sBefore = served(before);
    const sAfter = served(after);
    effects.push({
      service,
      demandRps: round(sAfter.demand),
      servableBeforeRps: round(sBefore.served),
      servableAfterRps: round(sAfter.served),
      lockedOut,
    });
    const floor = policy.capacityFloor * sAfter.demand;
    if (sAfter.demand > 0 && sAfter.served + 1e-9 < floor && sAfter.served + 1e-9 < sBefore.served) {
      const short = sAfter.clients.length ? `; short: clients of ${sAfter.clients.join(', ')} (${round(sAfter.clientDemand)} rps)` : '';
      violations.push({
        rule: 'capacity-floor',
        message: `${service} could serve ${round(sAfter.served)} of ${round(sAfter.demand)} rps expected (${pct(sAfter.served / sAfter.demand)}) after the evacuation, below the floor of ${pct(policy.capacityFloor)} (recovery.safety.capacityFloor)${short}`,
        fix: `add capacity where those clients may be served, evacuate a smaller place (a cluster), or declare a disaster (its approvers may override the floor)`,
        yieldsToDisaster: true,
        numbers: {
          service,
          demandRps: round(sAfter.demand),
          servableRps: round(sAfter.served),
          floorRps: round(floor),
          servableBeforeRps: round(sBefore.served),
        },
      });
    }
  }

  const overridden = req.disaster ? violations.filter((v) => v.yieldsToDisaster) : [];
  const blocking = violations.filter((v) => !overridden.includes(v));
  return { allowed: blocking.length === 0, violations, overridden, removedClusters: [...after].sort(), effects };
}
