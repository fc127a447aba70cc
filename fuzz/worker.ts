// The fuzz worker: rebuilds each input from its recipe, runs the targets, reports.
import { parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import path from 'node:path';
import { mutate, type Recipe } from './mutate.js';
import { openedFormats, runInspector, runReader } from './target.js';
import type { Seeds } from './seeds.js';

const { seedsDir, names, workDir, readers } = workerData as { seedsDir: string; names: string[]; workDir: string; readers: boolean };
const seeds: Seeds = names.map((name) => ({ name, bytes: fs.readFileSync(path.join(seedsDir, name)) }));

parentPort!.on('message', async (recipe: Recipe) => {
  const file = path.join(workDir, `input-${recipe.rng}.img`);
  let bytes: Buffer = Buffer.alloc(0);
  try {
    bytes = mutate(seeds, recipe);
    fs.writeFileSync(file, bytes);
    const failures = await runInspector(bytes, file, recipe.rng);
    if (readers) failures.push(...await runReader(file, recipe.rng));
    parentPort!.postMessage({ recipe, failures, size: bytes.length, opened: { ...openedFormats } });
    for (const k of Object.keys(openedFormats)) delete openedFormats[k];
  } catch (e) {
    parentPort!.postMessage({ recipe, failures: [{ where: 'harness', kind: 'throw', detail: String((e as Error)?.stack ?? e) }], size: bytes.length });
  } finally {
    fs.rmSync(file, { force: true });
  }
});
parentPort!.postMessage({ ready: true });
