// A real OpenID Connect provider (the `oidc-provider` package) for Hearth's GetJWT tests.
// Listens on 127.0.0.1 on a free port and prints one line `{"issuer": "http://127.0.0.1:PORT"}`.
// Clients: `hearth` (a resource server: it may introspect any token) and `other-app`.
// Test-only side door: GET /__mint?sub=S&client=C&ttl=SECONDS returns a fresh access token
// for S issued to C (what a front end holds after signing S in), through the provider's own
// Grant and AccessToken models, so userinfo and introspection treat it as real.
import http from 'node:http';
import Provider from 'oidc-provider';

const server = http.createServer();
server.listen(0, '127.0.0.1', async () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      { client_id: 'hearth', client_secret: 'hearth-secret', redirect_uris: [], response_types: [], grant_types: [] },
      { client_id: 'other-app', client_secret: 'other-secret', redirect_uris: ['http://127.0.0.1/cb'] },
    ],
    features: {
      introspection: { enabled: true }, revocation: { enabled: true }, devInteractions: { enabled: false },
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    findAccount: async (ctx, sub) => ({
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.org`, email_verified: true, name: `User ${sub}` };
      },
    }),
  });
  provider.on('server_error', (ctx, err) => console.error('provider error', err));
  const app = provider.callback();
  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    if (url.pathname !== '/__mint') return app(req, res);
    try {
      const sub = url.searchParams.get('sub');
      const client = await provider.Client.find(url.searchParams.get('client') || 'other-app');
      const grant = new provider.Grant({ accountId: sub, clientId: client.clientId });
      grant.addOIDCScope('openid email profile');
      const grantId = await grant.save();
      const token = new provider.AccessToken({
        accountId: sub, client, grantId, scope: 'openid email profile', gty: 'authorization_code',
      });
      const ttl = Number(url.searchParams.get('ttl') || '600');
      token.expiresIn = ttl;
      res.end(await token.save());
    } catch (e) {
      res.statusCode = 500;
      res.end(String(e));
    }
  });
  console.log(JSON.stringify({ issuer }));
});
