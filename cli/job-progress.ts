/**
 * `finetune create --follow`: follows the job's event stream until it ends, showing a progress bar (cli-progress)
 * with the step, the mean reward of the latest step and the ETA. On a terminal the bar redraws in place; elsewhere
 * (a log, a pipe) each step is one plain line. Returns the job as it ended.
 */
import { SingleBar } from 'cli-progress';
import type { FineTuningJob, FineTuningJobEvent, SoftReason } from '../sdk/typescript';

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

const reward = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : '-');

/** Seconds as "1h02m", "4m05s" or "12s". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/**
 * The time left at the pace since following began: unknown ("-") before the first step seen or without a total.
 * (cli-progress's own {eta} counts from the bar's start and reads "NF" before any progress.)
 */
export function eta(startedMs: number, nowMs: number, firstStep: number, step: number, total: number): string {
  if (!total || step <= firstStep) return step >= total && total ? '0s' : '-';
  return duration((((nowMs - startedMs) / 1000) * (total - step)) / (step - firstStep));
}

/** The total steps of a created job: its resolved n_steps (an integer once the API resolved "auto"). */
export function totalSteps(job: FineTuningJob): number | null {
  const n = (job.method.hyperparameters as Record<string, unknown> | undefined)?.n_steps;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : null;
}

export async function followJobProgress(api: SoftReason, job: FineTuningJob, stream: ProgressStream): Promise<FineTuningJob> {
  const total = totalSteps(job) ?? 0;
  const tty = stream.isTTY === true;
  const bar = new SingleBar({
    stream: stream as NodeJS.WritableStream,
    format: 'step {value}/{total} |{bar}| reward {reward} | {status} | ETA {left}',
    barCompleteChar: '\u2588',
    barIncompleteChar: '\u2591',
    hideCursor: false, // nothing to restore when Ctrl-C ends the process (which stops following, not the job)
    clearOnComplete: false,
  });
  let status = job.status;
  let step = 0;
  let lastReward = '-';
  let left = '-';
  const started = Date.now();
  let firstStep: number | null = null; // steps already done when following began (a resumed job) do not count for the pace
  if (tty) bar.start(total || 1, 0, { reward: lastReward, status, left });
  const onEvent = (e: FineTuningJobEvent) => {
    const d = e.data as Record<string, unknown> | null;
    if (e.type !== 'metrics' || !d || typeof d.step !== 'number') return;
    firstStep ??= d.step - 1;
    step = d.step;
    lastReward = reward(d.reward_mean);
    left = eta(started, Date.now(), firstStep, step, total);
    const of = total || step;
    if (tty) {
      if (!total) bar.setTotal(step);
      bar.update(step, { reward: lastReward, status: 'running', left });
    } else {
      stream.write(`step ${step}/${of}  reward ${lastReward}  ETA ${left}\n`);
    }
  };
  try {
    for await (const e of api.streamEvents(job.id)) onEvent(e);
  } finally {
    const ended = await api.getJob(job.id).catch(() => null);
    status = ended?.status ?? status;
    if (tty) {
      bar.update(step, { reward: lastReward, status, left: status === 'succeeded' ? '0s' : '-' });
      bar.stop();
    }
    if (ended) job = ended;
  }
  return job;
}
