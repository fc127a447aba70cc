// Snapshots both ways with qemu-img, check() against `qemu-img check` on healthy and
// damaged files, repair, resize.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../../../src/engine/block/open.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { hasQemu, tmpdir, qemuImg, qemuImgStatus, qemuIo, info, check, rmrf, assertSameAsRaw, collect } from './helpers.js';

const skip = !hasQemu() && 'qemu-img/qemu-io not installed';
let dir = '';
before(() => { dir = tmpdir(); });
after(() => rmrf(dir));
const MiB = 1024 * 1024;

function clean(img: string): void {
  const c = check(img);
  assert.equal(c.status, 0, JSON.stringify(c));
}

test('snapshots we create are listed by qemu-img and hold the old contents', { skip }, async () => {
  const img = path.join(dir, 'ours.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', img, '8M');
  qemuIo(img, 'write -P 0x11 0 1M', 'write -c -P 0x12 2M 64k', 'write -z 3M 64k');
  const before1 = path.join(dir, 'before1.raw');
  qemuImg('convert', '-O', 'raw', img, before1);
  let dev = await openImage(img, { writable: true });
  await dev.snapshots!.create('snap-a');
  await dev.write!(new Uint8Array(100000).fill(0x21), 500000);
  await dev.write!(new Uint8Array(4096).fill(0x22), 2 * MiB);
  await dev.snapshots!.create('snap-b');
  await dev.write!(new Uint8Array(8192).fill(0x23), 7 * MiB);
  await dev.close();
  clean(img);
  const q = info(img);
  assert.deepEqual(q.snapshots.map((s: any) => [s.id, s.name]), [['1', 'snap-a'], ['2', 'snap-b']]);
  const list = qemuImg('snapshot', '-l', img);
  assert.match(list, /snap-a/);
  const a = path.join(dir, 'a.raw');
  qemuImg('convert', '-O', 'raw', '-l', 'snapshot.name=snap-a', img, a);
  assert.ok(fs.readFileSync(a).equals(fs.readFileSync(before1)));
  // qemu applies our snapshot; we read the result.
  const current = path.join(dir, 'current.raw');
  qemuImg('convert', '-O', 'raw', img, current);
  dev = await openImage(img);
  const view = await dev.snapshots!.open('snap-a');
  await assertSameAsRaw(view, before1);
  await dev.close();

  // Apply and delete through our driver; qemu sees consistent images.
  dev = await openImage(img, { writable: true });
  await dev.snapshots!.apply('snap-a');
  await dev.close();
  clean(img);
  const applied = path.join(dir, 'applied.raw');
  qemuImg('convert', '-O', 'raw', img, applied);
  assert.ok(fs.readFileSync(applied).equals(fs.readFileSync(before1)));
  dev = await openImage(img, { writable: true });
  await dev.snapshots!.delete('snap-a');
  await dev.write!(new Uint8Array(512).fill(0x24), 0);
  await dev.close();
  clean(img);
  assert.deepEqual(info(img).snapshots.map((s: any) => s.name), ['snap-b']);
  qemuImg('snapshot', '-d', 'snap-b', img);
  clean(img);
});

test('check agrees with qemu-img check on qemu images, leaks and corruptions; repair', { skip }, async () => {
  const img = path.join(dir, 'chk.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', img, '64M');
  qemuIo(img, 'write -P 1 0 1M', 'write -P 2 10M 64k', 'write -P 3 5M 64k', 'write -c -P 4 20M 128k');
  qemuImg('snapshot', '-c', 's', img);
  qemuIo(img, 'write -P 5 0 64k');
  const compare = async (p: string) => {
    const q = check(p);
    const dev = await openImage(p);
    const r = await dev.check!({});
    await dev.close();
    assert.equal(r.leaks, q.leaks ?? 0, 'leaks');
    assert.equal(r.corruptions, q.corruptions ?? 0, 'corruptions');
    assert.equal(r.imageEndOffset, q['image-end-offset'], 'image end');
    assert.equal(r.allocatedClusters, q['allocated-clusters'], 'allocated');
    assert.equal(r.fragmentedClusters ?? 0, q['fragmented-clusters'] ?? 0, 'fragmented');
    assert.equal(r.compressedClusters ?? 0, q['compressed-clusters'] ?? 0, 'compressed');
    assert.equal(r.totalClusters, q['total-clusters'], 'total');
    return r;
  };
  await compare(img);

  // A leaked cluster: append one and give it a refcount.
  const leak = path.join(dir, 'leak.qcow2');
  fs.copyFileSync(img, leak);
  const size = fs.statSync(leak).size;
  fs.appendFileSync(leak, Buffer.alloc(65536, 0xee));
  const buf = fs.readFileSync(leak);
  const rt = Number(buf.readBigUInt64BE(48));
  const rb = Number(buf.readBigUInt64BE(rt));
  const fd = fs.openSync(leak, 'r+');
  const one = Buffer.alloc(2); one.writeUInt16BE(1);
  fs.writeSync(fd, one, 0, 2, rb + (size / 65536) * 2);
  fs.closeSync(fd);
  const r = await compare(leak);
  assert.equal(r.leaks, 1);
  let dev = await openImage(leak, { writable: true });
  const fixed = await dev.check!({ repair: 'leaks' });
  await dev.close();
  assert.equal(fixed.leaksFixed, 1);
  assert.equal(fixed.leaks, 0);
  clean(leak);

  // A corruption: a data cluster whose refcount says free.
  const bad = path.join(dir, 'bad.qcow2');
  fs.copyFileSync(img, bad);
  const m: any[] = JSON.parse(qemuImg('map', '--output', 'json', bad));
  const dataOff = m.find((e) => e.data && e.offset && e.start === 10 * MiB).offset;
  const fd2 = fs.openSync(bad, 'r+');
  fs.writeSync(fd2, Buffer.alloc(2), 0, 2, rb + (dataOff / 65536) * 2);
  fs.closeSync(fd2);
  const rc = await compare(bad);
  assert.ok(rc.corruptions >= 1);
  dev = await openImage(bad, { writable: true });
  const rep = await dev.check!({ repair: 'all' });
  await dev.close();
  assert.equal(rep.corruptions, 0);
  clean(bad);
});

test('resize grows (L1 grows) and shrinks only when asked', { skip }, async () => {
  const img = path.join(dir, 'rs.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', img, '1M');
  qemuIo(img, 'write -P 7 0 1M');
  let dev = await openImage(img, { writable: true });
  await dev.resize!(300 * MiB, { shrink: false });
  await dev.write!(new Uint8Array(1000).fill(9), 299 * MiB);
  await dev.close();
  clean(img);
  assert.equal(info(img)['virtual-size'], 300 * MiB);
  const q = qemuImgStatus('compare', '-f', 'qcow2', img, img);
  assert.equal(q.status, 0);
  dev = await openImage(img, { writable: true });
  await assert.rejects(dev.resize!(512 * 1024, { shrink: false }), { code: 'INVALID_ARGUMENT' });
  await dev.resize!(512 * 1024 + 512, { shrink: true });
  await dev.close();
  clean(img);
  assert.equal(info(img)['virtual-size'], 512 * 1024 + 512);
  const raw = path.join(dir, 'rs.raw');
  qemuImg('convert', '-O', 'raw', img, raw);
  assert.ok(fs.readFileSync(raw).every((b) => b === 7));
  // Growing again shows zeros, not the bytes left in the cut cluster.
  dev = await openImage(img, { writable: true });
  await dev.resize!(2 * MiB, { shrink: false });
  await dev.close();
  clean(img);
  qemuImg('convert', '-O', 'raw', img, raw);
  const grown = fs.readFileSync(raw);
  assert.ok(grown.subarray(0, 512 * 1024 + 512).every((b) => b === 7));
  assert.ok(grown.subarray(512 * 1024 + 512).every((b) => b === 0));
});

test('growing an overlay hides the larger backing file (v3 zero clusters, v2 zeros)', { skip }, async () => {
  const base = path.join(dir, 'gbase.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, '4M');
  qemuIo(base, 'write -P 0x42 0 4M');
  for (const compat of ['1.1', '0.10']) {
    const top = path.join(dir, `gtop-${compat}.qcow2`);
    qemuImg('create', '-q', '-f', 'qcow2', '-o', `compat=${compat}`, '-b', 'gbase.qcow2', '-F', 'qcow2', top, '1M');
    const dev = await openImage(top, { writable: true });
    await dev.resize!(3 * MiB + 512, { shrink: false });
    await dev.close();
    clean(top);
    const raw = path.join(dir, `gtop-${compat}.raw`);
    qemuImg('convert', '-O', 'raw', top, raw);
    const b = fs.readFileSync(raw);
    assert.equal(b.length, 3 * MiB + 512);
    assert.ok(b.subarray(0, MiB).every((x) => x === 0x42));
    assert.ok(b.subarray(MiB).every((x) => x === 0), compat);
  }
});

test('dirty image (lazy refcounts, killed): readable, check agrees, writable open repairs', { skip }, async () => {
  const img = path.join(dir, 'dirty.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', img, '16M');
  spawnSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 64k', '-c', 'write -P 2 1M 64k', '-c', 'abort', img]);
  assert.equal(info(img)['dirty-flag'], true);
  const q = check(img);
  const raw = path.join(dir, 'dirty.raw');
  qemuImg('convert', '-O', 'raw', img, raw);
  let dev = await openImage(img);
  assert.equal(dev.describe().dirty, true);
  await assertSameAsRaw(dev, raw);
  const r = await dev.check!({});
  assert.equal(r.corruptions, q.corruptions);
  await dev.close();
  dev = await openImage(img, { writable: true });
  await dev.write!(new Uint8Array(512).fill(3), 2 * MiB);
  await dev.close();
  clean(img);
  assert.equal(info(img)['dirty-flag'], false);
});

test('external data file is read through the policy', { skip }, async () => {
  const img = path.join(dir, 'ext.qcow2');
  // qemu resolves a relative data_file against its working directory at create time.
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'data_file=ext.data', 'ext.qcow2', '4M'], { cwd: dir });
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 3 1M 64k', '-c', 'write -P 4 100k 5k', 'ext.qcow2'], { cwd: dir });
  const raw = path.join(dir, 'ext.raw');
  execFileSync('qemu-img', ['convert', '-O', 'raw', 'ext.qcow2', 'ext.raw'], { cwd: dir });
  const dev = await openImage(img);
  try {
    await assertSameAsRaw(dev, raw);
    const q = JSON.parse(execFileSync('qemu-img', ['info', '--output', 'json', 'ext.qcow2'], { cwd: dir, encoding: 'utf8' }));
    assert.deepEqual(dev.describe().formatSpecific, q['format-specific']);
    assert.equal(dev.describe().dataFile, 'ext.data');
    const data = (await collect(dev)).filter((e) => e.kind === 'data');
    assert.equal(data.find((e) => e.offset === MiB)?.hostOffset, MiB);
  } finally { await dev.close(); }
  const { denyAllReferences } = await import('../../../../src/engine/policy.js');
  await assert.rejects(openImage(img, { policy: denyAllReferences }), { code: 'UNSAFE_IMAGE' });
});

test('persistent bitmaps are counted by check; writing drops them consistently', { skip }, async () => {
  const img = path.join(dir, 'bm.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', img, '64M');
  qemuIo(img, 'write -P 1 0 1M');
  qemuImg('bitmap', '--add', img, 'b0');
  qemuIo(img, 'write -P 2 10M 1M');
  const q = check(img);
  let dev = await openImage(img);
  const r = await dev.check!({});
  await dev.close();
  assert.equal(r.leaks, 0);
  assert.equal(r.corruptions, 0);
  assert.equal(r.imageEndOffset, q['image-end-offset']);
  dev = await openImage(img, { writable: true });
  await dev.write!(new Uint8Array(4096).fill(5), 20 * MiB);
  await dev.close();
  // qemu now ignores the stale bitmaps: their clusters are leaks, for it and for us.
  const after = check(img);
  assert.equal(after.corruptions ?? 0, 0, JSON.stringify(after));
  dev = await openImage(img);
  const r2 = await dev.check!({});
  await dev.close();
  assert.equal(r2.leaks, after.leaks ?? 0);
  assert.ok(r2.leaks > 0);
});

test('snapshots that would overflow refcount_bits=1 are refused before anything changes', { skip }, async () => {
  const img = path.join(dir, 'rc1.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'refcount_bits=1', img, '4M');
  qemuIo(img, 'write -P 1 0 1M');
  const before = fs.readFileSync(img);
  const dev = await openImage(img, { writable: true });
  await assert.rejects(dev.snapshots!.create('s'), { code: 'UNSUPPORTED', message: /refcount_bits=1/ });
  await dev.close();
  assert.ok(fs.readFileSync(img).equals(before));
  clean(img);
});

test('every refcount width: check agrees with qemu, in-place writes keep refcounts exact', { skip }, async () => {
  // 512-byte clusters with 64-bit refcounts: one table cluster covers only 2 MiB, so the table moves.
  for (const [bits, cs] of [[1, '4k'], [2, '4k'], [4, '4k'], [8, '4k'], [16, '4k'], [32, '4k'], [64, '4k'], [64, '512']] as const) {
    const img = path.join(dir, `rw${bits}-${cs}.qcow2`);
    qemuImg('create', '-q', '-f', 'qcow2', '-o', `refcount_bits=${bits},cluster_size=${cs}`, img, '4M');
    const tableBefore = fs.readFileSync(img).readBigUInt64BE(48);
    qemuIo(img, 'write -P 1 0 300k', 'write -P 2 2M 10k');
    const q = check(img);
    let dev = await openImage(img, { writable: true });
    const r = await dev.check!({});
    assert.equal(r.leaks + r.corruptions, 0, `${bits}: ${r.messages.join('; ')}`);
    assert.equal(r.imageEndOffset, q['image-end-offset']);
    // Enough new clusters to need a new refcount block for narrow entries... and a table move.
    await dev.write!(new Uint8Array(3 * MiB).fill(3), 512 * 1024);
    await dev.close();
    clean(img);
    dev = await openImage(img);
    const b = new Uint8Array(4);
    await dev.read(b, 3 * MiB);
    assert.deepEqual([...b], [3, 3, 3, 3]);
    const r2 = await dev.check!({});
    assert.equal(r2.leaks + r2.corruptions, 0, `${bits}`);
    await dev.close();
    if (cs === '512') assert.notEqual(fs.readFileSync(img).readBigUInt64BE(48), tableBefore, 'refcount table moved');
  }
});
