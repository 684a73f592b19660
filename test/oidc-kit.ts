/** A local OIDC issuer for tests: discovery and JWKS on loopback, and an RS256 key to sign ID tokens with. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

export interface Issuer {
  readonly url: string;
  readonly server: Server;
  readonly key: CryptoKey;
}

/** Starts an issuer; `discovery` changes what its discovery document says (a wrong `issuer`, another `jwks_uri`). */
export async function startIssuer(discovery: (url: string) => Record<string, unknown> = () => ({})): Promise<Issuer> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  let url = '';
  const server = createServer((req, res) => {
    const body =
      req.url === '/.well-known/openid-configuration'
        ? { issuer: url, jwks_uri: `${url}/jwks`, ...discovery(url) }
        : req.url === '/jwks'
          ? { keys: [jwk] }
          : null;
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, server, key: privateKey };
}
