// api: the shop's public API. GET /v1/checkout says whether checkout is enabled in this region, and
// which checkout: the one-page one where the flag new-checkout is on (for this user).
import { serve } from './lib/app.mjs';

serve({
  service: 'api',
  flags: { 'new-checkout': false },
  handle: (_req, url, _info, features) =>
    url.pathname === '/v1/checkout'
      ? { checkout: process.env.CHECKOUT_ENABLED === 'true', flow: features['new-checkout'] ? 'one-page' : 'classic' }
      : {},
});
