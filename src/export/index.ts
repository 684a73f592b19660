/** Data-plane exporters: one contract (contract.ts), one input (input.ts), one file per target. See docs/export.md. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ExportResult, Exporter } from './contract.js';
import { bindExporter } from './bind.js';
import { envoyExporter } from './envoy.js';
import { haproxyExporter } from './haproxy.js';
import { formatLoss } from './loss.js';
import { gatewayApiExporter } from './gateway-api.js';
import { gdnsdExporter } from './gdnsd.js';
import { istioExporter } from './istio.js';
import { nginxExporter } from './nginx.js';

export * from './contract.js';
export { clusterAddresses, NoAddressError, splitAddress } from './addresses.js';
export { exportInput } from './input.js';
export { formatLoss, LOSS_CODES, sortLoss, type LossCode } from './loss.js';

/** Every data-plane exporter, by target name. */
export const EXPORTERS: readonly Exporter[] = [
  haproxyExporter,
  nginxExporter,
  gdnsdExporter,
  bindExporter,
  envoyExporter,
  istioExporter,
  gatewayApiExporter,
];

/** The exporter for a target, or undefined. */
export function exporterFor(target: string): Exporter | undefined {
  return EXPORTERS.find((e) => e.target === target);
}

/** Writes an export's files under `dir`, plus `loss-report.json` and `loss-report.txt`; returns the paths written. */
export function writeExport(dir: string, target: string, result: ExportResult): string[] {
  const files: Record<string, string> = {
    ...result.files,
    'loss-report.json': `${JSON.stringify({ target, loss: result.loss }, null, 2)}\n`,
    'loss-report.txt': formatLoss(target, result.loss),
  };
  const written: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    written.push(path);
  }
  return written;
}
