/**
 * The resources of a fine-tuning job as contract/resources.json states them: the range of `resources.devices` and
 * the rules a job on more than one device meets on its resolved hyperparameters. The worker applies the same file
 * (gpu-worker/src/softgrpo/distributed.py `check_devices`, before a claimed job launches and on the world size in
 * training), and tests/vectors/resource-cases.json holds both to one verdict (the rule broken) per case.
 */
import contract from '../../contract/resources.json';
import { evaluate, type Env, type Expression, type Value } from './expression';

export interface ResourceRule {
  name: string;
  when?: Expression;
  divides?: Expression;
  at_most?: Expression;
  message: string;
}

export const DEVICES = contract.devices as { type: 'integer'; minimum: number; maximum: number; default: number; description: string };
export const DEVICES_PARAM = contract.param as 'resources.devices';
export const RESOURCES_CODE = contract.code as 'invalid_resources';
export const RESOURCE_RULES = contract.rules as ResourceRule[];

export interface ResourceProblem {
  /** The rule broken: "range" or a rule's name. */
  rule: string;
  /** The sentence after `resources.devices: `, naming the hyperparameters involved. */
  detail: string;
}

const fill = (message: string, env: Env) => message.replace(/\{(\w+)\}/g, (_, k: string) => String(env[k]));

/**
 * Why a job cannot run on `devices` devices with these resolved hyperparameters (contract/resources.json "checks":
 * the range, then the rules in order, the first broken one), or null.
 */
export function devicesProblem(devices: unknown, hyperparameters: Readonly<Record<string, Value>>): ResourceProblem | null {
  if (typeof devices !== 'number' || !Number.isInteger(devices) || devices < DEVICES.minimum || devices > DEVICES.maximum)
    return { rule: 'range', detail: `must be an integer in [${DEVICES.minimum}, ${DEVICES.maximum}], got ${String(devices)}` };
  const env: Record<string, unknown> = { ...hyperparameters, devices };
  for (const rule of RESOURCE_RULES) {
    if (rule.when !== undefined && !evaluate(rule.when, env)) continue;
    const expression = rule.divides ?? rule.at_most;
    if (expression === undefined) throw new Error(`contract/resources.json rule ${rule.name}: neither "divides" nor "at_most"`);
    const bound = evaluate(expression, env);
    if (typeof bound !== 'number') throw new Error(`contract/resources.json rule ${rule.name}: the bound is not a number`);
    const broken = rule.divides !== undefined ? bound % devices !== 0 : devices > bound;
    if (broken) return { rule: rule.name, detail: fill(rule.message, { ...env, bound }) };
  }
  return null;
}
