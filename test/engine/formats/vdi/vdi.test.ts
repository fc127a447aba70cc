import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../../../src/engine/block/open.js';
import { convertImage } from '../../../../src/engine/convert/index.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { assertMapMatchesQemu, assertSameAsQemu, qemuCheck, qemuCompare, qemuImg, qemuInfo, qemuIo, tmpDir, writeRawWithPattern } from '../vpc/qemu-helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

async function checkAgainstQemu(file: string, dir: string) {
  const dev = await openImage(file);
  try {
    assert.equal(dev.format, 'vdi');
    const info = qemuInfo(file);
    assert.equal(info.format, 'vdi');
    assert.equal(dev.virtualSize, info['virtual-size']);
    assert.equal(dev.describe().clusterSize, info['cluster-size']);
    await assertSameAsQemu(dev, file, 'vdi', dir);
    await assertMapMatchesQemu(dev, file, 'vdi');
    const rep = await dev.check!({});
    assert.equal(rep.corruptions, 0, rep.messages.join('\n'));
  } finally {
    await dev.close();
  }
}

test('vdi: images written by qemu-img read like qemu-img reads them', async () => {
  const dir = tmpDir();
  try {
    const cases: Array<[string, string, string, string[]]> = [
      ['dyn-odd.vdi', '', '33566720', ['write -P 0x5a 0 64k', 'write -P 0x11 1048064 1024', 'write -P 0x22 20000256 512']],
      ['static.vdi', 'static=on', '16M', ['write -P 0x33 3M 2M']],
      ['empty.vdi', '', '10M', []],
      ['full.vdi', '', '6M', ['write -P 0x77 0 6M']],
      ['big.vdi', '', '5G', [`write -P 0x5a ${2 * GiB - 3 * MiB} 6M`, `write -P 0xa5 ${4 * GiB - 512} 1024`]],
    ];
    for (const [name, opts, size, writes] of cases) {
      const f = path.join(dir, name);
      qemuImg('create', '-q', '-f', 'vdi', ...(opts ? ['-o', opts] : []), f, size);
      if (writes.length) qemuIo('vdi', f, ...writes);
      await checkAgainstQemu(f, dir);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vdi: convert raw -> vdi (dynamic, static) passes qemu-img info/check/compare', async () => {
  const dir = tmpDir();
  try {
    const src = path.join(dir, 'src.raw');
    const size = 30 * MiB + 512;
    writeRawWithPattern(src, size, [[0, 4096, 0x5a], [MiB - 100, 300, 0x17], [9 * MiB, 5 * MiB, 0x42], [size - 512, 512, 0x99]]);
    const uuids = new Set<string>();
    for (const [name, options] of [['d.vdi', {}], ['s.vdi', { static: 'on' }], ['d2.vdi', {}]] as const) {
      const out = path.join(dir, name);
      await convertImage({ source: src, sourceFormat: 'raw', target: out, targetFormat: 'vdi', options: { ...options } });
      const info = qemuInfo(out);
      assert.equal(info.format, 'vdi');
      assert.equal(info['virtual-size'], size);
      const chk = qemuCheck(out, 'vdi');
      assert.equal(chk.status, 0, chk.out);
      assert.equal(qemuCompare(src, 'raw', out, 'vdi').status, 0, `${name} equals source`);
      await checkAgainstQemu(out, dir);
      uuids.add(fs.readFileSync(out).subarray(392, 408).toString('hex'));
    }
    assert.equal(uuids.size, 3, 'each image gets a fresh UUID');
    // Dynamic: only the blocks with data are stored (0, 1 (straddle), 9-13, 30 of 31).
    const dsize = fs.statSync(path.join(dir, 'd.vdi')).size;
    assert.equal(dsize, MiB + 8 * MiB);
    assert.equal(fs.statSync(path.join(dir, 's.vdi')).size, MiB + 31 * MiB);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vdi: bad images fail with our errors naming the file', async () => {
  const dir = tmpDir();
  try {
    const good = path.join(dir, 'good.vdi');
    qemuImg('create', '-q', '-f', 'vdi', good, '16M');
    qemuIo('vdi', good, 'write -P 0x5a 0 3M');
    const img = fs.readFileSync(good);
    const bmapAt = img.readUInt32LE(340);
    const variants: Array<[string, (b: Buffer) => Buffer]> = [
      ['truncated', (b) => b.subarray(0, 300)],
      ['truncated data', (b) => b.subarray(0, b.length - MiB)],
      ['map entry out of range', (b) => { b.writeUInt32LE(1000, bmapAt); return b; }],
      ['lying disk size', (b) => { b.writeBigUInt64LE(1n << 40n, 368); return b; }],
      ['huge block count', (b) => { b.writeUInt32LE(0xfffffff0, 384); return b; }],
      ['map past end', (b) => { b.writeUInt32LE(0xfffff000, 340); return b; }],
      ['block size', (b) => { b.writeUInt32LE(12345, 376); return b; }],
    ];
    for (const [what, mutate] of variants) {
      const f = path.join(dir, `bad-${what.replace(/ /g, '-')}.vdi`);
      fs.writeFileSync(f, mutate(Buffer.from(img)));
      await assert.rejects(openImage(f, { format: 'vdi' }),
        (e: unknown) => e instanceof ImgportError && (e.code === 'CORRUPT_IMAGE' || e.code === 'UNSUPPORTED') && e.file === f, what);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
