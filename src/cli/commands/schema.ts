/** `meridian schema`: prints the fleet description's JSON Schema (for editors and CI). */
import type { Command } from 'commander';
import { fleetJsonSchema } from '../../spec/schema.js';
import { type Io, write, type Result } from '../io.js';

/** The JSON Schema as committed in schema/fleet.schema.json. */
export function schemaText(): string {
  return `${JSON.stringify(fleetJsonSchema(), null, 2)}\n`;
}

export function registerSchema(program: Command, io: Io, _result: Result): void {
  program
    .command('schema')
    .description('print the JSON Schema of the fleet description')
    .action(async () => {
      await write(io.out, schemaText());
    });
}
