// A real OpenID Provider for the tests: panva/oidc-provider (OpenID Certified), started by tests/support/oidc.py.
//
//   node provider.mjs --port 4711 --redirect-uri http://localhost:8000/auth/oidc/he/callback \
//        --post-logout-redirect-uri http://localhost:8000/#/login
//
// Options (each also as an environment variable; the options win):
//   --port / OIDC_PORT                              port on 127.0.0.1 (required)
//   --issuer / OIDC_ISSUER                          default http://127.0.0.1:<port>
//   --client-id / OIDC_CLIENT_ID                    default "breitband"
//   --client-secret / OIDC_CLIENT_SECRET            default "breitband-test-secret"
//   --redirect-uri / OIDC_REDIRECT_URIS             repeatable option; the variable is space-separated
//   --post-logout-redirect-uri / OIDC_POST_LOGOUT_REDIRECT_URIS   likewise
//
// Besides that confidential client (client_secret_basic, authorization code only, PKCE S256 required) there is a
// second client "intruder" (secret "intruder-secret", same redirect URIs): the tests use it for ID tokens issued to
// another audience and for a code issued to another client.
//
// Sign-in uses oidc-provider's devInteractions: a login form whose "login" field is the account id (the password
// field is required by the form but not checked). ACCOUNTS below are the only accounts; an unknown login ends on the
// provider's error page (findAccount finds nothing). Consent is granted without asking (a first-party IdP, as a state portal would be configured).
// The claims email, email_verified, name, org and role are put into the ID token (conformIdTokenClaims off), as
// Keycloak and most state portals do; they are also served by the userinfo endpoint.
//
// The process prints "listening <issuer>" on stdout when ready and stops on SIGTERM/SIGINT.

import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

// Accounts: id (typed into the login form) → claims. Used by tests/accounts/test_oidc.py and the browser story.
export const ACCOUNTS = {
  // an authority's reviewer: org and role mapped by the tenant's rules, domain allowed
  reviewer: {
    email: 'pruefer.oidc@hessen-mobil.example', email_verified: true, name: 'Petra Prüfer',
    org: 'hessen-mobil', role: 'pruefer',
  },
  // a second reviewer of the same organisation
  colleague: {
    email: 'kollege.oidc@hessen-mobil.example', email_verified: true, name: 'Karl Kollege',
    org: 'hessen-mobil', role: 'pruefer',
  },
  // an organisation the tenant does not map
  stranger: {
    email: 'jemand@strassenamt-fremd.example', email_verified: true, name: 'Jana Fremd',
    org: 'strassenamt-fremd', role: 'pruefer',
  },
  // mapped organisation and role, but an e-mail domain outside allowed_domains
  foreign: {
    email: 'pruefer@gmail.example', email_verified: true, name: 'Fritz Fremddomain',
    org: 'hessen-mobil', role: 'pruefer',
  },
  // the address is not verified by the IdP
  unverified: {
    email: 'neu.oidc@hessen-mobil.example', email_verified: false, name: 'Nora Unbestätigt',
    org: 'hessen-mobil', role: 'pruefer',
  },
  // a role the tenant does not map
  chief: {
    email: 'chefin.oidc@hessen-mobil.example', email_verified: true, name: 'Clara Chefin',
    org: 'hessen-mobil', role: 'amtsleitung',
  },
};

const SCOPES = ['openid', 'email', 'profile', 'org', 'role'];

function options() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      issuer: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
    },
  });
  const env = process.env;
  const list = (value) => (value ? value.split(/\s+/).filter(Boolean) : []);
  const port = Number(values.port ?? env.OIDC_PORT);
  if (!Number.isInteger(port) || port <= 0) {
    throw new Error('--port (or OIDC_PORT) must be a port number');
  }
  const redirectUris = values['redirect-uri'] ?? list(env.OIDC_REDIRECT_URIS);
  if (redirectUris.length === 0) {
    throw new Error('give at least one --redirect-uri (or OIDC_REDIRECT_URIS)');
  }
  return {
    port,
    issuer: values.issuer ?? env.OIDC_ISSUER ?? `http://127.0.0.1:${port}`,
    clientId: values['client-id'] ?? env.OIDC_CLIENT_ID ?? 'breitband',
    clientSecret: values['client-secret'] ?? env.OIDC_CLIENT_SECRET ?? 'breitband-test-secret',
    redirectUris,
    postLogoutRedirectUris: values['post-logout-redirect-uri'] ?? list(env.OIDC_POST_LOGOUT_REDIRECT_URIS),
  };
}

function client(clientId, clientSecret, opts) {
  return {
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: opts.redirectUris,
    post_logout_redirect_uris: opts.postLogoutRedirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  };
}

async function findAccount(_ctx, id) {
  const claims = ACCOUNTS[id];
  if (!claims) {
    return undefined;
  }
  return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
}

// Grant every scope and claim the client asks for: no consent screen (first-party IdP).
async function loadExistingGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  if (grantId) {
    return ctx.oidc.provider.Grant.find(grantId);
  }
  const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
  grant.addOIDCScope(SCOPES.join(' '));
  await grant.save();
  return grant;
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `test-${Date.now().toString(36)}`, use: 'sig', alg: 'RS256' };
}

function configuration(opts) {
  return {
    clients: [client(opts.clientId, opts.clientSecret, opts), client('intruder', 'intruder-secret', opts)],
    jwks: { keys: [signingKey()] },
    cookies: { keys: [Math.random().toString(36).slice(2) + Date.now().toString(36)] },
    scopes: SCOPES,
    claims: {
      openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], org: ['org'], role: ['role'],
    },
    conformIdTokenClaims: false,
    pkce: { methods: ['S256'], required: () => true },
    findAccount,
    loadExistingGrant,
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    ttl: { Session: 3600, Interaction: 600, Grant: 3600, AuthorizationCode: 60, IdToken: 300, AccessToken: 300 },
  };
}

const opts = options();
const provider = new Provider(opts.issuer, configuration(opts));
provider.proxy = false;
// Errors of the provider itself go to its log (OpenIdProvider.log of tests/support/oidc.py).
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
const server = provider.listen(opts.port, '127.0.0.1', () => {
  console.log(`listening ${opts.issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
