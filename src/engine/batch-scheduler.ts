/**
 * Continuous batching for one ONNX session (one per OnnxEngine, so one per model in each engine thread): the running
 * samples of every request for the model decode together, one forward of the whole batch per step, and requests
 * join and leave between steps.
 *
 * - Rows. Each sample is a row with its own SampleDecoder (its Philox stream is keyed by seed, sample and step, never
 *   by its place in the batch), its own position ids and its own length n: its keys are columns 0..n-1 of the
 *   engine-kept batch cache (./cache-buffer.ts), as alone, and its attention mask hides the columns after them. The
 *   cache's capacity is a multiple of the session's capacity quantum Q (./capacity-quantum.ts), which keeps each
 *   row's logits bit for bit what they are when it decodes alone, so every sample is exactly the sample of the same
 *   request run alone: same tokens, same text, same finish reason, same events.
 * - Prefill. A request's prompt is prefilled once, and its samples start from that one cache: a row's keys are copied
 *   from it when the row joins the batch. Prefills run ahead of free rows: the waiting requests without one
 *   (fairest first, until one more request than there are free rows has its prefill, up to `maxPrefillBatch`) go to
 *   the prefiller in one forward, right-padded so each is exactly its prefill alone (./batch-prefill.ts; 1 when the
 *   session's probe says that does not hold), one forward at a time, as soon as a request comes, a step starts or
 *   the last forward ends. The prefiller (./prefiller.ts) runs it on the engine's session
 *   between two decode steps, or in a thread of its own, where it overlaps the decoding. Recent prefills are kept
 *   by their token ids (./prefill-cache.ts), so the next wave of an adaptive vote, or the same prompt again, skips
 *   it and starts at once.
 * - Joining. Rows join between steps once their prefill is there, whatever their length: a joining row's keys are
 *   copied from its prefill into a new last row of the cache (which grows its capacity when the prompt is longer
 *   than every row).
 * - Leaving. A row leaves when its sample is done (the cache's last row takes its place); a request whose caller aborted (hooks.signal: a client that went
 *   away) leaves at the next step with what its samples have (finish_reason "cancelled"), freeing its rows. Adaptive
 *   voting (src/reasoning/sampling-run.ts) draws its waves as separate requests, so once the vote is decided none
 *   of its samples are in the batch.
 * - Admission. At most `maxRows` rows decode at once. Free rows go, one at a time, to the prefilled waiting request
 *   whose tenant has the fewest rows in the batch, then to the one of that tenant with the fewest rows, then to the
 *   oldest: one tenant's n = 64 request cannot starve another tenant's n = 1, nor one request a tenant's others.
 * Failures: a failing prefill fails its request (which has no rows yet); a failing batch forward fails the
 * requests with rows in the batch; a throwing onEvent fails its own request. The others go on.
 */
import { prefillTogether } from "./batch-prefill";
import { CacheBuffer } from "./cache-buffer";
import type { MaskedForward } from "./capacity-quantum";
import { decodeStep } from "./decode-step";
import { PrefillCache, type Prefill } from "./prefill-cache";
import { InlinePrefiller, type Prefiller } from "./prefiller";
import { SampleDecoder, type ModelInput } from "./sample-decoder";
import { StreamEmitter } from "./stream-emitter";
import type { ChatTokenizer } from "./tokenizer";
import type { GenerationHooks, GenerationRequest, GenerationResult } from "./types";

export interface BatchSchedulerOptions {
  maxRows: number; // the cap on rows decoding at once
  quantum: number; // the cache's capacity is a multiple of this (./capacity-quantum.ts)
  maxPrefillBatch?: number; // prompts prefilled in one forward at most (default 1: each alone; ./batch-prefill.ts)
  maxPrefillTokens?: number; // prompts x longest prompt of one such forward at most (one prompt always goes)
}

/** What the scheduler holds now, for tests and metrics. */
export interface BatchStats {
  rows: number; // samples decoding in the batch
  columns: number; // C: the cache capacity the batch's forwards read
  requests: number; // requests not answered yet
  waiting: number; // samples not started yet
  steps: number; // batch forwards so far
  peakRows: number;
  prefillHits: number; // prompts that started from a kept prefill
  prefills: number; // prompts prefilled
  prefillForwards: number; // forwards that prefilled them (fewer when several are prefilled together)
  relayouts: number; // times the cache was laid out again (its capacity grew or shrank, or more rows)
  paddedColumns: number; // mean share of the batch's cache that held no keys, over the forwards
}

interface Job {
  readonly order: number;
  readonly request: GenerationRequest;
  readonly tenant: string;
  readonly promptIds: number[];
  readonly decoders: SampleDecoder[]; // in the order of request.samples
  readonly stream: StreamEmitter | null;
  readonly signal?: AbortSignal;
  readonly resolve: (result: GenerationResult) => void;
  readonly reject: (error: unknown) => void;
  started: number; // decoders started so far, in order
  rows: number; // rows of this job in the batch (joining ones included)
  prefill: Prefill | null; // kept until every sample has started
  settled: boolean;
}

interface Row {
  readonly job: Job;
  readonly decoder: SampleDecoder;
  logits: Float32Array; // [V] of its last position
  input: ModelInput | null; // its next input, after advance()
  prefill: Prefill | null; // a joining row's keys, until it is in the cache
}

export class BatchScheduler {
  private readonly jobs: Job[] = [];
  private rows: Row[] = []; // rows[r] decodes in row r of the cache
  private readonly cache: CacheBuffer;
  private readonly tenantRows = new Map<string, number>();
  private running: Promise<void> | null = null;
  private arrivals = 0;
  private steps = 0;
  private peakRows = 0;
  private readonly prefills = new PrefillCache();
  private prefilled = 0;
  private prefillForwards = 0;
  private padding = 0; // summed over forwards: 1 - (sum of row lengths) / (rows x columns)
  private prefilling: Promise<void> | null = null; // the prefiller's forward in flight
  private readonly prefillingJobs = new Set<Job>(); // the requests whose prompts it prefills
  readonly prefiller: Prefiller;

  constructor(
    private readonly model: MaskedForward,
    private readonly tokenizer: ChatTokenizer,
    readonly options: BatchSchedulerOptions,
    prefiller?: Prefiller, // default: on the model's own session, between decode steps
  ) {
    this.prefiller = prefiller ?? new InlinePrefiller(model);
    for (const [name, value] of Object.entries(options)) {
      if (value === undefined) continue;
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
    }
    this.cache = new CacheBuffer(model.geometry, { quantum: options.quantum });
  }

  /** Decodes the request's samples in the batch; resolves as OnnxEngine.generateAlone would for it. */
  submit(request: GenerationRequest, promptIds: number[], maxTokens: number, hooks: GenerationHooks = {}): Promise<GenerationResult> {
    const special = { thinkEndId: this.tokenizer.thinkEndId, eosId: this.tokenizer.eosId };
    const decoders = request.samples.map((sample) => new SampleDecoder(sample, request, special, maxTokens, this.tokenizer));
    return new Promise<GenerationResult>((resolve, reject) => {
      this.jobs.push({
        order: this.arrivals++,
        request,
        tenant: hooks.tenant ?? "",
        promptIds,
        decoders,
        stream: hooks.onEvent ? new StreamEmitter(decoders, this.tokenizer, hooks.onEvent) : null,
        signal: hooks.signal,
        resolve,
        reject,
        started: 0,
        rows: 0,
        prefill: null,
        settled: false,
      });
      // its prompt's prefill can start now, beside the step in progress (after the requests of this same tick)
      queueMicrotask(() => this.startPrefills());
      this.wake();
    });
  }

  stats(): BatchStats {
    const waiting = this.jobs.reduce((sum, job) => sum + job.decoders.length - job.started, 0);
    const { jobs, steps, peakRows, prefilled: prefills, prefillForwards } = this;
    const paddedColumns = steps > 0 ? this.padding / steps : 0;
    const { columns, relayouts } = this.cache;
    return { rows: this.rows.length, columns, requests: jobs.length, waiting, steps, peakRows, prefillHits: this.prefills.hits, prefills, prefillForwards, relayouts, paddedColumns };
  }

  /** Resolves once no request is left (the session is not in use by this scheduler then). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Ends the prefiller (its thread); call after idle(), once no request will come. */
  close(): Promise<void> {
    return this.prefiller.close();
  }

  private wake(): void {
    if (this.running) return;
    this.running = this.run().finally(() => {
      this.running = null;
      if (this.jobs.length > 0) this.wake(); // submitted after the loop saw none left, before it ended
    });
  }

  private async run(): Promise<void> {
    await Promise.resolve(); // requests submitted in the same tick as the first start together
    // a prefill in flight for requests that went away is waited for too: the session is not released under it
    while (this.jobs.length > 0 || this.prefilling) await this.step();
    this.rows = [];
    this.cache.clear();
  }

  private async step(): Promise<void> {
    const advanced = new Map<Job, SampleDecoder[]>();
    // requests whose caller went away leave with what they have
    for (const job of [...this.jobs]) if (job.signal?.aborted) this.settle(job);
    // every row consumes the logits of its last position
    for (const row of this.rows) {
      row.input = row.decoder.advance(row.logits);
      note(advanced, row);
    }
    for (let r = this.rows.length - 1; r >= 0; r--) if (this.rows[r].decoder.done) this.vacate(r);
    await this.prefillDue();
    const joiners = this.admit(advanced);
    for (const [job, decoders] of advanced) this.emit(job, decoders);
    for (const job of [...this.jobs]) if (job.started === job.decoders.length && job.decoders.every((d) => d.done)) this.settle(job);
    this.place(joiners.filter((row) => !row.job.settled));
    for (const job of this.jobs) if (job.started === job.decoders.length) job.prefill = null;
    if (this.rows.length > 0) await this.decode();
    else if (this.prefilling) await this.prefilling; // nothing decodes until a prompt is prefilled
  }

  /**
   * Starts prefilled waiting samples while rows are free: the fairest request first (see the module comment), each
   * started sample advanced on its prompt's logits. Returns the rows to place in the batch (a sample may finish at once).
   */
  private admit(advanced: Map<Job, SampleDecoder[]>): Row[] {
    const joiners: Row[] = [];
    const live = this.rows.length;
    while (this.options.maxRows - live - joiners.length > 0) {
      const job = this.fairest((j) => j.prefill !== null);
      if (!job) break;
      const decoder = job.decoders[job.started++];
      const row: Row = { job, decoder, logits: job.prefill!.logits, input: null, prefill: job.prefill };
      row.input = decoder.advance(row.logits);
      note(advanced, row);
      if (decoder.done) continue;
      joiners.push(row);
      job.rows++;
      this.addTenantRows(job.tenant, 1);
    }
    return joiners;
  }

  /** The waiting request (of those `eligible`) to start a sample of next: the first of byFairness. */
  private fairest(eligible: (job: Job) => boolean): Job | null {
    let best: Job | null = null;
    for (const job of this.jobs) {
      if (job.settled || job.started === job.decoders.length || !eligible(job)) continue;
      if (!best || this.fairer(job, best)) best = job;
    }
    return best;
  }

  /** Fewest rows of its tenant in the batch, then of its own, then oldest. */
  private fairer(a: Job, b: Job): boolean {
    const ta = this.tenantRows.get(a.tenant) ?? 0;
    const tb = this.tenantRows.get(b.tenant) ?? 0;
    return ta !== tb ? ta < tb : a.rows !== b.rows ? a.rows < b.rows : a.order < b.order;
  }

  private byFairness(jobs: Job[]): Job[] {
    return jobs.sort((a, b) => (this.fairer(a, b) ? -1 : this.fairer(b, a) ? 1 : 0));
  }

  /**
   * Starts the prefills that are due, and waits for them when nothing else can run meanwhile: a prefiller that runs
   * on the batch's own thread (not `concurrent`) holds up the decode step anyway, so the step waits until every
   * prefill that can join it is done; a concurrent one (a thread) is waited for only when no row can decode.
   */
  private async prefillDue(): Promise<void> {
    this.startPrefills();
    while (this.prefilling && !(this.prefiller.concurrent && (this.rows.length > 0 || this.jobs.some((job) => job.prefill)))) {
      await this.prefilling;
      this.startPrefills();
    }
  }

  /**
   * Gets waiting requests their prompts' prefills ahead of free rows, fairest first, until one more request than
   * there are free rows (at least one) has its prefill: a kept prefill at once, the others in one forward of the
   * prefiller (at most maxPrefillBatch prompts and maxPrefillTokens padded positions) unless one is in flight, in
   * which case they wait for the next. Called at each step, when a request comes and when a forward ends; it
   * touches no row, so it may run while a decode step is in flight.
   */
  private startPrefills(): void {
    const ready = this.jobs.filter((job) => job.prefill && job.started < job.decoders.length).length;
    const room = Math.max(this.options.maxRows - this.rows.length, 1) + 1 - ready; // requests to have prefilled
    const limit = this.options.maxPrefillBatch ?? 1;
    const tokens = this.options.maxPrefillTokens ?? Infinity;
    const due = this.byFairness(this.jobs.filter((job) => !job.prefill && !this.prefillingJobs.has(job) && job.started < job.decoders.length));
    const group: Job[] = [];
    let longest = 0;
    let taken = 0;
    for (const job of due) {
      if (taken >= room) break;
      const kept = this.prefills.get(job.promptIds);
      if (kept) job.prefill = kept;
      else {
        const length = Math.max(longest, job.promptIds.length);
        const full = group.length >= limit || (group.length > 0 && (group.length + 1) * length > tokens);
        if (this.prefilling || full) continue; // for a later forward
        group.push(job);
        longest = length;
      }
      taken++;
    }
    if (group.length === 0) return;
    for (const job of group) this.prefillingJobs.add(job);
    this.prefilling = this.prefillGroup(group).finally(() => {
      for (const job of group) this.prefillingJobs.delete(job);
      this.prefilling = null;
      this.startPrefills(); // the prompts that came meanwhile, without waiting for the next step
    });
  }

  /**
   * One forward of the prefiller for the group's prompts (a prompt asked by several requests is prefilled once). A
   * failing forward of several prompts is retried prompt by prompt, so a failing prefill fails its own request only
   * (one without rows: runs between decode steps or beside one, and touches no row).
   */
  private async prefillGroup(group: Job[]): Promise<void> {
    const due = new Map<string, Job[]>(); // prompt -> its requests
    for (const job of group) {
      const key = job.promptIds.join(",");
      due.set(key, [...(due.get(key) ?? []), job]);
    }
    const waiting = [...due.values()];
    const prompts = waiting.map((jobs) => jobs[0].promptIds);
    let prefills: Prefill[] | null = null;
    try {
      prefills = await this.prefiller.prefill(prompts);
      this.prefillForwards++;
    } catch (error) {
      if (waiting.length === 1) {
        for (const job of waiting[0]) this.fail(job, error);
        return;
      }
    }
    for (const [i, jobs] of waiting.entries()) {
      let prefill = prefills?.[i];
      if (!prefill) {
        try {
          [prefill] = await this.prefiller.prefill([prompts[i]]);
          this.prefillForwards++;
        } catch (error) {
          for (const job of jobs) this.fail(job, error);
          continue;
        }
      }
      this.prefilled++;
      this.prefills.set(prompts[i], prefill);
      for (const job of jobs) if (!job.settled) job.prefill = prefill;
    }
  }

  /** Puts the joining rows in the batch: each a new last row of the cache, its keys copied from its prefill. */
  private place(joiners: Row[]): void {
    for (const row of joiners) {
      const length = row.job.promptIds.length;
      this.cache.addRow(row.prefill!.cache, 0, length);
      row.prefill = null;
      this.rows.push(row);
    }
    this.peakRows = Math.max(this.peakRows, this.rows.length);
  }

  /** One forward of the batch: each row its input at its own position, seeing its own columns only. */
  private async decode(): Promise<void> {
    const vocab = this.model.geometry.vocabSize;
    this.cache.trim();
    const fill = this.cache.fill();
    let logits: Float32Array;
    try {
      logits = await decodeStep(this.model, this.cache, this.rows.map((row) => row.input!));
    } catch (error) {
      const inBatch = new Set(this.rows.map((row) => row.job));
      for (const job of inBatch) this.fail(job, error);
      this.rows = [];
      this.cache.clear();
      return;
    }
    this.steps++;
    this.padding += 1 - fill;
    this.rows.forEach((row, r) => {
      row.logits = logits.subarray(r * vocab, (r + 1) * vocab);
      row.input = null;
    });
  }

  private emit(job: Job, decoders: SampleDecoder[]): void {
    if (!job.stream || job.settled) return;
    const order = new Map(job.decoders.map((d, i) => [d, i]));
    try {
      job.stream.afterStep(decoders.sort((a, b) => order.get(a)! - order.get(b)!));
    } catch (error) {
      this.fail(job, error); // as alone: a throwing onEvent ends its request with its error
    }
  }

  /** Row r leaves the batch: the last row takes its place, in the cache and here. */
  private vacate(r: number): void {
    const row = this.rows[r];
    const moved = this.cache.removeRow(r);
    if (moved >= 0) this.rows[r] = this.rows[moved];
    this.rows.pop();
    row.job.rows--;
    this.addTenantRows(row.job.tenant, -1);
  }

  private addTenantRows(tenant: string, delta: number): void {
    const rows = (this.tenantRows.get(tenant) ?? 0) + delta;
    if (rows === 0) this.tenantRows.delete(tenant);
    else this.tenantRows.set(tenant, rows);
  }

  /** Answers a request (its unfinished samples "cancelled"); its rows leave the batch. */
  private settle(job: Job): void {
    if (!this.remove(job)) return;
    const decode = (ids: number[]) => this.tokenizer.decode(ids);
    job.resolve({ prompt_tokens: job.promptIds.length, samples: job.decoders.map((d) => d.toResult(decode)) });
  }

  private fail(job: Job, error: unknown): void {
    if (this.remove(job)) job.reject(error);
  }

  private remove(job: Job): boolean {
    if (job.settled) return false;
    job.settled = true;
    for (let r = this.rows.length - 1; r >= 0; r--) if (this.rows[r].job === job) this.vacate(r);
    job.prefill = null;
    this.jobs.splice(this.jobs.indexOf(job), 1);
    return true;
  }
}

function note(advanced: Map<Job, SampleDecoder[]>, row: Row): void {
  const list = advanced.get(row.job);
  if (list) list.push(row.decoder);
  else advanced.set(row.job, [row.decoder]);
}
