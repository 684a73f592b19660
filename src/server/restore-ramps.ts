/**
 * The control plane's restore ramps (docs/recovery.md, "The restore ramp"): which places ramp back after a
 * restore, read from the audit log as it is followed; where each stands now (a pure function of the
 * restore's time, its ramp and the clock, src/recovery/ramp.ts); a timer for the next step; telling the
 * fleet's own router; and the audit of each step applied.
 */
import { rampAt, rampFromJson, rampsInForce, restoreRamp, type RampInForce, type RestoreRecord } from '../recovery/ramp.js';
import type { Place } from '../recovery/safety.js';
import type { Recovery } from '../spec/schema.js';
import type { AuditEntry, Store } from '../store/store.js';
import type { FleetLink } from './fleet-link.js';

export interface RestoreRampsOptions {
  readonly store: Store;
  readonly recovery: Recovery | undefined;
  readonly link: FleetLink | null;
  /** A step is due: recompute the routing view, then call {@link RestoreRamps.stepped}. */
  readonly onStep: () => void;
  readonly log?: ((message: string) => void) | undefined;
}

/** The restore ramps one control plane follows. */
export class RestoreRamps {
  readonly #o: RestoreRampsOptions;
  /** Places whose last change was a restore (by name): what may be ramping back. */
  readonly #restores = new Map<string, RestoreRecord>();
  /** Ramp steps in the audit log, as `restore seq:step`. */
  readonly #audited = new Set<string>();
  #inForce: RampInForce[] = [];
  #timer: NodeJS.Timeout | null = null;
  /** When the step the timer is armed for falls due. */
  #timerAt = Infinity;
  #stopped = false;

  constructor(opts: RestoreRampsOptions) {
    this.#o = opts;
  }

  /** The places ramping back, where each stood at the last {@link at}. */
  get inForce(): readonly RampInForce[] {
    return this.#inForce;
  }

  /** Follows one audit entry: a drain ends a place's ramp, a restore starts one, a step is on record. */
  observe(e: AuditEntry, kind: 'cluster' | 'region'): void {
    const d = e.data !== null && typeof e.data === 'object' && !Array.isArray(e.data) ? e.data : {};
    if (e.action === 'routing.drain') {
      if (d['drained'] !== true && d['restore'] === true) {
        this.#restores.set(e.subject, {
          place: { kind, name: e.subject },
          seq: e.seq,
          at: Date.parse(e.at),
          ramp: rampFromJson(d['ramp']),
        });
      } else this.#restores.delete(e.subject);
    } else if (e.action === 'recovery.ramp') {
      this.#audited.add(`${String(d['restore'])}:${String(d['step'])}`);
    }
  }

  /** A restore this control plane just wrote (in force before its audit entry is read back). */
  restored(place: Place, seq: number, at: number): void {
    this.#restores.set(place.name, { place, seq, at, ramp: restoreRamp(this.#o.recovery) });
  }

  /**
   * The ramps in force at `now` (place → percent, keys in order) for places not drained again; arms the
   * timer for the next step.
   */
  at(now: number, drained: ReadonlySet<string>): Record<string, number> {
    const restores = [...this.#restores.values()].filter((r) => !drained.has(r.place.name));
    this.#inForce = rampsInForce(restores, restoreRamp(this.#o.recovery), now);
    const out: Record<string, number> = {};
    for (const r of [...this.#inForce].sort((a, b) => (a.place.name < b.place.name ? -1 : 1))) out[r.place.name] = r.percent;
    // a step that fell due before its timer ran (a recompute came first) still gets its turn: it is audited there
    const missed = this.#timer !== null && this.#timerAt <= now;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const next = Math.min(missed ? now : Infinity, ...this.#inForce.map((r) => r.nextAt ?? Infinity));
    this.#timerAt = next;
    if (Number.isFinite(next) && !this.#stopped) {
      this.#timer = setTimeout(
        () => {
          this.#timer = null;
          if (!this.#stopped) this.#o.onStep();
        },
        Math.max(0, next - now) + 5,
      );
      this.#timer.unref();
    }
    return out;
  }

  /** Tells the fleet's own router the ramps in force (a failure is logged: the next step or look tries again). */
  async sync(ramp: Readonly<Record<string, number>>): Promise<void> {
    const link = this.#o.link;
    if (!link?.syncRamps) return;
    try {
      await link.syncRamps(ramp);
    } catch (err) {
      this.#o.log?.(`cannot tell ${link.describe} the restore ramps in force: ${(err as Error).message}`);
    }
  }

  /**
   * Audits each ramp step this control plane applies when it is due (`recovery.ramp`; the restore entry
   * itself is the ramp's start, the 100 % step its end). A step already in the log (another control plane
   * on the store; read the log first) or long past (this one was not running then) is not written again.
   */
  async audit(now: number, drained: ReadonlySet<string>): Promise<void> {
    for (const r of this.#restores.values()) {
      const ramp = r.ramp === undefined ? restoreRamp(this.#o.recovery) : r.ramp;
      if (!ramp || drained.has(r.place.name)) continue;
      const pos = rampAt(ramp, r.at, now);
      const id = `${r.seq}:${pos.step}`;
      if (pos.step === 0 || this.#audited.has(id) || now - pos.stepAt > Math.max(ramp.stepMs, 5000)) continue;
      this.#audited.add(id);
      await this.#o.store.appendAudit({
        actor: { id: 'meridian', via: 'restore-ramp' },
        action: 'recovery.ramp',
        subject: r.place.name,
        reason:
          pos.nextAt === null ? 'restore ramp complete: it takes all its traffic' : `restore ramp step ${pos.step + 1} of ${pos.steps}`,
        data: {
          kind: r.place.kind,
          restore: r.seq,
          step: pos.step,
          steps: pos.steps,
          percent: pos.percent,
          dueAt: new Date(pos.stepAt).toISOString(),
        },
      });
    }
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
