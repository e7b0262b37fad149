// A real OpenID Connect provider for the deployment end-to-end test: the certified
// `oidc-provider` library (npm), configured the way a Keycloak realm serves JupyterHub:
//
// - one confidential client (the hub): authorization-code flow, refresh tokens (rotated),
//   client_secret_post at the token endpoint (as FirecRESTSpawner's refresh grant sends it);
// - access tokens are RS256 JWTs for one resource (FirecREST) carrying `preferred_username`
//   plus `given_name` and `email` together (FirecREST v2 answers 500 to a token with `email`
//   and no `given_name`), verifiable against this provider's JWKS (`/jwks`);
// - `/userinfo/jwt` answers for those access tokens, as Keycloak's userinfo does;
// - the login page is the library's own development interaction (any user name, a
//   password field, then a consent page): a browser logs in there.
//
// Usage: node oidc-server.mjs CONFIG.json — CONFIG holds {host, port, client_id,
// client_secret, redirect_uris, access_token_ttl, refresh_token_ttl}. Prints one line
// `ready <issuer>` on stdout once it listens; exits on SIGTERM.
import crypto from 'node:crypto';
import fs from 'node:fs';

import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const issuer = `http://${config.public_host ?? config.host}:${config.port}`;
const RESOURCE = config.resource ?? 'urn:f7t4jhub:firecrest';

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'RS256',
};

// The account's claims: the login name is the user name everywhere (hub, FirecREST, Slurm).
function claimsOf(accountId) {
  return {
    sub: accountId,
    preferred_username: accountId,
    given_name: accountId,
    email: `${accountId}@example.org`,
  };
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: config.redirect_uris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'given_name'],
    email: ['email'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  // The id token carries the profile claims (the hub reads the user name from it).
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => claimsOf(id),
  }),
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) {
          throw new Error(`unknown resource ${resourceIndicator}`);
        }
        return {
          scope: 'openid profile email offline_access',
          audience: RESOURCE,
          accessTokenTTL: config.access_token_ttl ?? 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // FirecREST identifies the user by these claims of the access token.
  extraTokenClaims: async (ctx, token) => (token.accountId ? claimsOf(token.accountId) : {}),
  // A refresh token for every code exchange of a client allowed to refresh (as Keycloak).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: {
    RefreshToken: config.refresh_token_ttl ?? 3600,
    Session: 3600,
    Grant: 3600,
    Interaction: 600,
  },
  routes: { jwks: '/jwks', token: '/token', authorization: '/auth', userinfo: '/userinfo' },
});
provider.proxy = false;

// Keycloak's userinfo endpoint also takes the realm's JWT access tokens; this library's
// /userinfo refuses tokens issued for a resource server. `/userinfo/jwt` answers like
// Keycloak's for the tokens issued here: signature (our key), issuer and expiry checked.
const publicKey = crypto.createPublicKey(privateKey);
function verifiedClaims(authorization) {
  const [scheme, token] = (authorization ?? '').split(' ');
  if (scheme?.toLowerCase() !== 'bearer' || !token) return null;
  const [header, payload, signature] = token.split('.');
  if (!signature) return null;
  const ok = crypto.verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), publicKey,
    Buffer.from(signature, 'base64url'));
  if (!ok) return null;
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  if (claims.iss !== issuer || claims.exp * 1000 < Date.now()) return null;
  return claims;
}
provider.use(async (ctx, next) => {
  if (ctx.path !== '/userinfo/jwt') return next();
  const claims = verifiedClaims(ctx.get('authorization'));
  if (!claims) {
    ctx.status = 401;
    ctx.body = { error: 'invalid_token' };
    return undefined;
  }
  ctx.body = claimsOf(claims.sub);
  return undefined;
});

const server = provider.listen(config.port, config.host, () => {
  process.stdout.write(`ready ${issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
