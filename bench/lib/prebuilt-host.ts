/**
 * A stand-in for the GitHub release that better-sqlite3's install script (`prebuild-install || node-gyp
 * rebuild`) downloads its prebuilt binary from, for machines that cannot reach GitHub: the asset built from
 * a compiled better-sqlite3 (`better-sqlite3-v<version>-node-v<abi>-<platform>-<arch>.tar.gz` holding
 * `build/Release/better_sqlite3.node`, stripped, as the real release asset is) served over loopback HTTP.
 *
 * prebuild-install 7 (node_modules/prebuild-install/util.js) takes the host from the environment variable
 * `npm_config_<package name with non-alphanumerics as _>_binary_host`, here
 * `npm_config_better_sqlite3_binary_host`, and fetches `<host>/v<version>/<asset>` (tag prefix `v`); it
 * caches the download in `<npm cache>/_prebuilds`, so an empty npm cache makes it download.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/** The environment variable prebuild-install reads the host of better-sqlite3's binaries from. */
export const BINARY_HOST_ENV = 'npm_config_better_sqlite3_binary_host';

export interface PrebuiltHost {
  /** What to set {@link BINARY_HOST_ENV} to. */
  readonly url: string;
  /** The asset's file name and size, and the package version it is for. */
  readonly asset: string;
  readonly bytes: number;
  readonly version: string;
  /** The requests the host answered (method, path, status), in order. */
  readonly requests: { path: string; status: number }[];
  close(): Promise<void>;
}

/** The asset's name for `version` on this Node (ABI), platform and architecture, as prebuild names it. */
export function assetName(version: string): string {
  return `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
}

/**
 * Packs the binary of the compiled better-sqlite3 in `packageDir` (its `build/Release/better_sqlite3.node`)
 * into `workDir` as the release asset, and serves it on 127.0.0.1 at `/v<version>/<asset>`.
 */
export async function startPrebuiltHost(packageDir: string, workDir: string): Promise<PrebuiltHost> {
  const version = (JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string }).version;
  const stage = join(workDir, 'stage');
  mkdirSync(join(stage, 'build', 'Release'), { recursive: true });
  const binary = join(stage, 'build', 'Release', 'better_sqlite3.node');
  copyFileSync(join(packageDir, 'build', 'Release', 'better_sqlite3.node'), binary);
  execFileSync('strip', [binary]); // prebuild strips the binaries it uploads
  const asset = assetName(version);
  const file = join(workDir, asset);
  execFileSync('tar', ['-czf', file, '--owner=0', '--group=0', '-C', stage, 'build/Release/better_sqlite3.node']);
  const body = readFileSync(file);
  const requests: { path: string; status: number }[] = [];
  const wanted = `/v${version}/${asset}`;
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    const status = req.method === 'GET' && path === wanted ? 200 : 404;
    requests.push({ path, status });
    if (status === 200) res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    asset,
    bytes: statSync(file).size,
    version,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
