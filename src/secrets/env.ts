/** `env:NAME`: an environment variable where the driver runs. Present when set and not empty. */
import type { SecretLookup } from './presence.js';

export class EnvSecretStore {
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  has(name: string): SecretLookup {
    const v = this.env[name];
    return v !== undefined && v !== '' ? 'present' : 'missing';
  }
}
