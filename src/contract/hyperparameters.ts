/**
 * Fine-tuning hyperparameters as contract/hyperparameters.json states them: per-field checks, "auto" resolution
 * and the cross-field rules. gpu-worker/src/softgrpo/config.py implements the same reading of the same file, and
 * tests/vectors/hyperparameter-cases.json holds both to one verdict (param and code) per case.
 *
 * The API resolves every "auto" at create (`resolveHyperparameters`) and stores the resolved set, so the worker,
 * which checks the stored set again with the same rules, never meets a job it cannot run.
 */
import contract from '../../contract/hyperparameters.json';
import { describe, evaluate, variables, type Env, type Expression, type Value } from './expression';

export interface FieldSpec {
  type: 'integer' | 'number' | 'string';
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  nullable?: boolean;
  enum?: string[];
  enum_from?: 'losses';
  auto: Expression;
  description: string;
}

export interface Rule {
  param: string;
  when?: Expression;
  at_most?: Expression;
  greater_than?: Expression;
  one_of?: Expression;
  on_auto?: 'clamp' | 'skip_manifest';
  message: string;
}

export type HyperparameterCode = keyof typeof contract.codes;
export const LOSSES = contract.losses as Record<string, { rollout: string; description: string }>;
export const METHODS = contract.methods as Record<string, { rollouts: string[]; description: string }>;
export const FIELDS = contract.fields as unknown as Record<string, FieldSpec>;
export const FIELD_NAMES = Object.keys(FIELDS);
export const RULES = contract.rules as Rule[];

/** The choices of a string field. */
export const choices = (spec: FieldSpec): string[] | undefined =>
  spec.enum_from === 'losses' ? Object.keys(LOSSES) : spec.enum;

/** `an integer in [2, 64]`, `a number in (0, 1)`, `one of "none", "left"`, `... or null`. */
export function describeField(spec: FieldSpec): string {
  let text: string;
  const options = choices(spec);
  if (options) text = `one of ${options.map((o) => JSON.stringify(o)).join(', ')}`;
  else {
    const lo = spec.exclusiveMinimum ?? spec.minimum;
    const hi = spec.exclusiveMaximum ?? spec.maximum;
    const open = spec.exclusiveMinimum !== undefined ? '(' : '[';
    const close = spec.exclusiveMaximum !== undefined ? ')' : ']';
    text = `${spec.type === 'integer' ? 'an integer' : 'a number'} in ${open}${lo ?? '-inf'}, ${hi ?? 'inf'}${close}`;
  }
  return spec.nullable ? `${text}, or null` : text;
}

/** The "auto" rule in words, for descriptions. */
export const describeAuto = (spec: FieldSpec) => describe(spec.auto);

export class HyperparameterError extends Error {
  constructor(
    /** The field (or `hyperparameters` for a body that is not an object). */
    readonly param: string,
    readonly code: HyperparameterCode,
    /** The sentence after the field name. */
    readonly detail: string,
    /** Where the value came from: the request, or the base model's manifest recommendation. */
    readonly source: 'request' | 'manifest' = 'request',
  ) {
    super(`${source === 'manifest' ? 'manifest.recommended_hyperparameters' : 'hyperparameters'}.${param} ${detail}`);
  }
}

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));

/** Why `value` (not "auto") is not a valid `name`, or null. */
export function fieldProblem(name: string, value: unknown): { code: HyperparameterCode; detail: string } | null {
  const spec = FIELDS[name];
  if (!spec) return { code: 'unknown_hyperparameter', detail: `is not a known hyperparameter (known: ${FIELD_NAMES.join(', ')})` };
  const must = `must be ${describeField(spec)} or "auto"`;
  if (value === null) return spec.nullable ? null : { code: 'invalid_type', detail: `${must}, got null` };
  if (spec.type === 'string') {
    if (typeof value !== 'string') return { code: 'invalid_type', detail: `${must}, got ${show(value)}` };
    return choices(spec)!.includes(value) ? null : { code: 'out_of_range', detail: `${must}, got ${show(value)}` };
  }
  const isNumber = typeof value === 'number' && Number.isFinite(value);
  if (!isNumber || (spec.type === 'integer' && !Number.isInteger(value)))
    return { code: 'invalid_type', detail: `${must}, got ${show(value)}` };
  const inRange =
    (spec.minimum === undefined || value >= spec.minimum) &&
    (spec.exclusiveMinimum === undefined || value > spec.exclusiveMinimum) &&
    (spec.maximum === undefined || value <= spec.maximum) &&
    (spec.exclusiveMaximum === undefined || value < spec.exclusiveMaximum);
  return inRange ? null : { code: 'out_of_range', detail: `${must}, got ${show(value)}` };
}

/** Fields in resolution order: each after every field its "auto" expression reads (ties: contract order). */
export const RESOLUTION_ORDER: readonly string[] = (() => {
  const order: string[] = [];
  const pending = [...FIELD_NAMES];
  while (pending.length) {
    const i = pending.findIndex((f) =>
      variables(FIELDS[f].auto).every((v) => !(v in FIELDS) || order.includes(v)),
    );
    if (i < 0) throw new Error(`contract/hyperparameters.json: "auto" rules read each other in a cycle: ${pending.join(', ')}`);
    order.push(pending.splice(i, 1)[0]);
  }
  return order;
})();

export interface ResolveInputs {
  method: string;
  /** Examples in the training file. */
  trainSize: number;
  /** The base model's context length; null: the rules that read it are skipped. */
  contextLength: number | null;
  /** The base model's manifest.json (its `recommended_hyperparameters` come before the "auto" expressions). */
  manifest?: Record<string, unknown> | null;
}

function ruleBroken(rule: Rule, value: unknown, env: Env): { bound: Value } | null {
  if (rule.when !== undefined && !evaluate(rule.when, env)) return null;
  if (rule.at_most !== undefined) {
    const bound = evaluate(rule.at_most, env);
    return bound !== null && (value as number) > (bound as number) ? { bound } : null;
  }
  if (rule.greater_than !== undefined) {
    const bound = evaluate(rule.greater_than, env);
    return bound !== null && !((value as number) > (bound as number)) ? { bound } : null;
  }
  if (rule.one_of !== undefined) {
    const bound = evaluate(rule.one_of, env);
    return bound !== null && !(bound as string[]).includes(value as string) ? { bound } : null;
  }
  return null;
}

const ruleDetail = (rule: Rule, value: unknown, env: Env) =>
  `${rule.message.replace(/\{(\w+)\}/g, (_, k: string) => String(env[k]))}, got ${show(value)}`;

/**
 * Every field resolved and checked (contract/hyperparameters.json "resolution"). `raw`: {field: value | "auto"},
 * missing fields are "auto". Throws `HyperparameterError` naming the field.
 */
export function resolveHyperparameters(raw: unknown, inputs: ResolveInputs): Record<string, Value> {
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw)))
    throw new HyperparameterError('hyperparameters', 'invalid_type', 'must be an object of {field: value | "auto"}');
  const given = (raw ?? {}) as Record<string, unknown>;
  const unknown = Object.keys(given).filter((k) => !(k in FIELDS)).sort();
  if (unknown.length) throw new HyperparameterError(unknown[0], 'unknown_hyperparameter', fieldProblem(unknown[0], 0)!.detail);
  if (!(inputs.method in METHODS)) throw new Error(`unknown method ${inputs.method}`);
  const recommended = (inputs.manifest?.recommended_hyperparameters ?? {}) as Record<string, unknown>;
  // The inputs and, as they resolve, the fields: what expressions read.
  const scope: Record<string, unknown> = { train_size: inputs.trainSize, context_length: inputs.contextLength, method: inputs.method };
  const explicit = new Set<string>();

  for (const name of RESOLUTION_ORDER) {
    const value = given[name] === undefined ? 'auto' : given[name];
    if (value !== 'auto') {
      const problem = fieldProblem(name, value);
      if (problem) throw new HyperparameterError(name, problem.code, problem.detail);
      scope[name] = value;
      explicit.add(name);
      continue;
    }
    const rec = recommended[name];
    if (rec !== undefined && rec !== 'auto') {
      const problem = fieldProblem(name, rec);
      if (problem) throw new HyperparameterError(name, problem.code, problem.detail, 'manifest');
      const skip = RULES.some((r) => r.param === name && r.on_auto === 'skip_manifest' && ruleBroken(r, rec, scope));
      if (!skip) {
        scope[name] = rec;
        continue;
      }
    }
    const derived = evaluate(FIELDS[name].auto, scope);
    const problem = fieldProblem(name, derived);
    if (problem) throw new HyperparameterError(name, problem.code, `${problem.detail} (auto: ${describeAuto(FIELDS[name])})`);
    scope[name] = derived;
  }

  for (const rule of RULES) {
    const broken = ruleBroken(rule, scope[rule.param], scope);
    if (!broken) continue;
    const clamp = !explicit.has(rule.param) && rule.on_auto === 'clamp' && rule.at_most !== undefined;
    if (!clamp || fieldProblem(rule.param, broken.bound))
      throw new HyperparameterError(rule.param, 'invalid_combination', ruleDetail(rule, scope[rule.param], scope));
    scope[rule.param] = broken.bound;
  }
  return Object.fromEntries(FIELD_NAMES.map((f) => [f, scope[f] as Value]));
}
