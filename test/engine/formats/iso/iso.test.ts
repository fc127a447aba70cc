import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { openImage } from '../../../../src/engine/block/open.js';
import { convertImage } from '../../../../src/engine/convert/index.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { assertSameAsQemu, ourExtents, qemuInfo, tmpDir } from '../vpc/qemu-helpers.js';

function have(cmd: string): boolean {
  try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; }
}

/** A minimal ISO 9660 image: primary volume descriptor + terminator, some file data. */
function makeIso9660(file: string, blocks: number, claimBlocks = blocks) {
  const b = Buffer.alloc(blocks * 2048);
  const pvd = b.subarray(16 * 2048);
  pvd[0] = 1; pvd.write('CD001', 1, 'latin1'); pvd[6] = 1;
  pvd.write('IMGPORT_TEST'.padEnd(32), 40, 'latin1');
  pvd.writeUInt32LE(claimBlocks, 80); pvd.writeUInt32BE(claimBlocks, 84);
  pvd.writeUInt16LE(1, 120); pvd.writeUInt16BE(1, 122);
  pvd.writeUInt16LE(2048, 128); pvd.writeUInt16BE(2048, 130);
  const term = b.subarray(17 * 2048);
  term[0] = 255; term.write('CD001', 1, 'latin1'); term[6] = 1;
  b.fill(0x5a, 20 * 2048, 21 * 2048 + 100);
  fs.writeFileSync(file, b);
}

function makeUdf(file: string) {
  const b = Buffer.alloc(300 * 2048);
  ['BEA01', 'NSR02', 'TEA01'].forEach((id, i) => { b.write(id, (16 + i) * 2048 + 1, 'latin1'); b[(16 + i) * 2048 + 6] = 1; });
  b.fill(0x33, 260 * 2048, 261 * 2048);
  fs.writeFileSync(file, b);
}

test('iso: ISO 9660 and UDF images are detected as iso and read as raw data', async () => {
  const dir = tmpDir();
  try {
    const files: string[] = [];
    const iso = path.join(dir, 'a.iso');
    makeIso9660(iso, 512);
    files.push(iso);
    const udf = path.join(dir, 'u.img');
    makeUdf(udf);
    files.push(udf);
    if (have('genisoimage') || have('xorriso')) {
      const content = path.join(dir, 'content');
      fs.mkdirSync(content);
      fs.writeFileSync(path.join(content, 'hello.txt'), 'hello world\n'.repeat(1000));
      const real = path.join(dir, 'real.iso');
      if (have('genisoimage')) execFileSync('genisoimage', ['-quiet', '-o', real, '-V', 'REAL', content]);
      else execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-o', real, '-V', 'REAL', content], { stdio: 'ignore' });
      files.push(real);
    }
    for (const f of files) {
      const dev = await openImage(f);
      try {
        assert.equal(dev.format, 'iso', f);
        assert.equal(dev.virtualSize, fs.statSync(f).size);
        // qemu calls it raw; the bytes and size are the same.
        assert.equal(qemuInfo(f).format, 'raw');
        await assertSameAsQemu(dev, f, 'raw', dir);
        assert.deepEqual(await ourExtents(dev), [{ offset: 0, length: dev.virtualSize, kind: 'data', hostOffset: 0 }]);
      } finally {
        await dev.close();
      }
    }
    const d = await openImage(iso);
    assert.deepEqual(d.describe().humanLines, ['volume id: IMGPORT_TEST']);
    await d.close();
    const out = path.join(dir, 'out.raw');
    await convertImage({ source: iso, target: out, targetFormat: 'raw' });
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(iso)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('iso: a truncated image and a lying volume size are refused', async () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'trunc.iso');
    makeIso9660(f, 64, 1000);
    await assert.rejects(openImage(f), (e: unknown) => e instanceof ImgportError && e.code === 'CORRUPT_IMAGE' && e.file === f);
    const g = path.join(dir, 'not.iso');
    fs.writeFileSync(g, Buffer.alloc(40000));
    await assert.rejects(openImage(g, { format: 'iso' }), (e: unknown) => e instanceof ImgportError && e.code === 'CORRUPT_IMAGE');
    // Without a descriptor the file is just raw.
    const d = await openImage(g);
    assert.equal(d.format, 'raw');
    await d.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
