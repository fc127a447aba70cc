// Differential check of the inspector against qemu-img (the reader Glance's checks
// protect): for mutated images the inspector calls safe, `qemu-img info` must agree on
// the format and the virtual size, and must report no backing file, data file or
// foreign VMDK extent. Disagreements are printed with their recipes.
//
//   node --import tsx fuzz/differential.ts [--iterations N] [--seed S]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeSeeds } from './seeds.js';
import { mutate } from './mutate.js';
import { recipes, recipeString } from './run.js';
import { inspectFile, glanceToEngineFormat } from '../src/engine/inspect/index.js';

const args = process.argv.slice(2);
const get = (k: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : undefined; };
const iterations = Number(get('--iterations') ?? 2000);
const seed = Number(get('--seed') ?? 1);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-diff-'));
const seeds = makeSeeds(root);
const gen = recipes(seed, seeds.map((s) => s.name), Number(get('--max-mutations') ?? 8));
const seen = new Set<string>();
let safe = 0;
let problems = 0;
try {
  for (let n = 0; n < iterations; n++) {
    const recipe = gen.next().value!;
    const file = path.join(root, 'input.img');
    fs.writeFileSync(file, mutate(seeds, recipe));
    const v = await inspectFile(file);
    if (!v.safe) continue;
    safe++;
    const q = spawnSync('qemu-img', ['info', '-U', '--output', 'json', file], { encoding: 'utf8', timeout: 10000 });
    if (q.status !== 0) continue; // qemu refuses it too: no disagreement about safety
    const info = JSON.parse(q.stdout);
    const issues: string[] = [];
    const qfmt: string = info.format;
    const ours = glanceToEngineFormat(v.format) ?? v.format;
    const fixedVhdAsRaw = v.format === 'vhd' && v.subformat === 'fixed' && qfmt === 'raw';
    const isoAsRaw = v.format === 'iso' && qfmt === 'raw';
    if (qfmt !== ours && !fixedVhdAsRaw && !isoAsRaw) issues.push(`format: qemu ${qfmt}, inspector ${v.format}`);
    if (info['backing-filename']) issues.push(`qemu sees backing file ${info['backing-filename']}`);
    const spec = info['format-specific']?.data ?? {};
    if (spec['data-file']) issues.push(`qemu sees data file ${spec['data-file']}`);
    for (const e of spec.extents ?? []) if (e.filename && path.resolve(e.filename) !== file) issues.push(`qemu sees extent ${e.filename}`);
    if (qfmt === ours && !fixedVhdAsRaw && info['virtual-size'] !== v.virtualSize) issues.push(`virtual size: qemu ${info['virtual-size']}, inspector ${v.virtualSize}`);
    if (issues.length) {
      const key = issues.map((i) => i.replace(/\d+/g, 'N')).join('|') + qfmt;
      if (seen.has(key)) continue;
      seen.add(key);
      problems++;
      console.log(`${recipeString(recipe)}: ${issues.join('; ')}`);
    }
  }
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
console.log(`${iterations} inputs, ${safe} judged safe, ${problems} distinct disagreements with qemu-img`);
