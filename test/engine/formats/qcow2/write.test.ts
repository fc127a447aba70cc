// Writing qcow2: images we create pass `qemu-img check` and `qemu-img compare` with
// their source; measure() agrees with `qemu-img measure`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../../../src/engine/block/open.js';
import { FileSink } from '../../../../src/engine/io/file.js';
import { qcow2 } from '../../../../src/engine/formats/qcow2/index.js';
import { parseSize } from '../../../../src/engine/formats/qcow2/options.js';
import type { BlockDevice } from '../../../../src/engine/block/device.js';
import { hasQemu, tmpdir, qemuImg, qemuImgStatus, qemuIo, info, check, rmrf, collect, assertSameAsRaw } from './helpers.js';

const skip = !hasQemu() && 'qemu-img/qemu-io not installed';
let dir = '';
let source = '';
const MiB = 1024 * 1024, GiB = 1024 * MiB;
const SIZE = 3 * GiB + 3 * 512;

before(() => {
  if (skip) return;
  dir = tmpdir();
  source = path.join(dir, 'source.qcow2');
  // A sparse raw file: compressible patterns, pseudo-random data, data straddling 2 GiB, an odd tail.
  const raw = path.join(dir, 'source.raw');
  const fd = fs.openSync(raw, 'w');
  fs.ftruncateSync(fd, SIZE);
  const put = (off: number, b: Uint8Array) => fs.writeSync(fd, b, 0, b.length, off);
  put(0, Buffer.alloc(MiB, 0xab));
  put(1300 * 1024, Buffer.alloc(1000, 0x3c));
  let x = 12345;
  put(5 * MiB, Buffer.from(Array.from({ length: 3 * MiB }, () => (x = (x * 1103515245 + 12345) >>> 0) >>> 24)));
  put(2 * GiB - 100 * 1024, Buffer.alloc(300 * 1024, 0x71));
  put(SIZE - 5000, Buffer.alloc(5000, 0x19));
  fs.closeSync(fd);
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', raw, source);
  fs.rmSync(raw);
});
after(() => { if (dir) rmrf(dir); });

/** Copies `src` into a new image through our writer, the way convert would: data extents in order. */
async function writeImage(src: BlockDevice, out: string, options: Record<string, string>, compress = false, chunk = 5 * MiB + 512): Promise<void> {
  const sink = await FileSink.create(out);
  const w = await qcow2.create!({ sink, virtualSize: src.virtualSize, options, compress });
  const buf = new Uint8Array(chunk);
  for (const e of await collect(src)) {
    if (e.kind !== 'data') continue;
    for (let off = e.offset; off < e.offset + e.length;) {
      const n = Math.min(chunk, e.offset + e.length - off);
      await src.read(buf.subarray(0, n), off);
      await w.writeData(off, buf.subarray(0, n));
      off += n;
    }
  }
  await w.finish();
  await sink.close();
}

function assertClean(img: string): any {
  const c = check(img);
  assert.equal(c.status, 0, JSON.stringify(c));
  assert.equal(c.leaks ?? 0, 0);
  assert.equal(c.corruptions ?? 0, 0);
  return c;
}

const writeConfigs: Array<{ name: string; options: Record<string, string>; compress?: boolean }> = [
  { name: 'v3 default', options: {} },
  { name: 'v2', options: { compat: '0.10' } },
  { name: '512-byte clusters', options: { cluster_size: '512' } },
  { name: '4k refcount_bits=1', options: { cluster_size: '4k', refcount_bits: '1' } },
  { name: '2M refcount_bits=64', options: { cluster_size: '2M', refcount_bits: '64' } },
  { name: 'extended_l2', options: { cluster_size: '64k', extended_l2: 'on' } },
  { name: 'lazy refcounts', options: { lazy_refcounts: 'on' } },
  { name: 'preallocation=metadata', options: { preallocation: 'metadata', cluster_size: '2M' } },
  { name: 'compressed zlib', options: {}, compress: true },
  { name: 'compressed zstd 4k', options: { compression_type: 'zstd', cluster_size: '4k' }, compress: true },
  { name: 'compressed refcount_bits=1 512', options: { refcount_bits: '1', cluster_size: '512' }, compress: true },
  { name: 'compressed v2 2M', options: { compat: '0.10', cluster_size: '2M' }, compress: true },
];

for (const c of writeConfigs) {
  test(`create ${c.name}`, { skip }, async () => {
    const out = path.join(dir, `${c.name.replace(/\W+/g, '_')}.qcow2`);
    const src = await openImage(source);
    try {
      await writeImage(src, out, c.options, c.compress);
    } finally { await src.close(); }
    const chk = assertClean(out);
    const cmp = qemuImgStatus('compare', '-f', 'qcow2', '-F', 'qcow2', source, out);
    assert.equal(cmp.status, 0, cmp.out);
    const q = info(out);
    assert.equal(q['virtual-size'], SIZE);
    assert.equal(q['cluster-size'], parseSize(c.options.cluster_size ?? '64k', 'cluster_size'));
    // Our reader and checker agree with qemu on what we wrote.
    const dev = await openImage(out);
    try {
      const ours = await dev.check!({});
      assert.equal(ours.leaks, 0);
      assert.equal(ours.corruptions, 0);
      assert.equal(ours.imageEndOffset, chk['image-end-offset']);
      assert.equal(ours.allocatedClusters, chk['allocated-clusters']);
      assert.equal(ours.compressedClusters ?? 0, chk['compressed-clusters'] ?? 0);
      assert.equal(ours.fragmentedClusters ?? 0, chk['fragmented-clusters'] ?? 0);
      if (c.compress) assert.ok((chk['compressed-clusters'] ?? 0) > 0, 'some clusters compressed');
      const b = new Uint8Array(1000);
      await dev.read(b, 1300 * 1024);
      assert.ok(b.every((x) => x === 0x3c));
    } finally { await dev.close(); }
  });
}

test('data clusters are contiguous in guest order', { skip }, async () => {
  const out = path.join(dir, 'layout.qcow2');
  const src = await openImage(source);
  await writeImage(src, out, {});
  await src.close();
  const dev = await openImage(out);
  const data = (await collect(dev)).filter((e) => e.kind === 'data');
  for (let i = 1; i < data.length; i++) assert.ok(data[i]!.hostOffset! > data[i - 1]!.hostOffset!);
  // Runs that touch in guest space are one host run.
  assert.ok(data.length <= 6, JSON.stringify(data));
  await dev.close();
});

test('backing file recorded, zero clusters mask the backing file, never opened', { skip }, async () => {
  const base = path.join(dir, 'wbase.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, '4M');
  qemuIo(base, 'write -P 0x55 0 4M');
  for (const compat of ['1.1', '0.10']) {
    const out = path.join(dir, `wtop-${compat}.qcow2`);
    const sink = await FileSink.create(out);
    const w = await qcow2.create!({ sink, virtualSize: 4 * MiB, options: { compat }, backingFile: 'wbase.qcow2', backingFormat: 'qcow2' });
    await w.writeData(0, new Uint8Array(65536).fill(7));
    await w.writeZero!(65536, 128 * 1024);
    await w.writeData(3 * MiB, new Uint8Array(65536)); // zeros that must hide the backing data
    await w.finish();
    await sink.close();
    assertClean(out);
    const q = info(out);
    assert.equal(q['backing-filename'], 'wbase.qcow2');
    assert.equal(q['backing-filename-format'], 'qcow2');
    const raw = out + '.raw';
    qemuImg('convert', '-O', 'raw', out, raw);
    const r = fs.readFileSync(raw);
    assert.equal(r[0], 7);
    assert.equal(r[65536], 0);
    assert.equal(r[200 * 1024], 0x55);
    assert.equal(r[3 * MiB + 10], 0);
    assert.equal(r[3 * MiB + 65536], 0x55);
  }
});

test('a writer with a backing file refuses partly written clusters instead of zero-filling them', { skip }, async () => {
  const out = path.join(dir, 'partial.qcow2');
  const sink = await FileSink.create(out);
  const w = await qcow2.create!({ sink, virtualSize: 4 * MiB, options: {}, backingFile: 'wbase.qcow2', backingFormat: 'qcow2' });
  await w.writeData(0, new Uint8Array(4096).fill(1));
  await assert.rejects(w.writeData(MiB, new Uint8Array(65536).fill(2)), { code: 'INVALID_ARGUMENT', message: /partly written/ });
  await w.abort();
  await sink.close();
  assert.notEqual(qemuImgStatus('info', '-f', 'qcow2', out).status, 0, 'an aborted image must not open');
});

test('measure matches qemu-img measure', { skip }, async () => {
  for (const [size, opts] of [[GiB, {}], [10 * GiB + 512, { cluster_size: '512' }], [100 * GiB, { cluster_size: '2M', refcount_bits: '64' }], [5 * GiB, { extended_l2: 'on' }], [123456789 * 512, { refcount_bits: '1', cluster_size: '4k' }]] as Array<[number, Record<string, string>]>) {
    const o = Object.entries(opts).map(([k, v]) => `${k}=${v}`).join(',');
    const q = JSON.parse(qemuImg('measure', '--output', 'json', '-O', 'qcow2', ...(o ? ['-o', o] : []), '--size', String(size)));
    const m = qcow2.measure!(size, 0, opts);
    assert.equal(m.fullyAllocated, q['fully-allocated'], `${size} ${o}`);
    assert.equal(m.required, q.required, `${size} ${o}`);
  }
  // From an image: required counts the allocated data (here in whole 64 KiB clusters).
  const q = JSON.parse(qemuImg('measure', '--output', 'json', '-O', 'qcow2', source));
  const src = await openImage(source);
  const C = 65536;
  const allocated = (await collect(src)).filter((e) => e.kind === 'data')
    .reduce((a, e) => a + Math.ceil((e.offset + e.length) / C) * C - Math.floor(e.offset / C) * C, 0);
  await src.close();
  const m = qcow2.measure!(SIZE, allocated, {});
  assert.equal(m.required, q.required);
  assert.equal(m.fullyAllocated, q['fully-allocated']);
});

test('in-place writes: partial clusters, COW from backing, compressed clusters, then check', { skip }, async () => {
  const base = path.join(dir, 'ibase.qcow2'), img = path.join(dir, 'inplace.qcow2'), expect = path.join(dir, 'expect.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, '8M');
  qemuIo(base, 'write -P 0x21 0 8M');
  for (const p of [img, expect]) {
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'ibase.qcow2', '-F', 'qcow2', '-o', 'cluster_size=4k', p, '8M');
    qemuIo(p, 'write -P 0x31 8k 8k', 'write -c -P 0x41 64k 4k', 'write -z 128k 8k');
  }
  const writes: Array<[number, number, number]> = [[100, 50, 0x61], [8192 + 4000, 300, 0x62], [64 * 1024 + 10, 20, 0x63], [128 * 1024 + 5, 5000, 0x64], [5 * MiB - 3, 9000, 0x65], [8 * MiB - 512, 512, 0x66]];
  qemuIo(expect, ...writes.map(([o, n, p]) => `write -P ${p} ${o} ${n}`), 'write -P 0x67 4096 1M', 'write -P 0x68 4096 20480');
  const dev = await openImage(img, { writable: true });
  // Issued concurrently: the device must serialize its metadata updates.
  await Promise.all(writes.map(([o, n, p]) => dev.write!(new Uint8Array(n).fill(p), o)));
  // Whole-cluster runs over allocated, compressed, zero and unallocated clusters, then in place.
  await dev.write!(new Uint8Array(MiB).fill(0x67), 4096);
  await dev.write!(new Uint8Array(20480).fill(0x68), 4096);
  await dev.close();
  assertClean(img);
  const cmp = qemuImgStatus('compare', img, expect);
  assert.equal(cmp.status, 0, cmp.out);
});


test('host offsets above 4 GiB (preallocated sparse image), written and rewritten in place', { skip }, async () => {
  const out = path.join(dir, 'big-prealloc.qcow2');
  const size = 5 * GiB + 512;
  const sink = await FileSink.create(out);
  const w = await qcow2.create!({ sink, virtualSize: size, options: { preallocation: 'metadata', cluster_size: '2M' } });
  await w.writeData(4 * GiB - 4096, new Uint8Array(8192).fill(0x4a));
  await w.writeData(4.5 * GiB, new Uint8Array(3 * MiB).fill(0x4b));
  await w.writeData(size - 512, new Uint8Array(512).fill(0x4c));
  await w.finish();
  await sink.close();
  assertClean(out);
  let dev = await openImage(out, { writable: true });
  await dev.write!(new Uint8Array(1000).fill(0x4d), 4.5 * GiB + 100);
  await dev.close();
  assertClean(out);
  dev = await openImage(out);
  const b = new Uint8Array(12000);
  await dev.read(b, 4 * GiB - 6000);
  assert.equal(b[1903], 0);
  assert.equal(b[1904], 0x4a);
  assert.equal(b[1904 + 8191], 0x4a);
  assert.equal(b[1904 + 8192], 0);
  const c = new Uint8Array(1200);
  await dev.read(c, 4.5 * GiB);
  assert.equal(c[99], 0x4b);
  assert.equal(c[100], 0x4d);
  assert.equal(c[1100], 0x4b);
  const [ext] = await collect(dev, 4.5 * GiB, MiB);
  assert.equal(ext!.kind, 'data');
  assert.equal(ext!.hostOffset, 2 * MiB + 4.5 * GiB);
  await dev.close();
  const raw = path.join(dir, 'big-prealloc.raw');
  qemuImg('convert', '-O', 'raw', out, raw);
  const fd = fs.openSync(raw, 'r');
  const r = Buffer.alloc(1200);
  fs.readSync(fd, r, 0, 1200, 4.5 * GiB);
  fs.closeSync(fd);
  assert.ok(Buffer.from(c).equals(r));
  fs.rmSync(raw);
});

test('create options are validated', async () => {
  const { parseCreateOptions } = await import('../../../../src/engine/formats/qcow2/options.js');
  assert.equal(parseCreateOptions({}).version, 3);
  assert.equal(parseCreateOptions({ compat: '0.10' }).version, 2);
  assert.equal(parseCreateOptions({ cluster_size: '2M' }).clusterBits, 21);
  for (const bad of [{ cluster_size: '3k' }, { cluster_size: '4M' }, { compat: '0.10', refcount_bits: '8' }, { compat: '0.10', compression_type: 'zstd' },
    { extended_l2: 'on', cluster_size: '4k' }, { refcount_bits: '3' }, { lazy_refcounts: 'maybe' }, { nosuch: '1' }, { backing_fmt: 'raw' }]) {
    assert.throws(() => parseCreateOptions(bad as Record<string, string>), { code: 'INVALID_ARGUMENT' }, JSON.stringify(bad));
  }
  assert.throws(() => parseCreateOptions({ preallocation: 'full' }), { code: 'UNSUPPORTED' });
  const sinkless = { name: 'x', seekable: false, write: async () => {}, sync: async () => {}, close: async () => {} };
  await assert.rejects(qcow2.create!({ sink: sinkless, virtualSize: 1, options: {} }), { code: 'UNSUPPORTED' });
});
