import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../../../src/engine/block/open.js';
import { convertImage } from '../../../../src/engine/convert/index.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { assertMapMatchesQemu, assertSameAsQemu, ourExtents, qemuImg, qemuInfo, qemuIo, tmpDir } from '../vpc/qemu-helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

async function checkAgainstQemu(file: string, dir: string, mapOpts: { subset?: boolean } = {}) {
  const dev = await openImage(file);
  try {
    assert.equal(dev.format, 'qcow');
    const info = qemuInfo(file);
    assert.equal(info.format, 'qcow');
    assert.equal(dev.virtualSize, info['virtual-size']);
    assert.equal(dev.describe().clusterSize, info['cluster-size']);
    await assertSameAsQemu(dev, file, 'qcow', dir);
    await assertMapMatchesQemu(dev, file, 'qcow', mapOpts);
  } finally {
    await dev.close();
  }
}

test('qcow: images written by qemu read like qemu-img reads them', async () => {
  const dir = tmpDir();
  try {
    const cases: Array<[string, string, string[]]> = [
      ['odd.qcow', '33566720', ['write -P 0x5a 0 64k', 'write -P 0x11 1048064 1024', 'write -P 0x22 20000256 512']],
      ['empty.qcow', '10M', []],
      ['big.qcow', '5G', [`write -P 0x5a ${2 * GiB - 4096} 8192`, `write -P 0xa5 ${4 * GiB - 512} 1024`]],
    ];
    for (const [name, size, writes] of cases) {
      const f = path.join(dir, name);
      qemuImg('create', '-q', '-f', 'qcow', f, size);
      if (writes.length) qemuIo('qcow', f, ...writes);
      await checkAgainstQemu(f, dir);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// qemu-img 7.2 `convert -c -O qcow` exits 1 silently, so compressed clusters come from qemu-io's write -c.
test('qcow: compressed clusters (qemu-io write -c) next to plain ones', async () => {
  const dir = tmpDir();
  try {
    const c = path.join(dir, 'c.qcow');
    qemuImg('create', '-q', '-f', 'qcow', c, '3M');
    qemuIo('qcow', c, 'write -c -P 0x5a 0 4k', 'write -P 0x17 4096 1024', 'write -c -P 0x42 1M 4k', 'write -c -P 0x43 1052672 4k', 'write -c -P 0x44 1056768 4k', 'write -P 0x99 2M 512', 'write -c -P 0x77 3141632 4096');
    await checkAgainstQemu(c, dir);
    const d = await openImage(c);
    const ext = await ourExtents(d);
    await d.close();
    assert.ok(ext.some((e) => e.compressed), 'has compressed extents');
    assert.ok(ext.some((e) => e.kind === 'data' && !e.compressed), 'has plain extents');
    // Our own flattening through convert matches qemu's byte for byte.
    const out = path.join(dir, 'out.raw');
    const ref = path.join(dir, 'ref.raw');
    await convertImage({ source: c, target: out, targetFormat: 'raw' });
    qemuImg('convert', '-f', 'qcow', '-O', 'raw', c, ref);
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(ref)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('qcow: backing file through the policy; loops refused', async () => {
  const dir = tmpDir();
  try {
    const base = path.join(dir, 'base.qcow');
    qemuImg('create', '-q', '-f', 'qcow', base, '4M');
    qemuIo('qcow', base, 'write -P 0x11 0 64k', 'write -P 0x12 1M 8k');
    const top = path.join(dir, 'top.qcow');
    qemuImg('create', '-q', '-f', 'qcow', '-b', 'base.qcow', '-F', 'qcow', top);
    qemuIo('qcow', top, 'write -P 0x33 4096 4096');
    const dev = await openImage(top);
    try {
      assert.equal(dev.describe().backingFilename, 'base.qcow');
      assert.ok(dev.backing);
      await assertSameAsQemu(dev, top, 'qcow', dir);
      await assertMapMatchesQemu(dev, top, 'qcow');
    } finally {
      await dev.close();
    }
    // A qcow whose backing file is itself.
    const loop = path.join(dir, 'loop.qcow');
    qemuImg('create', '-q', '-f', 'qcow', '-b', 'loop.qcow', '-F', 'qcow', '-u', loop, '4M');
    await assert.rejects(openImage(loop), (e: unknown) => e instanceof ImgportError && e.code === 'UNSAFE_IMAGE');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('qcow: bad images fail with our errors naming the file', async () => {
  const dir = tmpDir();
  try {
    const good = path.join(dir, 'good.qcow');
    qemuImg('create', '-q', '-f', 'qcow', good, '4M');
    qemuIo('qcow', good, 'write -P 0x5a 0 4k');
    const img = fs.readFileSync(good);
    const l1At = Number(img.readBigUInt64BE(40));
    const variants: Array<[string, (b: Buffer) => Buffer]> = [
      ['truncated header', (b) => b.subarray(0, 20)],
      ['cluster bits', (b) => { b[32] = 30; return b; }],
      ['L1 out of range', (b) => { b.writeBigUInt64BE(1n << 40n, 40); return b; }],
      ['huge size', (b) => { b.writeBigUInt64BE(1n << 60n, 24); return b; }],
      ['L1 entry out of range', (b) => { b.writeBigUInt64BE(1n << 40n, l1At); return b; }],
      ['encrypted', (b) => { b.writeUInt32BE(1, 36); return b; }],
    ];
    for (const [what, mutate] of variants) {
      const f = path.join(dir, `bad-${what.replace(/ /g, '-')}.qcow`);
      fs.writeFileSync(f, mutate(Buffer.from(img)));
      await assert.rejects(openImage(f, { format: 'qcow' }),
        (e: unknown) => e instanceof ImgportError && (e.code === 'CORRUPT_IMAGE' || e.code === 'UNSUPPORTED') && e.file === f, what);
    }
    // Broken compressed data is found at read time, as a CorruptImage.
    const c = path.join(dir, 'c.qcow');
    qemuImg('create', '-q', '-f', 'qcow', c, '1M');
    qemuIo('qcow', c, 'write -c -P 0x61 0 4k');
    const cb = fs.readFileSync(c);
    const d0 = await openImage(c);
    const first = (await ourExtents(d0))[0]!;
    await d0.close();
    assert.ok(first.compressed);
    // Scribble over the compressed data area (after header, L1 and L2 tables).
    cb.fill(0xff, cb.length - 200, cb.length);
    fs.writeFileSync(c, cb);
    const d = await openImage(c);
    try {
      await assert.rejects(d.read(Buffer.alloc(4096), 0), (e: unknown) => e instanceof ImgportError && e.code === 'CORRUPT_IMAGE' && e.file === c);
    } finally {
      await d.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
