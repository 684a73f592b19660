// catalog: products and prices. GET /v1/products lists a fixed demo catalogue in the region's currency.
import { serve } from './lib/app.mjs';

const PRODUCTS = [
  { sku: 'mug-01', name: 'Meridian mug', price: 12 },
  { sku: 'tee-02', name: 'Failover T-shirt', price: 24 },
];

serve({
  service: 'catalog',
  handle: (_req, url) => (url.pathname === '/v1/products' ? { currency: process.env.PRICE_CURRENCY ?? 'USD', products: PRODUCTS } : {}),
});
