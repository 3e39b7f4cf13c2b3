/** sdk/typescript/schema.d.ts is what `npm run sdk:generate` makes from the committed openapi/openapi.json. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';
import { expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

it('sdk/typescript/schema.d.ts is generated from the current openapi/openapi.json (else: npm run sdk:generate)', async () => {
  const generated = astToString(await openapiTS(pathToFileURL(resolve(ROOT, 'openapi/openapi.json')), { defaultNonNullable: false }));
  const committed = readFileSync(resolve(ROOT, 'sdk/typescript/schema.d.ts'), 'utf8');
  // The CLI adds a "do not edit" banner above the generated declarations.
  const body = committed.slice(committed.indexOf('export interface paths'));
  expect(body === generated, 'schema.d.ts is stale: run `npm run sdk:generate`').toBe(true);
});
