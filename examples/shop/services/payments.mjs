// payments: takes payments. Never talks to a real provider: POST /v1/charges answers a fake charge id.
import { randomUUID } from 'node:crypto';
import { serve } from './lib/app.mjs';

serve({
  service: 'payments',
  handle: (req, url) =>
    req.method === 'POST' && url.pathname === '/v1/charges'
      ? { charge: `ch_${randomUUID()}`, sandbox: process.env.PSP_SANDBOX === 'true' }
      : {},
});
