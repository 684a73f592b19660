/** A local OIDC issuer for tests: discovery and JWKS on loopback, and an RS256 key to sign ID tokens with. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

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

/** What a GitHub Actions runner's token service is told: the request token a job holds, and each ID token's claims. */
export interface ActionsTokenOptions {
  /** The bearer a job sends (ACTIONS_ID_TOKEN_REQUEST_TOKEN); any other is refused with 401. */
  readonly requestToken: string;
  /** The claims of a token for `audience`, beyond iss, aud, iat and exp. */
  readonly claims: (audience: string) => Record<string, unknown>;
}

/** A stand-in for GitHub's token service, as a job sees it. */
export interface ActionsTokenService {
  /** ACTIONS_ID_TOKEN_REQUEST_URL: like GitHub's, it carries a query already (`&audience=` is appended to it). */
  readonly requestUrl: string;
  readonly server: Server;
  /** How many ID tokens it handed out. */
  issued(): number;
}

/**
 * Serves ID tokens signed by `issuer` the way the Actions runner does: `GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=A`
 * with `Authorization: bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>` answers `{"count": 1, "value": "<JWT>"}`, valid 5 minutes.
 */
export async function startActionsTokenService(issuer: Issuer, opts: ActionsTokenOptions): Promise<ActionsTokenService> {
  let issued = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.headers.authorization !== `bearer ${opts.requestToken}` && req.headers.authorization !== `Bearer ${opts.requestToken}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"bad request token"}');
      return;
    }
    const audience = url.searchParams.get('audience') ?? issuer.url;
    const now = Math.floor(Date.now() / 1000);
    void new SignJWT(opts.claims(audience))
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'JWT' })
      .setIssuer(issuer.url)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + 300)
      .sign(issuer.key)
      .then((value) => {
        issued++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: 1, value }));
      });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { requestUrl: `http://127.0.0.1:${port}/_apis/distributedtask/idtoken?api-version=2.0`, server, issued: () => issued };
}
