// api: the shop's public API. GET /v1/checkout says whether checkout is enabled in this region.
import { serve } from './lib/app.mjs';

serve({
  service: 'api',
  handle: (_req, url) => (url.pathname === '/v1/checkout' ? { checkout: process.env.CHECKOUT_ENABLED === 'true' } : {}),
});
