/**
 * `meridian export <target> [fleet] -o DIR`: a data plane's configuration (HAProxy, …) from the fleet's
 * routing tables, plus the loss report (what the target cannot express). The exporters live in src/export.
 */
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { clusterAddresses, EXPORTERS, exportInput, formatLoss, writeExport, type ExportSettings } from '../../export/index.js';
import { type Io, write } from '../io.js';
import type { Result } from './index.js';
import type { loadAndRender as LoadAndRender } from './render.js';

interface TargetFlags {
  out: string;
  listen: string;
  countryHeader: string;
  countryNet?: string[];
  runtimeApi?: string;
  format: 'text' | 'json';
}

const list = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Parses `--country-net 127.0.1.0/24=DE` flags. */
function countryNets(flags: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of flags ?? []) {
    const m = /^([0-9a-fA-F:.]+\/\d{1,3})=([A-Z]{2})$/.exec(f.trim());
    if (!m) throw new UsageError(`--country-net must look like 127.0.1.0/24=DE (a CIDR, =, a country code), not ${JSON.stringify(f)}`);
    out[m[1] ?? ''] = m[2] ?? '';
  }
  return out;
}

/** Registers one subcommand of `export` per data-plane exporter. */
export function registerDataPlaneExports(exp: Command, io: Io, result: Result, load: typeof LoadAndRender): void {
  for (const exporter of EXPORTERS) {
    exp
      .command(exporter.target)
      .description(exporter.description)
      .argument('[fleet]', 'fleet directory or file', '.')
      .requiredOption('-o, --out <dir>', 'directory to write the configuration and the loss report into')
      .option('--listen <host:port>', 'address the data plane listens on', '127.0.0.1:8080')
      .option('--country-header <name>', 'request header with the client country set by a trusted edge ("" for none)', 'x-client-country')
      .option('--country-net <cidr=CC>', 'map a client network to a country (repeatable), e.g. 127.0.1.0/24=DE', list)
      .option('--runtime-api <socket>', 'HAProxy runtime API socket')
      .addOption(new Option('--format <format>', 'how to print the loss report').choices(['text', 'json']).default('text'))
      .action(async (dir: string, flags: TargetFlags) => {
        const { rendered } = load(dir);
        const settings: Partial<ExportSettings> = {
          listen: flags.listen,
          countryHeader: flags.countryHeader === '' ? null : flags.countryHeader.toLowerCase(),
          countryNets: countryNets(flags.countryNet),
          ...(flags.runtimeApi !== undefined ? { runtimeApi: flags.runtimeApi } : {}),
        };
        const input = exportInput(rendered.revision, clusterAddresses(rendered.revision), settings);
        const out = exporter.export(input);
        const written = writeExport(flags.out, exporter.target, out);
        await write(io.err, `wrote ${written.length} files to ${flags.out}\n`);
        await write(io.out, flags.format === 'json' ? `${JSON.stringify(out.loss, null, 2)}\n` : formatLoss(exporter.target, out.loss));
        result.code = 0;
      });
  }
}
