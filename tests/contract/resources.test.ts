/**
 * contract/resources.json against the shared case file tests/vectors/resource-cases.json, which
 * gpu-worker/tests/test_contract_cases.py runs through softgrpo.distributed.check_devices too: the API's check at
 * create (src/contract/resources.ts, through checkJobResources of src/routes/finetune/resolve-job.ts) gives each case
 * the same verdict (the rule broken, the same message), and the zod schema of POST /v1/finetune, built from the same
 * file, rejects exactly the cases whose problem is the range.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resolveHyperparameters } from '../../src/contract/hyperparameters';
import { DEVICES, RESOURCE_RULES, devicesProblem } from '../../src/contract/resources';
import { ApiError } from '../../src/errors';
import { checkJobResources } from '../../src/routes/finetune/resolve-job';
import { Resources } from '../../src/routes/finetune/schemas';

interface Case {
  name: string;
  devices: number;
  train_size?: number;
  hyperparameters: Record<string, unknown>;
  accepted?: true;
  error?: { rule: string; message?: string };
}
const file = JSON.parse(readFileSync(new URL('../vectors/resource-cases.json', import.meta.url), 'utf8')) as { cases: Case[] };

const resolved = (c: Case) =>
  resolveHyperparameters(c.hyperparameters, { method: 'soft_grpo', trainSize: c.train_size ?? 10, contextLength: null });

describe('resource cases', () => {
  it.each(file.cases.map((c) => [c.name, c] as const))('%s', (_, c) => {
    const hp = resolved(c);
    const problem = devicesProblem(c.devices, hp);
    const schema = Resources.safeParse({ devices: c.devices });
    if (c.accepted) {
      expect(problem).toBeNull();
      expect(schema.success).toBe(true);
      expect(() => checkJobResources(c.devices, hp)).not.toThrow();
      return;
    }
    expect(problem?.rule).toBe(c.error!.rule);
    if (c.error!.message !== undefined) expect(problem!.detail).toBe(c.error!.message);
    // the range is the zod schema's (400 invalid_value at the body); every other rule is checkJobResources' 400
    expect(schema.success).toBe(c.error!.rule !== 'range');
    if (c.error!.rule === 'range') return;
    let error: unknown;
    try {
      checkJobResources(c.devices, hp);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ApiError);
    const api = error as ApiError;
    expect(api.status).toBe(400);
    expect(api.opts).toMatchObject({ param: 'resources.devices', code: 'invalid_resources' });
    expect(api.message).toBe(`resources.devices: ${problem!.detail}`);
  });

  it('every_rule_has_a_rejected_and_an_accepted_case', () => {
    const rules = new Set(file.cases.flatMap((c) => (c.error ? [c.error.rule] : [])));
    expect([...rules].sort()).toEqual([...RESOURCE_RULES.map((r) => r.name), 'range'].sort());
    expect(file.cases.filter((c) => c.accepted && c.devices > 1).length).toBeGreaterThanOrEqual(RESOURCE_RULES.length);
  });

  it('the_schema_takes_its_range_and_default_from_the_contract', () => {
    expect(Resources.parse({})).toEqual({ devices: DEVICES.default });
    expect(Resources.safeParse({ devices: DEVICES.maximum }).success).toBe(true);
    expect(Resources.safeParse({ devices: DEVICES.maximum + 1 }).success).toBe(false);
    expect(Resources.safeParse({ devices: DEVICES.minimum - 1 }).success).toBe(false);
  });
});
