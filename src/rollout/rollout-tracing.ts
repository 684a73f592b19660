/**
 * Traces of rollouts, derived from their persisted events: one trace per rollout (its id derived from the
 * rollout's id), a `rollout` span, a `rollout.wave` span per wave, a `rollout.step` span per canary step
 * with the verdict and each gate's result as attributes, and a `rollout.rollback` span. Span ids are
 * derived from the rollout's id and event numbers, so a rollout resumed by another process continues the
 * same trace: feed it the earlier events with `replay` first (nothing is exported for them).
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Attributes, type AttributeValue } from '@opentelemetry/api';
import type { RolloutSpec } from './rollout-spec.js';
import type { RolloutEventRecord, RolloutRecord } from '../store/store.js';
import { batchClusters, gateResults, readEvent, specOf, strings, waveName, type RolloutEventView } from './event-view.js';
import { derivedId, parentContext } from '../telemetry/trace-ids.js';
import type { Tracing } from '../telemetry/tracing.js';

interface Pending {
  readonly name: string;
  readonly spanId: string;
  /** Null: the rollout span (root). */
  readonly parentId: string | null;
  readonly start: number;
  readonly attributes: Attributes;
  readonly events: { name: string; at: number; attributes: Attributes }[];
  error: string | null;
}

interface Followed {
  readonly traceId: string;
  readonly spec: RolloutSpec | null;
  readonly root: Pending;
  wave: (Pending & { readonly index: number }) | null;
  step: (Pending & { readonly key: string }) | null;
  rollback: Pending | null;
}

/** The trace id of a rollout's trace (for links from logs, the dashboard and CI summaries). */
export function rolloutTraceId(rolloutId: string): string {
  return derivedId(32, 'meridian-rollout', rolloutId);
}

/** What a rollout's events feed. */
export interface RolloutSpans {
  /** Feeds one event (every event in `seq` order); `replay` rebuilds the state without exporting. */
  observe(
    event: RolloutEventRecord,
    rollout: Pick<RolloutRecord, 'id' | 'fleet' | 'kind' | 'spec' | 'createdAt' | 'toRevision' | 'fromRevision'>,
    opts?: { replay?: boolean },
  ): void;
  /** Rollouts whose trace is still open. */
  readonly open: number;
}

/** A new follower of rollout events that turns them into spans on `tracing`. */
export function rolloutTracer(tracing: Tracing): RolloutSpans {
  return new RolloutTracer(tracing);
}

/** Turns rollout events into spans on a {@link Tracing}. */
export class RolloutTracer implements RolloutSpans {
  readonly #tracing: Tracing;
  readonly #followed = new Map<string, Followed>();

  constructor(tracing: Tracing) {
    this.#tracing = tracing;
  }

  /**
   * Feeds one event of `rollout` (every event in `seq` order). With `replay`, the state is rebuilt but no
   * span is exported (those were exported by the process that saw them first).
   */
  observe(
    event: RolloutEventRecord,
    rollout: Pick<RolloutRecord, 'id' | 'fleet' | 'kind' | 'spec' | 'createdAt' | 'toRevision' | 'fromRevision'>,
    opts: { replay?: boolean } = {},
  ): void {
    const e = readEvent(event, rollout);
    const emit = opts.replay !== true;
    let f = this.#followed.get(e.rollout);
    if (!f) {
      const created = Date.parse(rollout.createdAt);
      f = {
        traceId: rolloutTraceId(e.rollout),
        spec: specOf(rollout),
        root: pending(
          `${e.kind === 'rollback' ? 'rollback' : 'rollout'}`,
          derivedId(16, e.rollout, 'rollout'),
          null,
          Number.isFinite(created) ? created : e.at,
          {
            'meridian.rollout.id': e.rollout,
            'meridian.rollout.kind': e.kind,
            'meridian.fleet': e.fleet,
            'meridian.revision.to': rollout.toRevision,
            ...(rollout.fromRevision !== null ? { 'meridian.revision.from': rollout.fromRevision } : {}),
          },
        ),
        wave: null,
        step: null,
        rollback: null,
      };
      this.#followed.set(e.rollout, f);
    }
    this.#record(f, e);
    this.#move(f, e, emit);
  }

  /** Rollouts whose trace is still open. */
  get open(): number {
    return this.#followed.size;
  }

  /** Adds what the event reports to the open spans. */
  #record(f: Followed, e: RolloutEventView): void {
    const d = e.data;
    switch (e.type) {
      case 'approvals-met':
        f.wave?.events.push({ name: 'approvals-met', at: e.at, attributes: { 'meridian.approvers': strings(d['approvers']) } });
        return;
      case 'canary-ready':
        f.wave?.events.push({ name: 'canary-ready', at: e.at, attributes: {} });
        return;
      case 'weight-set':
        if (f.step && typeof d['weight'] === 'number') f.step.attributes['meridian.step.weight'] = d['weight'];
        return;
      case 'verdict': {
        const outcome = typeof d['outcome'] === 'string' ? d['outcome'] : 'unknown';
        const reason = typeof d['reason'] === 'string' ? d['reason'] : '';
        const attrs: Attributes = { 'meridian.verdict.outcome': outcome, ...(reason ? { 'meridian.verdict.reason': reason } : {}) };
        for (const g of gateResults(d)) {
          attrs[`meridian.gate.${g.metric}.verdict`] = g.outcome;
          if (g.value !== null) attrs[`meridian.gate.${g.metric}.value`] = g.value;
        }
        if (f.step) {
          Object.assign(f.step.attributes, attrs);
          f.step.events.push({ name: 'verdict', at: e.at, attributes: attrs });
          if (outcome !== 'pass' && outcome !== 'running') f.step.error = `verdict ${outcome}${reason ? `: ${reason}` : ''}`;
        }
        return;
      }
      case 'promoted':
        f.wave?.events.push({ name: 'promoted', at: e.at, attributes: { 'meridian.clusters': strings(d['clusters']) } });
        return;
      case 'cluster-rolled-back':
        f.rollback?.events.push({
          name: 'cluster-rolled-back',
          at: e.at,
          attributes: { 'meridian.cluster': String(d['cluster'] ?? ''), 'meridian.revision': String(d['revision'] ?? '') },
        });
        return;
      case 'control':
      case 'approval-rejected':
      case 'effect-failed':
      case 'abandoned': {
        const attrs: Attributes = { 'meridian.actor': e.actor };
        for (const k of ['action', 'reason', 'by']) if (typeof d[k] === 'string') attrs[`meridian.${k}`] = d[k] as AttributeValue;
        f.root.events.push({ name: e.type, at: e.at, attributes: attrs });
        return;
      }
      default:
        return;
    }
  }

  /** Opens and closes spans as the rollout moves. */
  #move(f: Followed, e: RolloutEventView, emit: boolean): void {
    const to = e.to;
    if (to === null) return;
    const stepKey = to.phase === 'weight' || to.phase === 'pause' || to.phase === 'analysis' ? `${to.wave}/${to.batch}/${to.step}` : null;
    // a step ends when the rollout leaves it (next step, bake, promote, paused, rollback, done)
    if (f.step && (stepKey !== f.step.key || to.phase === 'weight')) {
      this.#end(f, f.step, e.at, emit);
      f.step = null;
    }
    if (to.phase === 'rollback' && f.rollback === null) {
      if (f.wave) {
        f.wave.error = `rolled back: ${to.reason ?? ''}`;
        this.#end(f, f.wave, e.at, emit);
        f.wave = null;
      }
      f.rollback = pending('rollout.rollback', derivedId(16, e.rollout, 'rollback', e.seq), f.root.spanId, e.at, {
        'meridian.rollback.reason': to.reason ?? '',
      });
    }
    if (to.phase !== 'rollback' && to.phase !== 'done' && to.phase !== 'paused' && (f.wave === null || f.wave.index !== to.wave)) {
      if (f.wave) this.#end(f, f.wave, e.at, emit);
      const w = f.spec?.config.waves[to.wave];
      f.wave = {
        ...pending('rollout.wave', derivedId(16, e.rollout, 'wave', to.wave), f.root.spanId, e.at, {
          'meridian.wave.index': to.wave,
          'meridian.wave.name': waveName(f.spec, to.wave),
          'meridian.wave.clusters': [...(w?.batches.flat() ?? [])],
        }),
        index: to.wave,
      };
    }
    if (to.phase === 'weight' && f.step === null && f.wave !== null && stepKey !== null) {
      const weight = f.spec?.config.waves[to.wave]?.steps[to.step ?? 0]?.weight;
      f.step = {
        ...pending('rollout.step', derivedId(16, e.rollout, 'step', e.seq), f.wave.spanId, e.at, {
          'meridian.wave.index': to.wave,
          'meridian.wave.name': waveName(f.spec, to.wave),
          'meridian.step.index': to.step ?? 0,
          'meridian.batch.index': to.batch ?? 0,
          'meridian.batch.clusters': [...batchClusters(f.spec, to.wave, to.batch)],
          ...(weight !== undefined ? { 'meridian.step.weight': weight } : {}),
        }),
        key: stepKey,
      };
    }
    if (to.phase === 'paused') f.root.events.push({ name: 'paused', at: e.at, attributes: { 'meridian.reason': to.reason ?? '' } });
    if (to.phase === 'done') {
      if (f.wave) this.#end(f, f.wave, e.at, emit);
      if (f.rollback) this.#end(f, f.rollback, e.at, emit);
      f.root.attributes['meridian.rollout.outcome'] = to.outcome ?? 'unknown';
      if (to.reason) f.root.attributes['meridian.rollout.reason'] = to.reason;
      if (to.outcome !== 'promoted') f.root.error = `${to.outcome ?? 'ended'}${to.reason ? `: ${to.reason}` : ''}`;
      this.#end(f, f.root, e.at, emit);
      this.#followed.delete(e.rollout);
    }
  }

  #end(f: Followed, p: Pending, end: number, emit: boolean): void {
    if (!emit) return;
    const { tracer, ids } = this.#tracing;
    ids.seed(p.spanId, p.parentId === null ? f.traceId : undefined);
    const span = tracer.startSpan(
      p.name,
      { kind: SpanKind.INTERNAL, startTime: p.start, attributes: p.attributes },
      p.parentId === null ? ROOT_CONTEXT : parentContext(f.traceId, p.parentId),
    );
    for (const ev of p.events) span.addEvent(ev.name, ev.attributes, ev.at);
    if (p.error !== null) span.setStatus({ code: SpanStatusCode.ERROR, message: p.error });
    span.end(Math.max(end, p.start));
  }
}

function pending(name: string, spanId: string, parentId: string | null, start: number, attributes: Attributes): Pending {
  return { name, spanId, parentId, start, attributes: { ...attributes }, events: [], error: null };
}
