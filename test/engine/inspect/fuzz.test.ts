// A short, deterministic fuzz run (fixed seed and input count) over the inspector and
// every format reader; the long runs are `npm run fuzz`. Any failure prints the recipe
// that reproduces it (`npm run fuzz -- --replay RECIPE`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, recipeString } from '../../../fuzz/run.js';

test('seeded fuzz run: no throw outside ImgportError, no hang, bounded memory, stream = file', async () => {
  const res = await fuzz({ seed: 20240702, iterations: 700, workers: 2, timeoutMs: 15000, memLimitMb: 2048 });
  assert.equal(res.executed, 700);
  // The readers were reached, not just the probes.
  for (const f of ['qcow2', 'vmdk', 'vpc', 'vhdx', 'vdi', 'qcow']) assert.ok((res.opened[f] ?? 0) > 0, `no ${f} input opened: ${JSON.stringify(res.opened)}`);
  const report = res.failures.map((f) => `${f.where} ${f.kind} (recipe ${recipeString(f.recipe)})\n${f.detail}`).join('\n\n');
  assert.equal(res.failures.length, 0, report);
});
