// Regressions found by fuzzing, kept as recipes (seed image + mutation), never blobs,
// and a short deterministic differential run against qemu-img.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeSeeds, type Seeds } from '../../../fuzz/seeds.js';
import { mutate } from '../../../fuzz/mutate.js';
import { parseRecipe } from '../../../fuzz/run.js';
import { runInspector, runReader } from '../../../fuzz/target.js';
import { checkRecipe, differential } from '../../../fuzz/differential.js';

let dir: string;
let seeds: Seeds;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-'));
  seeds = makeSeeds(dir);
});
after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

test('differential fuzzing: parentFileNameHint inside a comment of the embedded descriptor', async () => {
  // qemu finds the hint with strstr() and opens /etc/passwd as the parent; the inspector
  // once parsed only non-comment lines and called this safe.
  const { verdict, issues } = await checkRecipe(seeds, parseRecipe('sparse.vmdk:268838690:5'), dir);
  assert.ok(verdict.findings.some((f) => f.code === 'backing-file' && f.unsafe), JSON.stringify(verdict));
  assert.equal(verdict.backingFile, '/etc/passwd');
  assert.deepEqual(issues, []);
});

test('fuzz recipes that once failed run clean', async () => {
  for (const text of ['desc.vmdk:320052760:8', 'extl2.qcow2:2487047921:3', 'dynamic.vdi:3045822884:3', 'stream.vmdk:4084238121:2', 'stream.vmdk:2047852704:28', 'sparse.vmdk:268838690:5']) {
    const recipe = parseRecipe(text);
    const bytes = mutate(seeds, recipe);
    const file = path.join(dir, 'input.img');
    fs.writeFileSync(file, bytes);
    const failures = [...await runInspector(bytes, file, recipe.rng), ...await runReader(file, recipe.rng)];
    assert.deepEqual(failures, [], text);
    const { issues } = await checkRecipe(seeds, recipe, dir);
    assert.deepEqual(issues, [], text);
  }
});

test('seeded differential run: safe verdicts agree with qemu-img info', async () => {
  const res = await differential({ seed: 20241016, iterations: 400, maxMutations: 4 });
  assert.ok(res.safe > 80, `only ${res.safe} inputs judged safe`);
  assert.deepEqual(res.problems, []);
});
