/**
 * The expressions of contract/hyperparameters.json ("auto" rules and rule bounds) and contract/resources.json (rule
 * bounds), evaluated exactly as gpu-worker/src/softgrpo/contract.py evaluates them:
 *   number | string | boolean | null      itself; an array is a literal list of strings
 *   {"var": name}                          a resolved field or a job input (null when unknown)
 *   {"min" | "max": [a, b, ...]}           null operands are ignored (null when none is left)
 *   {"mul" | "sub": [a, b]}                null when an operand is null
 *   {"ceil_div" | "floor_div": [a, b]}     integer division rounded up / down; null when an operand is null
 *   {"mod": [a, b]}                        a - b * floor(a / b) (the remainder, b's sign); null when an operand is null
 *   {"by_method": {method: expression}}    the expression of the job's method (null when it has none)
 */
export type Expression =
  | number
  | string
  | boolean
  | null
  | { var: string }
  | { min: Expression[] }
  | { max: Expression[] }
  | { mul: Expression[] }
  | { sub: Expression[] }
  | { ceil_div: Expression[] }
  | { floor_div: Expression[] }
  | { mod: Expression[] }
  | { by_method: Record<string, Expression> };

export type Value = number | string | boolean | null | string[];
export type Env = Readonly<Record<string, unknown>>;

const op = (e: object) => Object.keys(e)[0];

function numbers(args: Expression[], env: Env): (number | null)[] {
  return args.map((a) => {
    const v = evaluate(a, env);
    if (v !== null && typeof v !== 'number') throw new Error(`contract expression: ${JSON.stringify(a)} is not a number`);
    return v;
  });
}

export function evaluate(e: Expression, env: Env): Value {
  if (e === null || typeof e !== 'object') return e;
  if (Array.isArray(e)) return e as string[];
  const name = op(e);
  const args = (e as Record<string, unknown>)[name];
  switch (name) {
    case 'var':
      return (env[args as string] ?? null) as Value;
    case 'by_method': {
      const branch = (args as Record<string, Expression>)[String(env.method)];
      return branch === undefined ? null : evaluate(branch, env);
    }
    case 'min':
    case 'max': {
      const xs = numbers(args as Expression[], env).filter((x): x is number => x !== null);
      return xs.length === 0 ? null : name === 'min' ? Math.min(...xs) : Math.max(...xs);
    }
    case 'mul':
    case 'sub':
    case 'ceil_div':
    case 'floor_div':
    case 'mod': {
      const [a, b] = numbers(args as Expression[], env);
      if (a === null || b === null) return null;
      if (name === 'mul') return a * b;
      if (name === 'sub') return a - b;
      if (name === 'mod') return a - b * Math.floor(a / b);
      return name === 'ceil_div' ? Math.ceil(a / b) : Math.floor(a / b);
    }
    default:
      throw new Error(`contract expression: unknown operator ${JSON.stringify(name)}`);
  }
}

/** The names an expression reads with {"var"}. */
export function variables(e: Expression): string[] {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return [];
  const name = op(e);
  const args = (e as Record<string, unknown>)[name];
  if (name === 'var') return [args as string];
  const parts = name === 'by_method' ? Object.values(args as Record<string, Expression>) : (args as Expression[]);
  return parts.flatMap(variables);
}

/** Readable text of an expression, for descriptions: `ceil(train_size / batch_size)`. */
export function describe(e: Expression): string {
  if (e === null) return 'null';
  if (typeof e === 'string') return JSON.stringify(e);
  if (typeof e !== 'object') return String(e);
  if (Array.isArray(e)) return JSON.stringify(e);
  const name = op(e);
  const args = (e as Record<string, unknown>)[name];
  if (name === 'var') return args as string;
  if (name === 'by_method')
    return Object.entries(args as Record<string, Expression>)
      .map(([m, x]) => `${describe(x)} for method ${m}`)
      .join(', ');
  const [a, b] = (args as Expression[]).map(describe);
  if (name === 'mul') return `${a} * ${b}`;
  if (name === 'sub') return `${a} - ${b}`;
  if (name === 'ceil_div') return `ceil(${a} / ${b})`;
  if (name === 'floor_div') return `${a} // ${b}`;
  if (name === 'mod') return `${a} mod ${b}`;
  return `${name}(${(args as Expression[]).map(describe).join(', ')})`;
}
