// web: the storefront. Answers every path with where it was served from, and the flags it reads.
import { serve } from './lib/app.mjs';

serve({
  service: 'web',
  flags: { 'new-checkout': false, recommendations: true }, // the defaults, until OFREP first answers
  handle: () => ({ currency: process.env.DEFAULT_CURRENCY ?? 'USD', checkout: process.env.CHECKOUT_TIMEOUT ?? '5s' }),
});
