/**
 * Fine-tune hyperparameters, the method and the grader of a create request. The hyperparameter schema is built from
 * contract/hyperparameters.json (types, ranges, choices, "auto" rules in the descriptions), the file the worker's
 * softgrpo.config reads too; every field accepts "auto" (the default). Rules across fields, the model's context and
 * "auto" resolution run at create (./resolve-job.ts), which stores and returns the resolved values.
 */
import { z } from '@hono/zod-openapi';
import { FIELDS, RULES, choices, describeAuto, describeField, type FieldSpec } from '../../contract/hyperparameters';
import { regexPattern } from '../common';

function valueSchema(spec: FieldSpec): z.ZodTypeAny {
  const options = choices(spec);
  let schema: z.ZodTypeAny;
  if (options) schema = z.enum(options as [string, ...string[]]);
  else {
    let n = z.number();
    if (spec.type === 'integer') n = n.int();
    if (spec.minimum !== undefined) n = n.min(spec.minimum);
    if (spec.exclusiveMinimum !== undefined) n = n.gt(spec.exclusiveMinimum);
    if (spec.maximum !== undefined) n = n.max(spec.maximum);
    if (spec.exclusiveMaximum !== undefined) n = n.lt(spec.exclusiveMaximum);
    schema = n;
  }
  return spec.nullable ? schema.nullable() : schema;
}

function field(spec: FieldSpec) {
  const range = describeField(spec);
  const description = `${spec.description} ${range[0].toUpperCase()}${range.slice(1)}. auto: ${describeAuto(spec)}.`;
  return z.union([z.literal('auto'), valueSchema(spec)]).default('auto').openapi({ description });
}

export const Hyperparameters = z
  .object(Object.fromEntries(Object.entries(FIELDS).map(([name, spec]) => [name, field(spec)])))
  .strict()
  .openapi('Hyperparameters', {
    description:
      'The rules of contract/hyperparameters.json, which the API and the worker share. "auto" takes the base model\'s ' +
      'recommended_hyperparameters[field], else the field\'s auto rule; it is resolved at create, and the job returns ' +
      'the resolved values. Checked at create (400 naming the field): ' +
      RULES.map((r) => `${r.param}: ${r.message.replace('{context_length}', 'its context_length')}`).join('; ') +
      '. An "auto" value over such a bound is lowered to it (batch_size 2 with mini_batch_size "auto" trains with ' +
      'mini_batch_size 2). Every prompt plus max_response_tokens must fit the model\'s context unless ' +
      'prompt_truncation is "left" (else 400 `prompt_too_long` naming the lines).',
  });

export type HyperparametersInput = z.infer<typeof Hyperparameters>;

export const Method = z
  .object({
    type: z.enum(['soft_grpo', 'grpo']).default('soft_grpo'),
    hyperparameters: Hyperparameters.default(Hyperparameters.parse({})),
  })
  .strict()
  .openapi('FineTuneMethod');

const scope = z
  .enum(['answer', 'response'])
  .default('answer')
  .openapi({
    description:
      'What is graded: "answer" = the text after </think> (default); "response" = the whole response, thinking ' +
      'included, as the SofT-GRPO reference reward does.',
  });

export const Grader = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('math'), scope }).strict(),
    z.object({ type: z.literal('exact'), scope }).strict(),
    z
      .object({
        type: z.literal('numeric'),
        scope,
        tolerance: z.number().min(0).max(1).default(1e-6).openapi({ description: 'Relative tolerance.' }),
      })
      .strict(),
    z
      .object({
        type: z.literal('regex'),
        scope,
        pattern: regexPattern('The answer text (or response, by scope) earns 1 when the pattern matches anywhere in it.'),
      })
      .strict(),
  ])
  .openapi('Grader', { description: 'How a rollout\'s final answer is scored against the line\'s "answer".' });
