// The hostile corpus (test/fixtures-gen/hostile.ts): every hostile image refused with
// the right finding code, every benign one accepted with the right format and the
// virtual size qemu-img reports; and the same verdict from a file and from a stream
// cut into chunks of any size.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateCorpus, rng, type CorpusCase } from '../../fixtures-gen/hostile.js';
import { FINDING_CODES, inspectFile, StreamInspector, type InspectOptions, type InspectVerdict } from '../../../src/engine/inspect/index.js';

let dir: string;
let cases: CorpusCase[];

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-'));
  cases = generateCorpus(dir);
});
after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

function show(v: InspectVerdict): string { return JSON.stringify(v, null, 1); }

test('benign images pass with the right format and virtual size', async () => {
  const benign = cases.filter((c) => c.safe);
  assert.ok(benign.length >= 15);
  for (const c of benign) {
    const v = await inspectFile(c.file, c.opts);
    assert.equal(v.safe, true, `${c.name}: ${show(v)}`);
    assert.equal(v.format, c.format, c.name);
    assert.equal(v.actualSize, fs.statSync(c.file).size, c.name);
    if (c.qemuFormat) {
      const info = JSON.parse(execFileSync('qemu-img', ['info', '-f', c.qemuFormat, '--output', 'json', c.file], { encoding: 'utf8' }));
      assert.equal(v.virtualSize, info['virtual-size'], `${c.name}: virtual size vs qemu-img`);
      if (info['cluster-size'] !== undefined && c.qemuFormat !== 'raw') assert.equal(v.clusterSize, info['cluster-size'], `${c.name}: cluster size`);
      if (info['backing-filename'] !== undefined) assert.equal(v.backingFile, info['backing-filename'], c.name);
    }
  }
});

test('hostile images are refused with the named reasons', async () => {
  const hostile = cases.filter((c) => !c.safe);
  assert.ok(hostile.length >= 40);
  for (const c of hostile) {
    const v = await inspectFile(c.file, c.opts);
    assert.equal(v.safe, false, `${c.name} passed: ${show(v)}`);
    assert.equal(v.format, c.format, `${c.name}: ${show(v)}`);
    const codes = v.findings.filter((f) => f.unsafe).map((f) => f.code);
    for (const code of c.codes ?? []) assert.ok(codes.includes(code), `${c.name}: expected '${code}', got ${show(v)}`);
    assert.ok(!codes.includes('internal-error'), `${c.name}: ${show(v)}`);
    for (const f of v.findings) assert.ok(f.code in FINDING_CODES, `${c.name}: undocumented code ${f.code}`);
  }
});

test('reported names are the ones in the image, never resolved', async () => {
  const v = await inspectFile(path.join(dir, 'backing-passwd.qcow2'));
  assert.equal(v.backingFile, '/etc/passwd');
  const d = await inspectFile(path.join(dir, 'datafile.qcow2'));
  assert.equal(d.dataFile, '/etc/passwd');
  const x = await inspectFile(path.join(dir, 'parent.vhdx'));
  assert.equal(x.backingFile, '../../etc/passwd');
  const vh = await inspectFile(path.join(dir, 'differencing.vhd'));
  assert.equal(vh.backingFile, '/etc/passwd');
});

async function streamVerdict(data: Buffer, sizes: () => number, opts?: InspectOptions): Promise<InspectVerdict> {
  const s = new StreamInspector(opts);
  let off = 0;
  while (off < data.length) {
    const n = Math.max(1, sizes());
    s.push(data.subarray(off, off + n));
    off += n;
  }
  return s.finish();
}

test('the stream verdict equals the file verdict for any chunk size', async () => {
  const seen = new Set<string>();
  const r = rng(2024);
  for (const c of cases) {
    const key = `${c.file} ${JSON.stringify(c.opts ?? {})}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const data = fs.readFileSync(c.file);
    const want = await inspectFile(c.file, c.opts);
    const plans: Array<[string, () => number]> = [['4096', () => 4096], ['1MiB', () => 1 << 20], ['random', () => 1 + Math.floor(r() * 300000)]];
    if (data.length <= 256 << 10) plans.push(['1', () => 1]);
    if (data.length <= 2 << 20) plans.push(['7', () => 7]);
    for (const [label, sizes] of plans) {
      const got = await streamVerdict(data, sizes, c.opts);
      assert.deepEqual(got, want, `${c.name}, chunks of ${label}`);
    }
  }
});

test('an empty stream and an empty file are raw of size 0', async () => {
  const f = path.join(dir, 'empty');
  fs.writeFileSync(f, '');
  const v = await inspectFile(f);
  assert.deepEqual(v, new StreamInspector().finish());
  assert.equal(v.format, 'raw');
  assert.equal(v.virtualSize, 0);
  assert.equal(v.safe, true);
});

test('unknown expected formats are an argument error', () => {
  assert.throws(() => new StreamInspector({ expectedFormat: 'floppy' }), { code: 'INVALID_ARGUMENT' });
});
