/**
 * Load benchmark of the edge API on Node: fine-tune job create / retrieve / list, against GET /healthz as the
 * floor measured in the same run (ratios, not absolute times, are what compare across machines).
 *
 * Starts the real Node server (`src/entry/node.ts`) on 127.0.0.1 with a temporary DATA_DIR, creates an API key
 * (`scripts/create-api-key.ts`) and a training file over HTTP, then drives each route with autocannon's
 * programmatic API. Job creation sends a unique Idempotency-Key per request, so every request inserts a row.
 * Runs the whole set twice, in one run: the server at SQLITE_SYNCHRONOUS=FULL (the baseline: an fsync per commit,
 * the setting before issue 11) and at NORMAL (the default now), each with its own floor. Prints a table and
 * appends its rows to bench/results-api.md.
 *
 *   npm run bench:api                         # 10 s per route, 10 connections
 *   BENCH_DURATION=5 BENCH_CONNECTIONS=32 npm run bench:api
 *
 * Every run checks that no request failed (non-2xx or socket errors); a run with errors is reported as such and
 * exits non-zero, so a broken route never shows up as a fast one.
 */
import autocannon from "autocannon";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createApiKey, freePort, ROOT, waitForServer } from "./local-server";

const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const RESULTS = join(ROOT, "bench", "results-api.md");
const DURATION_S = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);

interface Row {
  what: string;
  requests: number;
  p50: number;
  p99: number;
  rps: number;
  errors: number;
}

async function api(base: string, key: string, path: string, init: RequestInit = {}): Promise<any> {
  const res = await fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string> | undefined) },
  });
  const body = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path} -> ${res.status}: ${body}`);
  return JSON.parse(body);
}

async function run(what: string, opts: autocannon.Options): Promise<Row> {
  const result = await autocannon({ connections: CONNECTIONS, duration: DURATION_S, ...opts });
  return {
    what,
    requests: result.requests.total,
    p50: result.latency.p50,
    p99: result.latency.p99,
    rps: result.requests.average,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

function cpuName(): string {
  const name = cpus()[0]?.model?.trim() ?? "unknown cpu";
  return `${name} x${cpus().length}`;
}

/**
 * The repository's model folders when there are any (what `npm start` serves); else one minimal model folder (a
 * manifest, as tests/helpers/app.ts writes) so that jobs have a base model to name. Job creation does not load
 * model weights, so the numbers do not depend on which.
 */
function modelsDir(tmp: string): string {
  const bundled = join(ROOT, "models");
  if (existsSync(bundled) && readdirSync(bundled).some((d) => existsSync(join(bundled, d, "manifest.json")))) return bundled;
  const folder = join(tmp, "models", "tiny");
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, "config.json"), JSON.stringify({ architectures: ["Qwen2ForCausalLM"], model_type: "qwen2" }));
  writeFileSync(
    join(folder, "manifest.json"),
    JSON.stringify({ format: "softgrpo-model/1", base: "tiny-arith", step: 0, context_length: 512 }),
  );
  return join(tmp, "models");
}

/**
 * One server run at a SQLite durability level: the four routes against its own /healthz floor. The tenant limits
 * (src/tenants/limits.ts) are raised out of the way: this measures the routes, not the 429s.
 */
async function measure(synchronous: "FULL" | "NORMAL"): Promise<Row[]> {
  const tmp = mkdtempSync(join(tmpdir(), "bench-api-"));
  const dataDir = join(tmp, "data");
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    MODELS_DIR: modelsDir(tmp),
    NODE_ENV: "production",
    SQLITE_SYNCHRONOUS: synchronous,
    TENANT_REQUESTS_PER_MINUTE: "100000000",
    TENANT_ACTIVE_JOBS: "100000000",
  };
  let logs = "";
  // Its own process group, so that stopping it also stops the node process tsx starts.
  const server = spawn(TSX, ["src/entry/node.ts"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  server.stdout!.on("data", (d) => (logs += d));
  server.stderr!.on("data", (d) => (logs += d));
  const rows: Row[] = [];
  const label = (what: string) => `${what} [synchronous=${synchronous}]`;
  try {
    await waitForServer(base, server, () => logs);
    const key = createApiKey(env);
    const auth = { authorization: `Bearer ${key}` };

    const models = await api(base, key, "/v1/models");
    const model: string = models.data[0].id;
    const form = new FormData();
    form.set("purpose", "fine-tune");
    const lines = Array.from({ length: 64 }, (_, i) => JSON.stringify({ prompt: `What is ${i} + ${i}?`, answer: 2 * i }));
    form.set("file", new Blob([lines.join("\n") + "\n"], { type: "application/jsonl" }), "train.jsonl");
    const file = await api(base, key, "/v1/files", { method: "POST", body: form });
    const jobBody = JSON.stringify({
      model,
      training_file: file.id,
      method: { type: "soft_grpo", hyperparameters: { n_steps: 4 } },
      grader: { type: "numeric" },
    });
    const job = await api(base, key, "/v1/finetune", {
      method: "POST",
      body: jobBody,
      headers: { "content-type": "application/json", "idempotency-key": randomUUID() },
    });

    rows.push(await run(label("GET /healthz (floor)"), { url: `${base}/healthz` }));
    rows.push(
      await run(label("POST /v1/finetune (create)"), {
        url: `${base}/v1/finetune`,
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: jobBody,
        requests: [
          {
            setupRequest: (req: any) => ({
              ...req,
              headers: { ...req.headers, "idempotency-key": randomUUID() },
            }),
          },
        ],
      }),
    );
    rows.push(await run(label("GET /v1/finetune/{id} (retrieve)"), { url: `${base}/v1/finetune/${job.id}`, headers: auth }));
    rows.push(await run(label("GET /v1/finetune?limit=20 (list)"), { url: `${base}/v1/finetune?limit=20`, headers: auth }));
    const listed = await api(base, key, "/v1/finetune?limit=100");
    if (listed.data.length < 2) throw new Error("list after the create run returned fewer than 2 jobs");
  } finally {
    if (server.pid) process.kill(-server.pid, "SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

async function main(): Promise<void> {
  // The baseline first: synchronous=FULL (an fsync per commit, the setting before issue 11), then NORMAL.
  const full = await measure("FULL");
  const normal = await measure("NORMAL");
  const rows = [...full, ...normal];
  const floors = [full[0]!, normal[0]!];
  const floorOf = (r: Row) => (full.includes(r) ? floors[0]! : floors[1]!);
  // The machine may be shared: its load average says how much the absolute numbers can be trusted.
  const load = loadavg()[0]!.toFixed(1);
  const date = new Date().toISOString().slice(0, 16).replace("T", " ") + "Z";
  const machine = cpuName();
  const header = ["what", "connections", "duration s", "requests", "p50 ms", "p99 ms", "req/s", "req/s vs floor", "p50 vs floor", "errors"];
  const table = rows.map((r) => [
    r.what,
    String(CONNECTIONS),
    String(DURATION_S),
    String(r.requests),
    r.p50.toFixed(1),
    r.p99.toFixed(1),
    r.rps.toFixed(0),
    (r.rps / floorOf(r).rps).toFixed(3),
    floorOf(r).p50 > 0 ? (r.p50 / floorOf(r).p50).toFixed(2) : "n/a",
    String(r.errors),
  ]);
  const md = (cells: string[]) => `| ${cells.join(" | ")} |`;
  console.log([md(header), md(header.map(() => "---")), ...table.map(md)].join("\n"));
  console.log(`node ${process.version}, ${machine}, load average ${load}, ${date}`);

  if (!existsSync(RESULTS)) {
    writeFileSync(
      RESULTS,
      "# API load benchmark (bench/api-load.ts)\n\nRows appended by `npm run bench:api`: Node server on loopback, " +
        "SQLite file, autocannon in the same process tree. Ratios are against GET /healthz measured in the same run.\n\n" +
        md([...header, "node", "date", "machine", "load 1m"]) +
        "\n" +
        md([...header, "node", "date", "machine", "load 1m"].map(() => "---")) +
        "\n",
    );
  }
  const previous = readFileSync(RESULTS, "utf8");
  appendFileSync(
    RESULTS,
    (previous.endsWith("\n") ? "" : "\n") + table.map((cells) => md([...cells, process.version, date, machine, load])).join("\n") + "\n",
  );
  const failed = rows.filter((r) => r.errors > 0);
  if (failed.length) {
    console.error(`errors in: ${failed.map((r) => r.what).join(", ")}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
