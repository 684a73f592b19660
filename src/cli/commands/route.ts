/**
 * `meridian route simulate`: where each client region's traffic would go, per cluster and version, for
 * the fleet as written or with clusters down, drained or ejected — so a pull request can show how
 * traffic would move. Computed exactly from the router's own tables.
 */
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { formatTrafficTable, trafficTable } from '../../routing/traffic-table.js';
import { simulatedState } from '../../routing/state.js';
import { type Io, write, type Result } from '../io.js';
import { loadAndRender } from './render.js';

const list = (v: string, prev: string[] = []): string[] => [
  ...prev,
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

export function registerRoute(program: Command, io: Io, result: Result): void {
  const route = program.command('route').description('routing: simulate where traffic goes');
  route
    .command('simulate')
    .description('print the share of each client region’s traffic per cluster and version')
    .argument('[fleet]', 'fleet directory or file', '.')
    .option('--down <clusters>', 'clusters to treat as failed (repeatable, comma-separated)', list)
    .option('--drain <names>', 'clusters or regions to drain', list)
    .option('--eject <clusters>', 'clusters to treat as ejected by outlier detection', list)
    .option('--service <name>', 'only this service')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(
      async (dir: string, opts: { down?: string[]; drain?: string[]; eject?: string[]; service?: string; output: 'text' | 'json' }) => {
        const { rendered } = loadAndRender(dir);
        const rev = rendered.revision;
        const clusters = Object.keys(rev.clusters);
        const names = [...clusters, ...Object.keys(rev.regions)];
        for (const c of [...(opts.down ?? []), ...(opts.eject ?? [])]) {
          if (!rev.clusters[c]) throw new UsageError(`no cluster named ${c}`, `use one of: ${clusters.join(', ')}`);
        }
        for (const d of opts.drain ?? [])
          if (!names.includes(d)) throw new UsageError(`no cluster or region named ${d}`, `use one of: ${names.join(', ')}`);
        if (
          opts.service !== undefined &&
          !rev.routing[opts.service] &&
          !Object.values(rev.clusters).some((c) => opts.service! in c.services)
        ) {
          throw new UsageError(`no service named ${opts.service}`, `use one of: ${Object.keys(rev.routing).join(', ')}`);
        }
        const state = simulatedState({ down: opts.down ?? [], drain: opts.drain ?? [], eject: opts.eject ?? [] });
        const tt = trafficTable(rev, state);
        const fmt = { format: opts.output, ...(opts.service !== undefined ? { service: opts.service } : {}) };
        await write(io.out, ensureNewline(formatTrafficTable(tt, fmt)));
        result.code = 0;
      },
    );
}

function ensureNewline(s: string): string {
  return s.endsWith('\n') ? s : `${s}\n`;
}
