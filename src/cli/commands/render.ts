/** `meridian render`: the per-cluster desired state, byte-stable, and where any value came from. */
import { Option, type Command } from 'commander';
import { stringify } from 'yaml';
import { UsageError } from '../../errors.js';
import { formatLocation } from '../../findings/finding.js';
import { sortKeys } from '../../render/canonical.js';
import { render, type RenderResult } from '../../render/render.js';
import { loadFleet, type LoadedFleet } from '../../spec/load.js';
import { InputError } from '../../errors.js';
import { type Io, write, type Result } from '../io.js';

/** Loads and renders a fleet; render-time problems (unresolved placeholders) make the input unusable. */
export function loadAndRender(dir: string): { loaded: LoadedFleet; rendered: RenderResult } {
  const loaded = loadFleet(dir);
  const rendered = render(loaded);
  if (rendered.findings.length > 0) throw new InputError(`the fleet at ${dir} cannot be rendered`, rendered.findings);
  return { loaded, rendered };
}

/** YAML in one canonical form: sorted keys, no folding, so equal content is equal bytes. */
export function toYaml(value: unknown): string {
  return stringify(sortKeys(value), { lineWidth: 0, minContentWidth: 0 });
}

/** Kubernetes objects of several clusters as one multi-document YAML stream, each document headed by its cluster. */
export function kubernetesYaml(sets: readonly { cluster: string; objects: readonly unknown[] }[]): string {
  return sets.flatMap((m) => m.objects.map((o) => `# cluster ${m.cluster}\n${toYaml(o)}`)).join('---\n');
}

export function registerRender(program: Command, io: Io, result: Result): void {
  program
    .command('render')
    .description('render the desired state of every cluster (or one) from the fleet description')
    .argument('[fleet]', 'fleet directory or file', '.')
    .option('-c, --cluster <name>', 'only this cluster')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .option('--explain <path>', 'say where a rendered value came from, e.g. web.replicas (needs --cluster)')
    .addOption(
      new Option('--format <format>', "what to render: Meridian's desired state, or the Kubernetes objects of the kubernetes clusters")
        .choices(['meridian', 'kubernetes'])
        .default('meridian'),
    )
    .action(
      async (dir: string, opts: { cluster?: string; output: 'yaml' | 'json'; explain?: string; format: 'meridian' | 'kubernetes' }) => {
        const { rendered } = loadAndRender(dir);
        const rev = rendered.revision;
        if (opts.cluster !== undefined && !rev.clusters[opts.cluster]) {
          throw new UsageError(`no cluster named ${opts.cluster} in the fleet`, `use one of: ${Object.keys(rev.clusters).join(', ')}`);
        }
        if (opts.format === 'kubernetes') {
          const { kubernetesManifests } = await import('../../targets/kubernetes/render-manifests.js');
          const sets = kubernetesManifests(rev, opts.cluster);
          if (opts.output === 'json') await write(io.out, `${JSON.stringify(sets, null, 2)}\n`);
          else await write(io.out, kubernetesYaml(sets));
          return;
        }
        if (opts.explain !== undefined) {
          if (opts.cluster === undefined)
            throw new UsageError(
              '--explain needs --cluster',
              `e.g. meridian render ${dir} --explain ${opts.explain} --cluster ${Object.keys(rev.clusters)[0] ?? 'NAME'}`,
            );
          const p = rendered.explain(opts.cluster, opts.explain);
          if (!p) {
            const svc = opts.explain.split('.')[0] ?? '';
            const runs = rev.clusters[opts.cluster]?.services[svc] !== undefined;
            throw new UsageError(
              runs ? `${opts.explain} is not set on cluster ${opts.cluster}` : `service ${svc} does not run on cluster ${opts.cluster}`,
              'name a rendered value as SERVICE.FIELD, e.g. web.replicas, web.env.LOG_LEVEL, web.image',
            );
          }
          const value = valueAt(rev.clusters[opts.cluster]?.services, opts.explain.split('.'));
          if (opts.output === 'json') {
            await write(
              io.out,
              `${JSON.stringify({ cluster: opts.cluster, value: opts.explain, is: value, source: p.source, setAt: p.path, location: p.location ?? null }, null, 2)}\n`,
            );
          } else {
            const where = formatLocation(p.location);
            await write(
              io.out,
              `${opts.explain} on ${opts.cluster} = ${JSON.stringify(value)}\n  set by ${p.source} (${p.path})${where ? ` at ${where}` : ''}\n`,
            );
          }
          result.code = 0;
          return;
        }
        const clusters = opts.cluster !== undefined ? { [opts.cluster]: rev.clusters[opts.cluster] } : rev.clusters;
        const doc = { revision: rev.id, fleet: rev.fleet, clusters };
        await write(io.out, opts.output === 'json' ? `${JSON.stringify(sortKeys(doc), null, 2)}\n` : toYaml(doc));
      },
    );
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}
