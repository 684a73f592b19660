/** The literal-secret detector: what it must find, what it must leave alone, and that it masks. */
import { describe, expect, it } from 'vitest';
import { looksLikeSecret, maskSecret, shannonEntropy } from '../src/secrets/secret-scan.js';

describe('looksLikeSecret', () => {
  it.each([
    ['DB_PASSWORD', 'hunter2-prod', /key name/],
    ['api_key', 'abcd1234efgh', /key name/],
    ['CLIENT_SECRET', 'not-so-secret', /key name/],
    ['GITHUB', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789', /GitHub token/],
    ['X', 'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz', /GitHub fine-grained/],
    ['AWS_ACCESS_KEY_ID', 'AKIAQ3EGRTYM4XNPZ7UJ', /AWS access key/],
    ['SLACK', 'xoxb-123456789012-abcdefghij', /Slack/],
    ['KEY_PEM', '-----BEGIN RSA PRIVATE KEY-----\nMIIE...', /private key/],
    ['KEY_PEM2', '-----BEGIN PRIVATE KEY-----', /private key/],
    ['SESSION', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', /JSON Web Token/],
    ['STRIPE', 'sk_live_4eC39HqLyjWDarjtT1zdp7dc', /Stripe/],
    ['DATABASE_URL', 'postgres://shop:Pr0dPassw0rd@db.internal:5432/shop', /connection string/],
    ['AMQP', 'amqp://guest:guest@rabbit:5672/', /connection string/],
    ['WEBHOOK_SALT', 'q8Zr2VxL0pTn4WbY7sKe9HcJ', /random-looking/],
  ])('finds %s', (key, value, why) => {
    expect(looksLikeSecret(key, value)?.reason).toMatch(why);
  });

  it.each([
    ['LOG_LEVEL', 'info'],
    ['API_URL', 'http://api.internal:9090/v1'],
    ['DATABASE_URL', 'postgres://shop@db.internal:5432/shop'],
    ['DATABASE_URL', 'postgres://shop:${DB_PASSWORD}@db.internal/shop'],
    ['HOST', 'checkout-api.eu-west-1.internal.shop.example'],
    ['IMAGE', 'ghcr.io/acme/web:2.4.0@sha256:1111111111111111111111111111111111111111111111111111111111111111'],
    ['DIGEST', 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'],
    ['REQUEST_ID', '123e4567-e89b-42d3-a456-426614174000'],
    ['TOKEN_TTL', '30m'],
    ['PASSWORD_MIN_LENGTH', '12'],
    ['PASSWORD_FILE', '/run/secrets/db-password'],
    ['SECRET_NAME', 'web-db-credentials'],
    ['AUTH_HEADER', 'x-api-key'],
    ['TOKEN_ENABLED', 'true'],
    ['DB_PASSWORD', '${region.params.db_password_ref}'],
    ['DB_PASSWORD', 'vault:kv/web/db#password'],
    ['GIT_COMMIT', '3f786850e387550fdab836ed7e6dc881de23001b'],
    ['CONFIG_PATH', 'config/production/eu-west-1/settings.yaml'],
    ['GREETING', 'Welcome to the Shop, have a nice day!'],
    ['TIMEOUT', '250ms'],
    ['RATIO', '12.5%'],
    ['SERVICE_ACCOUNT', 'checkout-prod'],
  ])('leaves %s=%s alone', (key, value) => {
    expect(looksLikeSecret(key, value)).toBeUndefined();
  });

  it('entropy is in bits per character', () => {
    expect(shannonEntropy('aaaa')).toBe(0);
    expect(shannonEntropy('abcd')).toBe(2);
  });

  it('masks a value to its first two characters and length', () => {
    expect(maskSecret('hunter2-prod')).toBe('"hu"… (12 chars)');
  });
});

describe('names that are not secrets', () => {
  it('does not flag lowercase slugs such as Kubernetes contexts, however long', () => {
    for (const v of ['prod-latam-buenosaires-102', 'gke_acme-prod_europe-west1_shop-eu', 'eks-us-east-1-shop-prod-cluster']) {
      expect(looksLikeSecret('context', v)).toBeUndefined();
    }
    expect(looksLikeSecret('context', 'q8Zr-7mVt-Kx2p-Wn4d-Lh9s')).toBeDefined();
  });
});
