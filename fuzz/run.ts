// The fuzz driver: generates recipes from one seed, runs them in worker threads with a
// per-input timeout and a memory bound, and reports every distinct failure with the
// recipe that reproduces it.
//
//   npm run fuzz -- [--seconds N | --iterations N] [--seed S] [--workers K] [--timeout MS] [--max-mutations M] [--no-readers]
//   npm run fuzz -- --replay SEEDNAME:RNG:MUTATIONS     re-runs one recipe in this process
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeSeeds } from './seeds.js';
import { MUTATOR_VERSION, mutate, rng, type Recipe } from './mutate.js';
import type { Failure } from './target.js';

export interface FuzzOptions {
  seed: number;
  iterations?: number;
  seconds?: number;
  timeoutMs?: number;
  workers?: number;
  /** Resident memory bound for the whole process, MiB. */
  memLimitMb?: number;
  readers?: boolean;
  /** Mutations per input: 1..maxMutations (default 8). */
  maxMutations?: number;
  log?: (line: string) => void;
}
export interface FoundFailure extends Failure { recipe: Recipe; signature: string }
export interface FuzzResult { executed: number; failures: FoundFailure[]; seconds: number; seedNames: string[]; opened: Record<string, number> }

const tsxApi = import.meta.resolve('tsx/esm/api');
const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);

export function recipeString(r: Recipe): string { return `${r.seed}:${r.rng}:${r.mutations}:${r.version ?? 1}`; }
/** SEED:RNG:MUTATIONS[:VERSION]; recipes recorded before versions existed are version 1. */
export function parseRecipe(s: string): Recipe {
  const [seed, r, m, v] = s.split(':');
  return { seed: seed!, rng: Number(r), mutations: Number(m), version: v === undefined ? 1 : Number(v) };
}

/** The i-th recipes of a run, independent of worker count and timing. */
export function* recipes(seed: number, names: string[], maxMutations = 8): Generator<Recipe> {
  const r = rng(seed);
  for (;;) yield { seed: names[Math.floor(r() * names.length)]!, rng: Math.floor(r() * 2 ** 32), mutations: 1 + Math.floor(r() * maxMutations), version: MUTATOR_VERSION };
}

function signature(f: Failure): string {
  const firstFrame = f.detail.split('\n').find((l) => l.trim().startsWith('at ')) ?? '';
  return `${f.where} ${f.kind} ${f.detail.split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 160)} ${firstFrame.trim()}`;
}

export async function fuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const log = opts.log ?? (() => {});
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-fuzz-'));
  const seedsDir = path.join(root, 'seeds');
  const workDir = path.join(root, 'work');
  fs.mkdirSync(seedsDir); fs.mkdirSync(workDir);
  const seeds = makeSeeds(seedsDir);
  for (const s of seeds) fs.writeFileSync(path.join(seedsDir, s.name), s.bytes);
  const names = seeds.map((s) => s.name);
  const timeoutMs = opts.timeoutMs ?? 10000;
  const memLimit = (opts.memLimitMb ?? 2048) * 1024 * 1024;
  const gen = recipes(opts.seed, names, opts.maxMutations);
  const start = Date.now();
  const deadline = opts.seconds !== undefined ? start + opts.seconds * 1000 : Infinity;
  const limit = opts.iterations ?? Infinity;
  let issued = 0;
  let executed = 0;
  const failures = new Map<string, FoundFailure>();
  const opened: Record<string, number> = {};
  const record = (recipe: Recipe, f: Failure) => {
    const sig = signature(f);
    if (!failures.has(sig)) {
      failures.set(sig, { ...f, recipe, signature: sig });
      log(`FAILURE ${f.where} ${f.kind} — recipe ${recipeString(recipe)}\n${f.detail}\n`);
    }
  };

  interface Slot { w: Worker; job: Recipe | null; timer: NodeJS.Timeout | null; ready: Promise<void> }
  const spawn = (): Slot => {
    const w = new Worker(`import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); })`, {
      eval: true,
      workerData: { seedsDir, names, workDir, readers: opts.readers ?? true },
      resourceLimits: { maxOldGenerationSizeMb: 1024 },
    });
    let resolveReady!: () => void;
    const slot: Slot = { w, job: null, timer: null, ready: new Promise((r) => { resolveReady = r; }) };
    w.once('message', () => resolveReady());
    return slot;
  };

  const runOn = (slot: Slot, recipe: Recipe): Promise<Slot> => new Promise((resolve) => {
    slot.job = recipe;
    let settled = false;
    const finish = (next: Slot) => {
      if (settled) return;
      settled = true;
      if (slot.timer) clearTimeout(slot.timer);
      clearInterval(mem);
      slot.w.off('message', onMsg); slot.w.off('error', onErr);
      executed++;
      resolve(next);
    };
    const replace = (f: Failure) => {
      record(recipe, f);
      void slot.w.terminate();
      const fresh = spawn();
      void fresh.ready.then(() => finish(fresh));
    };
    const onMsg = (m: { recipe: Recipe; failures: Failure[]; opened: Record<string, number> }) => {
      for (const f of m.failures) record(recipe, f);
      for (const [k, v] of Object.entries(m.opened ?? {})) opened[k] = (opened[k] ?? 0) + v;
      finish(slot);
    };
    const onErr = (e: Error) => replace({ where: 'reader', kind: 'worker-crash', detail: `${e.name}: ${e.message}` });
    slot.w.on('message', onMsg);
    slot.w.on('error', onErr);
    slot.timer = setTimeout(() => replace({ where: 'reader', kind: 'hang', detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
    const mem = setInterval(() => {
      const rss = process.memoryUsage.rss();
      if (rss > memLimit) replace({ where: 'reader', kind: 'memory', detail: `resident memory ${Math.round(rss / 1048576)} MiB over the ${memLimit / 1048576} MiB bound` });
    }, 50);
    slot.w.postMessage(recipe);
  });

  const n = Math.max(1, opts.workers ?? 1);
  const lanes = Array.from({ length: n }, async () => {
    let slot = spawn();
    await slot.ready;
    while (issued < limit && Date.now() < deadline) {
      issued++;
      slot = await runOn(slot, gen.next().value as Recipe);
      if (executed % 500 === 0) log(`${executed} inputs, ${failures.size} distinct failures, ${((Date.now() - start) / 1000).toFixed(0)} s`);
    }
    await slot.w.terminate();
  });
  await Promise.all(lanes);
  fs.rmSync(root, { recursive: true, force: true });
  return { executed, failures: [...failures.values()], seconds: (Date.now() - start) / 1000, seedNames: names, opened };
}

/** Re-runs one recipe in this process (for debugging a failure). */
export async function replay(recipeText: string): Promise<Failure[]> {
  const { runInspector, runReader } = await import('./target.js');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-fuzz-'));
  try {
    const seeds = makeSeeds(root);
    const recipe = parseRecipe(recipeText);
    const bytes = mutate(seeds, recipe);
    const file = path.join(root, 'input.img');
    fs.writeFileSync(file, bytes);
    return [...await runInspector(bytes, file, recipe.rng), ...await runReader(file, recipe.rng)];
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const get = (k: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : undefined; };
  const rep = get('--replay');
  if (rep) {
    const f = await replay(rep);
    console.log(f.length ? f.map((x) => `${x.where} ${x.kind}\n${x.detail}`).join('\n\n') : 'no failure');
    process.exit(f.length ? 1 : 0);
  }
  const res = await fuzz({
    seed: Number(get('--seed') ?? Date.now() % 2 ** 31),
    seconds: get('--iterations') ? undefined : Number(get('--seconds') ?? 3600),
    iterations: get('--iterations') ? Number(get('--iterations')) : undefined,
    workers: Number(get('--workers') ?? Math.max(1, os.availableParallelism() - 1)),
    timeoutMs: Number(get('--timeout') ?? 10000),
    readers: !args.includes('--no-readers'),
    maxMutations: Number(get('--max-mutations') ?? 8),
    log: (l) => console.log(l),
  });
  console.log(`\n${res.executed} inputs in ${res.seconds.toFixed(0)} s; ${res.failures.length} distinct failures; opened by readers: ${JSON.stringify(res.opened)}`);
  for (const f of res.failures) console.log(`  ${f.where} ${f.kind}: npm run fuzz -- --replay ${recipeString(f.recipe)}\n    ${f.detail.split('\n')[0]}`);
  process.exit(res.failures.length ? 1 : 0);
}
