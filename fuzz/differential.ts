// Differential check of the inspector against qemu-img (the reader Glance's checks
// protect): for mutated images the inspector calls safe, `qemu-img info` must agree on
// the format and the virtual size, and must report no backing file, data file or
// foreign VMDK extent. Disagreements are printed with their recipes.
//
//   node --import tsx fuzz/differential.ts [--iterations N] [--seed S] [--max-mutations M]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeSeeds, type Seeds } from './seeds.js';
import { mutate, type Recipe } from './mutate.js';
import { recipes, recipeString } from './run.js';
import { inspectFile, glanceToEngineFormat, type InspectVerdict } from '../src/engine/inspect/index.js';

/** What qemu-img sees in `file` that a safe verdict contradicts (empty when they agree or qemu refuses the file). */
export function disagreements(file: string, v: InspectVerdict): string[] {
  const q = spawnSync('qemu-img', ['info', '-U', '--output', 'json', file], { encoding: 'utf8', timeout: 10000 });
  if (q.status !== 0) return []; // qemu refuses it too
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
  if (!fixedVhdAsRaw && info['virtual-size'] !== v.virtualSize) issues.push(`virtual size: qemu ${info['virtual-size']}, inspector ${v.virtualSize}`);
  return issues;
}

/** Inspects one recipe's input and compares with qemu-img when the verdict is safe. */
export async function checkRecipe(seeds: Seeds, recipe: Recipe, dir: string): Promise<{ verdict: InspectVerdict; issues: string[] }> {
  const file = path.join(dir, 'input.img');
  fs.writeFileSync(file, mutate(seeds, recipe));
  const verdict = await inspectFile(file);
  return { verdict, issues: verdict.safe ? disagreements(file, verdict) : [] };
}

export async function differential(opts: { seed: number; iterations: number; maxMutations?: number; log?: (l: string) => void }): Promise<{ safe: number; problems: Array<{ recipe: string; issues: string[] }> }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-diff-'));
  const problems: Array<{ recipe: string; issues: string[] }> = [];
  let safe = 0;
  try {
    const seeds = makeSeeds(root);
    const gen = recipes(opts.seed, seeds.map((s) => s.name), opts.maxMutations ?? 8);
    const seen = new Set<string>();
    for (let n = 0; n < opts.iterations; n++) {
      const recipe = gen.next().value!;
      const { verdict, issues } = await checkRecipe(seeds, recipe, root);
      if (verdict.safe) safe++;
      if (issues.length === 0) continue;
      const key = issues.map((i) => i.replace(/\d+/g, 'N')).join('|');
      if (seen.has(key)) continue;
      seen.add(key);
      problems.push({ recipe: recipeString(recipe), issues });
      opts.log?.(`${recipeString(recipe)}: ${issues.join('; ')}`);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  return { safe, problems };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const get = (k: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : undefined; };
  const iterations = Number(get('--iterations') ?? 2000);
  const res = await differential({ seed: Number(get('--seed') ?? 1), iterations, maxMutations: Number(get('--max-mutations') ?? 8), log: (l) => console.log(l) });
  console.log(`${iterations} inputs, ${res.safe} judged safe, ${res.problems.length} distinct disagreements with qemu-img`);
  process.exit(res.problems.length ? 1 : 0);
}
