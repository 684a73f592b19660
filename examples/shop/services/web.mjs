// web: the storefront. Answers every path with where it was served from.
import { serve } from './lib/app.mjs';

serve({
  service: 'web',
  handle: () => ({ currency: process.env.DEFAULT_CURRENCY ?? 'USD', checkout: process.env.CHECKOUT_TIMEOUT ?? '5s' }),
});
