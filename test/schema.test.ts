import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { schemaText } from '../src/cli/commands/schema.js';

describe('the JSON Schema', () => {
  it('committed in schema/fleet.schema.json is the one the code generates (run `npm run schema` after a schema change)', () => {
    const committed = readFileSync(join(import.meta.dirname, '..', 'schema', 'fleet.schema.json'), 'utf8');
    expect(committed).toBe(schemaText());
  });

  it('forbids unknown keys and names every top-level section', () => {
    const schema = JSON.parse(schemaText()) as { additionalProperties: boolean; properties: Record<string, unknown>; required: string[] };
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual([
      'apiVersion',
      'fleet',
      'regions',
      'clusters',
      'services',
      'routing',
      'rollout',
      'flags',
      'policies',
      'recovery',
    ]);
    expect(schema.required).toEqual(['apiVersion', 'fleet']);
  });
});
