/**
 * Golden files (test/golden/): a rendered text is compared with the file it is expected to equal; with
 * UPDATE_GOLDEN=1 the file is rewritten first, and the change is reviewed like code.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { expect } from 'vitest';

/** Expects `text` to equal the golden file `file` (rewritten first when UPDATE_GOLDEN is set). */
export function expectGolden(file: string, text: string): void {
  if (process.env['UPDATE_GOLDEN']) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  expect(text, file).toBe(readFileSync(file, 'utf8'));
}
