// An OpenID Connect provider for the tests: npm oidc-provider 9 (the certified
// reference implementation) with its built-in login and consent pages
// (devInteractions), which accept any login name and ignore the password.
//
// Usage: node oidc_provider.mjs PORT CLIENT_ID CLIENT_SECRET
//
// One client, a native one, so that its loopback redirect URI matches on any
// port (RFC 8252 section 7.3): the tests' Canopy listens on ephemeral ports.
// The accounts are made up from the login name, so that a test picks the
// person by what it types:
//   NAME                  -> NAME@example.org, verified, named "Name Tester"
//   unverified-NAME       -> NAME@example.org, NOT verified
//   brief-NAME            -> like NAME, but its ID token lives 1 second
//   noemail-NAME          -> no e-mail address at all
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

// A signing key of its own at every start: a restart rotates the provider's
// keys, as real providers do, and a client must fetch them again.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

function claimsOf(id) {
  let name = id;
  let verified = true;
  let email = true;
  for (const prefix of ['unverified-', 'brief-', 'noemail-']) {
    if (name.startsWith(prefix)) {
      name = name.slice(prefix.length);
      if (prefix === 'unverified-') verified = false;
      if (prefix === 'noemail-') email = false;
    }
  }
  const given = name.charAt(0).toUpperCase() + name.slice(1);
  // `oid`: an object id as Microsoft Entra ID gives one, the same for every client
  const claims = { sub: id, preferred_username: name, given_name: given, family_name: 'Tester', oid: `oid-${name}` };
  if (email) {
    claims.email = `${name}@example.org`;
    claims.email_verified = verified;
  }
  return claims;
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/auth/oidc/callback'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return claimsOf(id); } };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
        profile: ['preferred_username', 'given_name', 'family_name', 'oid'],
  },
  // the claims the scopes ask for go into the ID token too
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  ttl: {
    IdToken(ctx, token) {
      return String(token?.available?.sub || '').startsWith('brief-') ? 1 : 3600;
    },
  },
  cookies: { keys: ['canopy-test-oidc-cookie-key'] },
  jwks: { keys: [signingKey] },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
