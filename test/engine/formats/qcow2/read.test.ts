// Reading qcow2 images made by qemu: every byte against `qemu-img convert -O raw`,
// extents against `qemu-img map`, describe() against `qemu-img info`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../../../src/engine/block/open.js';
import { qcow2 } from '../../../../src/engine/formats/qcow2/index.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { hasQemu, tmpdir, qemuImg, qemuIo, info, assertSameAsRaw, assertMapMatches, rmrf, collect } from './helpers.js';

const skip = !hasQemu() && 'qemu-img/qemu-io not installed';
let dir = '';
before(() => { dir = tmpdir(); });
after(() => rmrf(dir));

const MiB = 1024 * 1024, GiB = 1024 * MiB;

/** Writes a mix of data, zero writes and partial clusters. */
function fill(img: string, size: number): void {
  const cmds = [
    'write -P 0xab 0 64k',
    'write -P 0x11 100k 300k',
    'write -z 1M 128k',
    'write -P 0x5a 1536k 512',
    `write -P 0x77 ${size - 4096} 4096`,
  ];
  if (size > 4 * GiB) cmds.push(`write -P 0x33 ${2 * GiB - 40960} 81920`, `write -P 0x44 ${4 * GiB - 4096} 8192`);
  qemuIo(img, ...cmds);
}

function describeMatches(devInfo: ReturnType<import('../../../../src/engine/block/device.js').BlockDevice['describe']>, img: string): void {
  const q = info(img);
  assert.equal(devInfo.clusterSize, q['cluster-size']);
  assert.equal(devInfo.dirty, q['dirty-flag']);
  assert.deepEqual(devInfo.formatSpecific, q['format-specific']);
  assert.equal(devInfo.backingFilename, q['backing-filename']);
  assert.equal(devInfo.backingFormat, q['backing-filename-format']);
  const qs = (q.snapshots ?? []).map((s: any) => ({ id: s.id, name: s.name, vmStateSize: s['vm-state-size'], dateSec: s['date-sec'], dateNsec: s['date-nsec'], vmClockNsec: s['vm-clock-nsec'] + s['vm-clock-sec'] * 1e9 }));
  const ours = (devInfo.snapshots ?? []).map((s) => ({ id: s.id, name: s.name, vmStateSize: s.vmStateSize, dateSec: s.dateSec, dateNsec: s.dateNsec, vmClockNsec: s.vmClockNsec }));
  assert.deepEqual(ours, qs);
}

const configs: Array<{ name: string; opts: string; size: number; compress?: string }> = [
  { name: 'v3 64k straddling 2G/4G, odd size', opts: 'compat=1.1', size: 4 * GiB + 35840 },
  { name: 'v2 64k', opts: 'compat=0.10', size: 64 * MiB + 1536 },
  { name: 'v3 512-byte clusters', opts: 'cluster_size=512', size: 8 * MiB + 512 },
  { name: 'v3 4k clusters refcount_bits=1', opts: 'cluster_size=4k,refcount_bits=1', size: 16 * MiB },
  { name: 'v3 2M clusters refcount_bits=64', opts: 'cluster_size=2M,refcount_bits=64', size: 64 * MiB + 4096 },
  { name: 'v3 extended_l2 32k', opts: 'cluster_size=32k,extended_l2=on', size: 32 * MiB + 2048 },
  { name: 'v3 lazy_refcounts', opts: 'lazy_refcounts=on', size: 32 * MiB },
  { name: 'v3 zlib compressed', opts: 'compat=1.1', size: 32 * MiB + 512, compress: 'zlib' },
  { name: 'v3 zstd compressed 4k', opts: 'cluster_size=4k', size: 16 * MiB, compress: 'zstd' },
  { name: 'v2 compressed 2M', opts: 'compat=0.10,cluster_size=2M', size: 16 * MiB, compress: 'zlib' },
];

for (const c of configs) {
  test(`read ${c.name}`, { skip }, async () => {
    let img = path.join(dir, `${c.name.replace(/\W+/g, '_')}.qcow2`);
    qemuImg('create', '-q', '-f', 'qcow2', '-o', c.opts, img, String(c.size));
    fill(img, c.size);
    if (c.compress) {
      const src = img;
      img = img.replace('.qcow2', '.c.qcow2');
      qemuImg('convert', '-c', '-O', 'qcow2', '-o', `${c.opts}${c.compress === 'zstd' ? ',compression_type=zstd' : ''}`, src, img);
    }
    const raw = img + '.raw';
    qemuImg('convert', '-O', 'raw', img, raw);
    const dev = await openImage(img);
    try {
      assert.equal(dev.format, 'qcow2');
      await assertSameAsRaw(dev, raw);
      await assertMapMatches(dev, img);
      describeMatches(dev.describe(), img);
      if (c.compress) assert.ok((await collect(dev)).some((e) => e.compressed), 'compressed extents flagged');
      // Unaligned small reads inside and across clusters.
      const b = new Uint8Array(3000);
      await dev.read(b, 100 * 1024 - 1000);
      assert.equal(b[999], 0);
      assert.equal(b[1000], 0x11);
    } finally {
      await dev.close();
      fs.rmSync(raw);
    }
  });
}

test('backing chain of depth 3, and backing not opened', { skip }, async () => {
  const base = path.join(dir, 'base.qcow2'), mid = path.join(dir, 'mid.qcow2'), top = path.join(dir, 'top.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, '8M');
  qemuIo(base, 'write -P 0x01 0 8M');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', mid, '12M');
  qemuIo(mid, 'write -P 0x02 1M 1M', 'write -z 3M 64k');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', '-o', 'cluster_size=4k', top, '16M');
  qemuIo(top, 'write -P 0x03 1536k 10000', 'write -P 0x04 11M 2M');
  const raw = path.join(dir, 'top.raw');
  qemuImg('convert', '-O', 'raw', top, raw);
  const dev = await openImage(top);
  try {
    assert.ok(dev.backing && dev.backing.backing);
    await assertSameAsRaw(dev, raw);
    await assertMapMatches(dev, top);
    describeMatches(dev.describe(), top);
  } finally { await dev.close(); }
  const solo = await openImage(top, { openBacking: false });
  assert.equal(solo.backing, null);
  assert.equal(solo.describe().backingFilename, 'mid.qcow2');
  assert.equal(solo.describe().backingFormat, 'qcow2');
  await solo.close();
});

test('internal snapshots are listed and readable', { skip }, async () => {
  const img = path.join(dir, 'snap.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', img, '8M');
  qemuIo(img, 'write -P 0x61 0 1M');
  qemuImg('snapshot', '-c', 'first', img);
  qemuIo(img, 'write -P 0x62 512k 1M');
  qemuImg('snapshot', '-c', 'second', img);
  qemuIo(img, 'write -P 0x63 0 64k');
  const raw1 = path.join(dir, 'snap1.raw');
  qemuImg('convert', '-O', 'raw', '-l', 'snapshot.name=first', img, raw1);
  const dev = await openImage(img);
  try {
    describeMatches(dev.describe(), img);
    assert.deepEqual(dev.snapshots!.list().map((s) => s.name), ['first', 'second']);
    const s1 = await dev.snapshots!.open('first');
    await assertSameAsRaw(s1, raw1);
    await s1.close();
    const s2 = await dev.snapshots!.open('2');
    const b = new Uint8Array(4);
    await s2.read(b, 0);
    assert.deepEqual([...b], [0x61, 0x61, 0x61, 0x61]);
    await s2.read(b, 1024 * 1024);
    assert.deepEqual([...b], [0x62, 0x62, 0x62, 0x62]);
  } finally { await dev.close(); }
});

// ---- bad input ---------------------------------------------------------------

function patch(file: string, offset: number, bytes: number[]): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  fs.closeSync(fd);
}

async function expectError(file: string, code: string, match: RegExp, readAll = false): Promise<void> {
  const err = await (async () => {
    const dev = await openImage(file, { format: 'qcow2' });
    try {
      if (readAll) { const b = new Uint8Array(dev.virtualSize); await dev.read(b, 0); }
    } finally { await dev.close(); }
  })().then(() => undefined, (e) => e);
  assert.ok(err instanceof ImgportError, `expected an ImgportError, got ${err}`);
  assert.equal(err.code, code, err.message);
  assert.equal(err.file, file);
  assert.match(err.message, match);
}

test('bad input gives CorruptImage / UnsupportedFeature naming the file', { skip }, async () => {
  const good = path.join(dir, 'good.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', good, '4M');
  qemuIo(good, 'write -P 0x9 0 128k');
  const copy = (n: string) => { const p = path.join(dir, n); fs.copyFileSync(good, p); return p; };

  const trunc = copy('trunc.qcow2');
  fs.truncateSync(trunc, 50);
  await expectError(trunc, 'CORRUPT_IMAGE', /too short/);

  const l1past = copy('l1past.qcow2');
  patch(l1past, 40, [0, 0, 0, 1, 0, 0, 0, 0]); // l1_table_offset = 4 GiB
  await expectError(l1past, 'CORRUPT_IMAGE', /L1 table .* past the end/);

  const hugeL1 = copy('hugel1.qcow2');
  patch(hugeL1, 36, [0xff, 0xff, 0xff, 0xff]);
  await expectError(hugeL1, 'CORRUPT_IMAGE', /L1 table size/);

  const hugeSize = copy('hugesize.qcow2');
  patch(hugeSize, 24, [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
  await expectError(hugeSize, 'CORRUPT_IMAGE', /too large/);

  const v4 = copy('v4.qcow2');
  patch(v4, 4, [0, 0, 0, 4]);
  await expectError(v4, 'UNSUPPORTED', /version 4/);
  assert.equal(qcow2.probe({ name: v4, size: 0, head: fs.readFileSync(v4).subarray(0, 512), tail: new Uint8Array() }), 0);
  assert.equal(qcow2.probe({ name: good, size: 0, head: fs.readFileSync(good).subarray(0, 512), tail: new Uint8Array() }), 100);

  const unknownBit = copy('bit40.qcow2');
  patch(unknownBit, 72, [0, 0, 1, 0x00]); // incompatible bit 40
  patch(unknownBit, 79, [0x20]); // and bit 5
  await expectError(unknownBit, 'UNSUPPORTED', /feature bit\(s\): 5, 40/);

  const enc = copy('enc.qcow2');
  patch(enc, 35, [1]);
  await expectError(enc, 'UNSUPPORTED', /encrypted/);

  const snaps = copy('snaps.qcow2');
  patch(snaps, 60, [0x7f, 0xff, 0xff, 0xff]);
  await expectError(snaps, 'CORRUPT_IMAGE', /snapshots exceed/);

  const rt = copy('reftable.qcow2');
  patch(rt, 56, [0, 0x10, 0, 0]);
  await expectError(rt, 'CORRUPT_IMAGE', /refcount table/);

  // A data cluster pointer past the end of the file fails at read time, not at open.
  const l2bad = copy('l2bad.qcow2');
  const buf = fs.readFileSync(l2bad);
  const l1off = Number(buf.readBigUInt64BE(40));
  const l2off = Number(buf.readBigUInt64BE(l1off) & 0x00fffffffffffe00n);
  patch(l2bad, l2off, [0x80, 0, 0, 0x10, 0, 0, 0, 0]);
  await expectError(l2bad, 'CORRUPT_IMAGE', /past the end of the file/, true);
  const l2mis = copy('l2mis.qcow2');
  patch(l2mis, l2off, [0x80, 0, 0, 0, 0, 0, 0x02, 0]);
  await expectError(l2mis, 'CORRUPT_IMAGE', /misaligned/, true);
});

test('extended L2 overlay: unallocated subclusters fall through to the backing file', { skip }, async () => {
  const base = path.join(dir, 'xbase.qcow2'), top = path.join(dir, 'xtop.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, '4M');
  qemuIo(base, 'write -P 0x0b 0 4M');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=64k', '-b', 'xbase.qcow2', '-F', 'qcow2', top, '4M');
  qemuIo(top, 'write -P 0x0c 2k 2k', 'write -z 64k 4k', 'write -P 0x0d 1M 70k', 'write -z 2M 64k');
  const raw = path.join(dir, 'xtop.raw');
  qemuImg('convert', '-O', 'raw', top, raw);
  const dev = await openImage(top);
  try {
    await assertSameAsRaw(dev, raw, 1 << 20);
    await assertMapMatches(dev, top);
  } finally { await dev.close(); }
});

test('randomly damaged metadata gives our errors or data, never a crash', { skip }, async () => {
  const good = path.join(dir, 'fuzz.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', good, '2M');
  qemuIo(good, 'write -P 0x5 0 256k', 'write -c -P 0x6 1M 64k', 'write -z 1536k 8k');
  qemuImg('snapshot', '-c', 'x', good);
  const orig = fs.readFileSync(good);
  const metaEnd = Math.min(orig.length, 64 * 1024);
  let seed = Number(process.env.QCOW2_FUZZ_SEED ?? 7);
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
  const f = path.join(dir, 'fuzzed.qcow2');
  let opened = 0;
  for (let i = 0; i < Number(process.env.QCOW2_FUZZ_ROUNDS ?? 150); i++) {
    const b = Buffer.from(orig);
    for (let k = 0; k < 4; k++) b[rnd(metaEnd)] = rnd(256);
    // Also damage the L2/refcount area past the header cluster now and then.
    if (i % 3 === 0) b[4096 + rnd(metaEnd - 4096)] ^= 0xff;
    fs.writeFileSync(f, b);
    try {
      const dev = await openImage(f, { format: 'qcow2', openBacking: false });
      opened++;
      try {
        const buf = new Uint8Array(Math.min(dev.virtualSize, 4 << 20));
        await dev.read(buf, 0);
        for await (const e of dev.extents(0, buf.length)) void e;
        await dev.check!({});
        for (const s of dev.snapshots!.list()) { const v = await dev.snapshots!.open(s.id); await v.read(new Uint8Array(4096), 0); }
      } finally { await dev.close(); }
    } catch (err) {
      assert.ok(err instanceof ImgportError, `iteration ${i}: ${(err as Error).stack}`);
    }
  }
  assert.ok(opened > 0);
});
