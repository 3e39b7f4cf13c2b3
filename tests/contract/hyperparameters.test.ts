/**
 * contract/hyperparameters.json against the shared case file tests/vectors/hyperparameter-cases.json, which
 * gpu-worker/tests/test_contract_cases.py runs through softgrpo.config too: the resolver (src/contract/
 * hyperparameters.ts) gives each case the same param and code, and the zod schema of POST /v1/finetune, built from
 * the same file, rejects exactly the cases whose problem is one field's value.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FIELD_NAMES, HyperparameterError, RESOLUTION_ORDER, resolveHyperparameters } from '../../src/contract/hyperparameters';
import { Hyperparameters } from '../../src/routes/finetune/hyperparameters';

interface Case {
  name: string;
  method?: string;
  train_size?: number;
  context_length?: number | null;
  manifest?: string | null;
  hyperparameters: Record<string, unknown>;
  resolved?: Record<string, unknown>;
  error?: { param: string; code: string; source?: string };
}
const file = JSON.parse(readFileSync(new URL('../vectors/hyperparameter-cases.json', import.meta.url), 'utf8')) as {
  manifests: Record<string, Record<string, unknown>>;
  cases: Case[];
};

const resolve = (c: Case, hyperparameters: unknown) =>
  resolveHyperparameters(hyperparameters, {
    method: c.method ?? 'soft_grpo',
    trainSize: c.train_size ?? 10,
    contextLength: c.context_length ?? null,
    manifest: c.manifest ? file.manifests[c.manifest] : null,
  });

const ONE_FIELD_CODES = ['invalid_type', 'out_of_range', 'unknown_hyperparameter'];

describe('hyperparameter cases', () => {
  it.each(file.cases.map((c) => [c.name, c] as const))('%s', (_, c) => {
    if (c.error) {
      let error: unknown;
      try {
        resolve(c, c.hyperparameters);
      } catch (e) {
        error = e;
      }
      expect(error, 'resolves, but the case expects an error').toBeInstanceOf(HyperparameterError);
      const e = error as HyperparameterError;
      expect({ param: e.param, code: e.code, source: e.source }, e.message).toEqual({ source: 'request', ...c.error });
    } else {
      const resolved = resolve(c, c.hyperparameters);
      expect(Object.fromEntries(Object.keys(c.resolved!).map((k) => [k, resolved[k]]))).toEqual(c.resolved);
      // The stored set, sent again (as the worker receives it), is accepted and resolves to itself.
      expect(resolve(c, resolved)).toEqual(resolved);
      expect(Hyperparameters.safeParse(resolved).success).toBe(true);
    }
    // The request schema checks each field's value alone: rules across fields and the manifest wait for create.
    const parsed = Hyperparameters.safeParse(c.hyperparameters);
    const oneField = c.error && (c.error.source ?? 'request') === 'request' && ONE_FIELD_CODES.includes(c.error.code);
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(!oneField);
    if (oneField) {
      const issue = parsed.error!.issues[0];
      const named = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path;
      expect(named).toEqual([c.error!.param]);
    }
  });

  it('resolves_every_field_after_the_fields_its_auto_rule_reads', () => {
    expect([...RESOLUTION_ORDER].sort()).toEqual([...FIELD_NAMES].sort());
    expect(RESOLUTION_ORDER.indexOf('batch_size')).toBeLessThan(RESOLUTION_ORDER.indexOf('n_steps'));
    expect(RESOLUTION_ORDER.indexOf('n_steps')).toBeLessThan(RESOLUTION_ORDER.indexOf('eval_interval'));
    expect(RESOLUTION_ORDER.indexOf('max_response_tokens')).toBeLessThan(RESOLUTION_ORDER.indexOf('max_thinking_tokens'));
  });

  it('the_all_auto_case_lists_every_field', () => {
    expect(Object.keys(file.cases[0].resolved!).sort()).toEqual([...FIELD_NAMES].sort());
  });
});
