// convertImage on real files, checked with qemu-img: every format pair the registry
// can write among raw and qcow2, data straddling 2 GiB and 4 GiB, odd sizes, backing
// chains of depth 3 (flattened, or kept with -B), and cleanup on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { convertImage } from '../../../src/engine/convert/index.js';
import { findFormat } from '../../../src/engine/formats/registry.js';
import type { ImgportError } from '../../../src/engine/errors.js';
import { tmpDir, hasQemuImg, qemuImg, qemuIo, pattern, sparseFile } from '../ops/helpers.js';

const GiB = 2 ** 30;
const hasQcow2 = findFormat('qcow2') !== undefined;
const skipQemu = hasQemuImg ? false : 'qemu-img not installed';
const skipQcow2 = !hasQemuImg ? 'qemu-img not installed' : !hasQcow2 ? 'qcow2 driver not in the registry yet' : false;

let t: ReturnType<typeof tmpDir>;
let src: string;
const SIZE = 5 * GiB + 12345; // odd: not a multiple of a sector nor a cluster

before(() => {
  t = tmpDir();
  src = path.join(t.dir, 'src.raw');
  const mbr = Buffer.alloc(512);
  mbr.writeUInt16LE(0xaa55, 510);
  sparseFile(src, SIZE, [
    [0, mbr],
    [1 << 20, pattern(3 << 20, 1)],
    [2 * GiB - 100_000, pattern(200_000, 2)],     // straddles 2 GiB
    [4 * GiB - 3000, pattern(8000, 3)],           // straddles 4 GiB
    [3 * GiB, Buffer.alloc(1 << 20)],             // explicit zeros stored as data
    [SIZE - 777, pattern(777, 4)],                // the odd tail
  ]);
});
after(() => t.cleanup());

function same(a: string, b: string, fa?: string, fb?: string): void {
  const args = ['compare', ...(fa ? ['-f', fa] : []), ...(fb ? ['-F', fb] : []), a, b];
  const r = qemuImg(args);
  assert.equal(r.status, 0, `qemu-img ${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

function checkClean(file: string): void {
  const r = qemuImg(['check', file]);
  assert.equal(r.status, 0, `qemu-img check ${file}: ${r.stdout}${r.stderr}`);
}

test('raw → raw keeps content and sparseness', { skip: skipQemu }, async () => {
  const out = path.join(t.dir, 'out.raw');
  const r = await convertImage({ source: src, target: out, targetFormat: 'raw' });
  // Like qemu, the odd tail is padded to a whole sector.
  assert.equal(r.virtualSize, Math.ceil(SIZE / 512) * 512);
  assert.equal(fs.statSync(out).size, Math.ceil(SIZE / 512) * 512);
  same(src, out, 'raw', 'raw');
  // Only the data was written: the 1 MiB of explicit zeros became a hole too.
  assert.ok(fs.statSync(out).blocks * 512 < 8 << 20, `allocated ${fs.statSync(out).blocks * 512}`);
  fs.rmSync(out);
});

test('raw → qcow2, plain and compressed, pass qemu-img check and compare', { skip: skipQcow2 }, async () => {
  for (const [name, extra] of [['plain', {}], ['small clusters', { options: { cluster_size: '4096' } }], ['compressed', { compress: true }]] as const) {
    const out = path.join(t.dir, `out-${name.replace(' ', '_')}.qcow2`);
    await convertImage({ source: src, sourceFormat: 'raw', target: out, targetFormat: 'qcow2', ...extra });
    checkClean(out);
    same(src, out, 'raw', 'qcow2');
    fs.rmSync(out);
  }
});

test('qcow2 (written by qemu-img, plain and compressed) → raw and → qcow2', { skip: skipQcow2 }, async () => {
  const q = path.join(t.dir, 'q.qcow2');
  const qc = path.join(t.dir, 'qc.qcow2');
  assert.equal(qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', src, q]).status, 0);
  assert.equal(qemuImg(['convert', '-c', '-f', 'raw', '-O', 'qcow2', src, qc]).status, 0);
  for (const input of [q, qc]) {
    const toRaw = path.join(t.dir, 'back.raw');
    await convertImage({ source: input, target: toRaw, targetFormat: 'raw' });
    same(src, toRaw, 'raw', 'raw');
    const toQ = path.join(t.dir, 'back.qcow2');
    await convertImage({ source: input, target: toQ, targetFormat: 'qcow2' });
    checkClean(toQ);
    same(input, toQ, 'qcow2', 'qcow2');
    fs.rmSync(toRaw);
    fs.rmSync(toQ);
  }
  fs.rmSync(q);
  fs.rmSync(qc);
});

test('a backing chain of depth 3 is flattened; with -B only the top layer is copied', { skip: skipQcow2 }, async () => {
  const d = path.join(t.dir, 'chain');
  fs.mkdirSync(d);
  const base = path.join(d, 'base.qcow2'), mid = path.join(d, 'mid.qcow2'), top = path.join(d, 'top.qcow2');
  assert.equal(qemuImg(['create', '-q', '-f', 'qcow2', base, '3G']).status, 0);
  qemuIo(base, ['write -P 0x11 0 4M', 'write -P 0x12 2047M 2M', 'write -P 0x13 3071M 1M'], 'qcow2');
  assert.equal(qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', mid]).status, 0);
  qemuIo(mid, ['write -P 0x21 1M 1M', 'write -z 2047M 64k', 'write -P 0x22 100M 3M'], 'qcow2');
  assert.equal(qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', top]).status, 0);
  qemuIo(top, ['write -P 0x31 1536k 1M', 'write -z 101M 512k', 'write -P 0x32 3071M 4k'], 'qcow2');

  const flat = path.join(d, 'flat.raw');
  await convertImage({ source: top, target: flat, targetFormat: 'raw' });
  same(top, flat, 'qcow2', 'raw');
  const flatQ = path.join(d, 'flat.qcow2');
  await convertImage({ source: top, target: flatQ, targetFormat: 'qcow2' });
  checkClean(flatQ);
  same(top, flatQ);
  const info = JSON.parse(qemuImg(['info', '--output', 'json', flatQ]).stdout) as Record<string, unknown>;
  assert.equal(info['backing-filename'], undefined);

  // -B: the new image sits on mid's copy and holds only top's own data (and zeros).
  const midCopy = path.join(d, 'mid-copy.qcow2');
  fs.copyFileSync(mid, midCopy);
  const thin = path.join(d, 'thin.qcow2');
  const r = await convertImage({ source: top, target: thin, targetFormat: 'qcow2', backingFile: 'mid-copy.qcow2', backingFormat: 'qcow2' });
  assert.ok(r.dataBytes <= (1 << 20) + 65536, `copied ${r.dataBytes}`); // top's 1 MiB plus the 64k cluster its 4k write allocated
  checkClean(thin);
  same(top, thin);
  const tinfo = JSON.parse(qemuImg(['info', '--output', 'json', thin]).stdout) as Record<string, unknown>;
  assert.equal(tinfo['backing-filename'], 'mid-copy.qcow2');
});

test('failures remove the half-written target and name the file', { skip: skipQemu }, async () => {
  const out = path.join(t.dir, 'fail.raw');
  await assert.rejects(convertImage({ source: src, target: out, targetFormat: 'raw', options: { bogus: '1' } }), (e: ImgportError) => e.code === 'INVALID_ARGUMENT');
  assert.equal(fs.existsSync(out), false);
  await assert.rejects(convertImage({ source: path.join(t.dir, 'missing.raw'), target: out, targetFormat: 'raw' }), (e: ImgportError) => e.code === 'NOT_FOUND' && /missing\.raw/.test(e.file ?? ''));
  assert.equal(fs.existsSync(out), false);
  await assert.rejects(convertImage({ source: src, target: out, targetFormat: 'nope' }), (e: ImgportError) => /unknown format 'nope'/.test(e.message));
  await assert.rejects(convertImage({ source: src, target: src, targetFormat: 'raw' }), /same file/);
  assert.equal(fs.statSync(src).size, SIZE);
  if (hasQcow2) {
    await assert.rejects(convertImage({ source: src, target: '-', targetFormat: 'qcow2' }), /cannot be written to a stream/);
  }
});

test('-n writes into an existing target, zeros included', { skip: skipQemu }, async () => {
  const small = path.join(t.dir, 'small.raw');
  sparseFile(small, 8 << 20, [[0, pattern(8 << 20, 9)]]);
  const srcSmall = path.join(t.dir, 'srcsmall.raw');
  sparseFile(srcSmall, 8 << 20, [[4096, pattern(10, 1)]]);
  await convertImage({ source: srcSmall, target: small, targetFormat: 'raw', noCreate: true });
  same(srcSmall, small, 'raw', 'raw');
  const tiny = path.join(t.dir, 'tiny.raw');
  sparseFile(tiny, 4096, []);
  await assert.rejects(convertImage({ source: srcSmall, target: tiny, targetFormat: 'raw', noCreate: true }), /smaller/);
  assert.equal(fs.existsSync(tiny), true); // -n never deletes the user's target
  if (hasQcow2) {
    // An existing qcow2 full of 0x09: -n overwrites it in place through the device's write().
    const q = path.join(t.dir, 'existing.qcow2');
    assert.equal(qemuImg(['create', '-q', '-f', 'qcow2', q, '8M']).status, 0);
    qemuIo(q, ['write -P 9 0 8M'], 'qcow2');
    await convertImage({ source: srcSmall, target: q, targetFormat: 'qcow2', noCreate: true });
    same(srcSmall, q, 'raw', 'qcow2');
    checkClean(q);
  }
});
