import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../../../src/engine/block/open.js';
import { convertImage } from '../../../../src/engine/convert/index.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { vhdChecksum } from '../../../../src/engine/formats/vpc/footer.js';
import { vhdCreateGeometry } from '../../../../src/engine/block/chs.js';
import { vpcFormat } from '../../../../src/engine/formats/vpc/index.js';
import { assertMapMatchesQemu, assertSameAsQemu, ourExtents, qemuCompare, qemuImg, qemuInfo, qemuIo, tmpDir, writeRawWithPattern } from './qemu-helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

async function checkAgainstQemu(file: string, dir: string) {
  const dev = await openImage(file);
  try {
    assert.equal(dev.format, 'vpc');
    assert.equal(dev.virtualSize, qemuInfo(file, 'vpc')['virtual-size']);
    await assertSameAsQemu(dev, file, 'vpc', dir);
    await assertMapMatchesQemu(dev, file, 'vpc');
  } finally {
    await dev.close();
  }
}

test('vpc: images written by qemu-img read like qemu-img reads them', async () => {
  const dir = tmpDir();
  try {
    const cases: Array<[string, string, string[]]> = [
      ['dyn-odd.vhd', '33566777', ['write -P 0x5a 0 64k', 'write -P 0x11 2096640 1024', 'write -P 0x22 20000256 512']],
      ['fixed-odd.vhd', '33566777', ['write -P 0x5a 4096 64k', 'write -P 0x33 2096640 8192']],
      ['dyn-force.vhd', '100000256', ['write -P 0x44 99999744 512']],
      ['fixed-force.vhd', '64M', ['write -P 0x66 1M 3M']],
      ['empty.vhd', '10M', []],
      ['full.vhd', '6M', ['write -P 0x77 0 6M']],
    ];
    for (const [name, size, writes] of cases) {
      const f = path.join(dir, name);
      const opts = `subformat=${name.startsWith('fixed') ? 'fixed' : 'dynamic'}${name.includes('force') ? ',force_size=on' : ''}`;
      qemuImg('create', '-q', '-f', 'vpc', '-o', opts, f, size);
      if (writes.length) qemuIo('vpc', f, ...writes);
      await checkAgainstQemu(f, dir);
    }
    // force_size keeps the exact size; the default rounds to CHS like qemu.
    assert.equal(qemuInfo(path.join(dir, 'fixed-force.vhd'), 'vpc')['virtual-size'], 64 * MiB);
    assert.equal(vhdCreateGeometry(33566777).size, qemuInfo(path.join(dir, 'dyn-odd.vhd'))['virtual-size']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vpc: Hyper-V/Azure style footers (creator "win ", size not CHS-shaped) use the current size, like qemu', async () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'hyperv.vhd');
    qemuImg('create', '-q', '-f', 'vpc', '-o', 'subformat=fixed,force_size=on', f, '30M');
    qemuIo('vpc', f, 'write -P 0x5a 1M 1M');
    const b = fs.readFileSync(f);
    const foot = b.subarray(b.length - 512);
    foot.write('win ', 28, 'latin1');
    // A geometry that spans less than the current size, as Hyper-V writes it.
    foot.writeUInt16BE(900, 56); foot[58] = 4; foot[59] = 17;
    foot.writeUInt32BE(vhdChecksum(foot, 64), 64);
    fs.writeFileSync(f, b);
    assert.equal(qemuInfo(f, 'vpc')['virtual-size'], 30 * MiB);
    await checkAgainstQemu(f, dir);
    // The same footer from Virtual PC ("vpc ") is sized by its geometry.
    foot.write('vpc ', 28, 'latin1');
    foot.writeUInt32BE(vhdChecksum(foot, 64), 64);
    fs.writeFileSync(f, b);
    assert.equal(qemuInfo(f, 'vpc')['virtual-size'], 900 * 4 * 17 * 512);
    await checkAgainstQemu(f, dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vpc: new images get the size qemu-img gives them (CHS rounding, above the CHS limit exact)', () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'g.vhd');
    for (const size of [512, 1000000, 33566777, 2 ** 30 + 12345, 127 * GiB, 136899993600 + 512, 130 * GiB, 2 ** 40]) {
      qemuImg('create', '-q', '-f', 'vpc', f, String(size));
      assert.equal(vhdCreateGeometry(size).size, qemuInfo(f)['virtual-size'], `size ${size}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vpc: a dynamic disk whose footer copies differ is read from the copy at offset 0, like qemu', async () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'copies.vhd');
    qemuImg('create', '-q', '-f', 'vpc', '-o', 'force_size=on', f, '64M');
    qemuIo('vpc', f, 'write -P 0x5a 0 1M');
    const b = fs.readFileSync(f);
    b.writeBigUInt64BE(32n << 20n, 48);
    b.writeUInt32BE(vhdChecksum(b.subarray(0, 512), 64), 64);
    fs.writeFileSync(f, b);
    assert.equal(qemuInfo(f)['virtual-size'], 32 * MiB);
    await checkAgainstQemu(f, dir);
    // With a broken copy at 0 the footer at the end is used.
    b[100] ^= 1;
    fs.writeFileSync(f, b);
    const d = await openImage(f);
    assert.equal(d.virtualSize, 64 * MiB);
    await d.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vpc: > 4 GiB sparse disk with data across 2 GiB and 4 GiB', async () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'big.vhd');
    qemuImg('create', '-q', '-f', 'vpc', f, '5G');
    qemuIo('vpc', f, `write -P 0x5a ${2 * GiB - 3 * MiB} 6M`, `write -P 0xa5 ${4 * GiB - 512} 1024`, `write -P 0x01 ${4 * GiB + 7 * MiB} 64k`);
    await checkAgainstQemu(f, dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vpc: convert raw -> vpc (dynamic, fixed, force_size) passes qemu-img info/compare', async () => {
  const dir = tmpDir();
  try {
    const src = path.join(dir, 'src.raw');
    const size = 50 * MiB + 4096;
    writeRawWithPattern(src, size, [[0, 4096, 0x5a], [2 * MiB - 100, 300, 0x17], [9 * MiB, 5 * MiB, 0x42], [size - 4096, 4096, 0x99]]);
    for (const [name, options] of [['d.vhd', {}], ['f.vhd', { subformat: 'fixed' }], ['ff.vhd', { subformat: 'fixed', force_size: 'on' }], ['df.vhd', { force_size: 'on' }]] as const) {
      const out = path.join(dir, name);
      await convertImage({ source: src, sourceFormat: 'raw', target: out, targetFormat: 'vpc', options: { ...options } });
      // qemu probes only offset 0, so fixed VHDs need -f vpc; dynamic ones are detected.
      const info = qemuInfo(out, 'subformat' in options ? 'vpc' : undefined);
      assert.equal(info.format, 'vpc');
      const expect = 'force_size' in options ? size : vhdCreateGeometry(size).size;
      assert.equal(info['virtual-size'], expect, `${name} virtual size`);
      assert.ok(expect >= size);
      // compare: qemu-img compare treats the extra CHS tail as zeros of the larger image.
      assert.equal(qemuCompare(src, 'raw', out, 'vpc').status, 0, `${name} equals source`);
      if ('subformat' in options) {
        assert.equal(fs.statSync(out).size, expect + 512);
        assert.equal(vpcFormat.measure!(size, size, { ...options }).fullyAllocated, expect + 512);
      } else {
        assert.ok(vpcFormat.measure!(size, size, { ...options }).fullyAllocated >= fs.statSync(out).size);
      }
      await checkAgainstQemu(out, dir);
    }
    // Dynamic output only stores the blocks that hold data: 0, 1, 4-6 and the short last one.
    const ext = await (async () => { const d = await openImage(path.join(dir, 'd.vhd')); try { return await ourExtents(d); } finally { await d.close(); } })();
    assert.equal(ext.filter((e) => e.kind === 'data').reduce((a, e) => a + e.length, 0), 5 * 2 * MiB + 4096);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// --- differencing images, generated from the spec (qemu-img cannot create them)

function be32(b: Buffer, at: number, v: number) { b.writeUInt32BE(v >>> 0, at); }
function be64(b: Buffer, at: number, v: number) { b.writeBigUInt64BE(BigInt(v), at); }

/** A differencing VHD over `parent` holding `sectors` (sector number -> fill byte), block size 2 MiB. */
function makeDifferencing(file: string, parent: string, parentLocator: string, sectors: Map<number, number>, parentName = path.basename(parent), code = 'W2ru') {
  const pf = fs.readFileSync(parent);
  const pfooter = pf.subarray(pf.length - 512);
  const size = Number(pfooter.readBigUInt64BE(48));
  const bs = 2 * MiB;
  const entries = Math.ceil(size / bs);
  const footer = Buffer.from(pfooter);
  be32(footer, 60, 4);
  footer.fill(0x3c, 68, 84); // own unique id
  be64(footer, 16, 512);
  const hdr = Buffer.alloc(1024);
  hdr.write('cxsparse', 0, 'latin1');
  be64(hdr, 8, 2 ** 64 - 1 > 0 ? 0 : 0); hdr.fill(0xff, 8, 16);
  const batAt = 1536;
  const batBytes = Math.ceil(entries * 4 / 512) * 512;
  be64(hdr, 16, batAt);
  be32(hdr, 24, 0x10000);
  be32(hdr, 28, entries);
  be32(hdr, 32, bs);
  pfooter.copy(hdr, 40, 68, 84); // parent unique id
  const pname = Buffer.from(parentName, 'utf16le').swap16();
  pname.copy(hdr, 64);
  const locData = code === 'MacX' ? Buffer.from(parentLocator, 'utf8') : Buffer.from(parentLocator, 'utf16le');
  let next = batAt + batBytes;
  const locAt = next;
  next += 512;
  hdr.write(code, 576, 'latin1');
  be32(hdr, 580, 512);
  be32(hdr, 584, locData.length);
  be64(hdr, 592, locAt);
  be32(hdr, 36, vhdChecksum(hdr, 36));
  const bat = Buffer.alloc(batBytes, 0xff);
  const blocks = new Map<number, Buffer>();
  for (const [s, v] of sectors) {
    const bi = Math.floor((s * 512) / bs);
    let b = blocks.get(bi);
    if (!b) { b = Buffer.alloc(512 + bs); blocks.set(bi, b); }
    const inb = s - (bi * bs) / 512;
    b[inb >> 3] |= 0x80 >> (inb & 7);
    b.fill(v, 512 + inb * 512, 512 + inb * 512 + 512);
  }
  const out = fs.openSync(file, 'w');
  for (const [bi, b] of [...blocks].sort((x, y) => x[0] - y[0])) {
    be32(bat, bi * 4, next / 512);
    fs.writeSync(out, b, 0, b.length, next);
    next += b.length;
  }
  be32(footer, 64, vhdChecksum(footer, 64));
  fs.writeSync(out, footer, 0, 512, 0);
  fs.writeSync(out, hdr, 0, 1024, 512);
  fs.writeSync(out, bat, 0, batBytes, batAt);
  fs.writeSync(out, locData, 0, locData.length, locAt);
  fs.writeSync(out, footer, 0, 512, next);
  fs.closeSync(out);
}

test('vpc: differencing chain reads parent where the bitmap says so', async () => {
  const dir = tmpDir();
  try {
    const parent = path.join(dir, 'parent.vhd');
    qemuImg('create', '-q', '-f', 'vpc', parent, '8M');
    qemuIo('vpc', parent, 'write -P 0x11 0 4M');
    const child = path.join(dir, 'child.vhd');
    makeDifferencing(child, parent, '.\\parent.vhd', new Map([[0, 0xc1], [1, 0xc2], [4095, 0xc3], [8000, 0xc4]]));
    const dev = await openImage(child);
    try {
      assert.equal(dev.describe().backingFilename, 'parent.vhd');
      assert.ok(dev.backing);
      const buf = Buffer.alloc(dev.virtualSize);
      await dev.read(buf, 0);
      const expect = Buffer.alloc(dev.virtualSize);
      expect.fill(0x11, 0, 4 * MiB);
      expect.fill(0xc1, 0, 512); expect.fill(0xc2, 512, 1024);
      expect.fill(0xc3, 4095 * 512, 4096 * 512); expect.fill(0xc4, 8000 * 512, 8001 * 512);
      assert.ok(buf.equals(expect));
      const ext = await ourExtents(dev);
      assert.deepEqual(ext.filter((e) => e.kind === 'data').map((e) => [e.offset, e.length]), [[0, 1024], [4095 * 512, 512], [8000 * 512, 512]]);
    } finally {
      await dev.close();
    }
    // Flattening through convert gives the same bytes.
    const flat = path.join(dir, 'flat.raw');
    await convertImage({ source: child, target: flat, targetFormat: 'raw' });
    const d2 = await openImage(child);
    const all = Buffer.alloc(d2.virtualSize);
    await d2.read(all, 0);
    await d2.close();
    assert.ok(fs.readFileSync(flat).equals(all));

    // A chain that loops back to itself is refused, not followed forever.
    const loop = path.join(dir, 'loop.vhd');
    makeDifferencing(loop, parent, '.\\loop.vhd', new Map([[3, 1]]), 'loop.vhd');
    await assert.rejects(openImage(loop), (e: unknown) => e instanceof ImgportError && e.code === 'UNSAFE_IMAGE');
    // A parent outside the image's directory is refused by the default policy.
    const esc = path.join(dir, 'escape.vhd');
    makeDifferencing(esc, parent, '..\\..\\etc\\shadow.vhd', new Map([[3, 1]]), '..\\..\\etc\\shadow.vhd');
    await assert.rejects(openImage(esc), (e: unknown) => e instanceof ImgportError && e.code === 'UNSAFE_IMAGE');
    // Chains copied off Windows: an absolute W2ku path (or a Mac OS X URL) whose parent sits
    // next to the child is found there; the unique id must still match.
    for (const [code, loc] of [['W2ku', 'C:\\Hyper-V\\Disks\\parent.vhd'], ['MacX', 'file://localhost/Users/x/parent.vhd']]) {
      const moved = path.join(dir, `moved-${code}.vhd`);
      makeDifferencing(moved, parent, loc!, new Map([[3, 0x77]]), 'C:\\Hyper-V\\Disks\\parent.vhd', code);
      const m = await openImage(moved);
      try {
        assert.ok(m.backing, code);
        const b = Buffer.alloc(2048);
        await m.read(b, 0);
        assert.equal(b[0], 0x11);
        assert.equal(b[3 * 512], 0x77);
      } finally {
        await m.close();
      }
    }
    // A parent with another unique id is refused.
    const other = path.join(dir, 'other.vhd');
    makeDifferencing(other, parent, 'parent.vhd', new Map([[3, 1]]));
    const ob = fs.readFileSync(other);
    ob[512 + 40] ^= 0xff;
    ob.writeUInt32BE(vhdChecksum(ob.subarray(512, 1536), 36), 512 + 36);
    fs.writeFileSync(other, ob);
    await assert.rejects(openImage(other), (e: unknown) => e instanceof ImgportError && e.code === 'CORRUPT_IMAGE');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vpc: bad images fail with our errors naming the file', async () => {
  const dir = tmpDir();
  try {
    const good = path.join(dir, 'good.vhd');
    qemuImg('create', '-q', '-f', 'vpc', good, '16M');
    qemuIo('vpc', good, 'write -P 0x5a 0 3M');
    const img = fs.readFileSync(good);
    const variants: Array<[string, (b: Buffer) => Buffer, string]> = [
      ['footer checksum', (b) => { b[b.length - 512 + 48] ^= 1; b[47] ^= 1; b[48] ^= 1; return b; }, 'CORRUPT_IMAGE'],
      ['truncated', (b) => b.subarray(0, 3000), 'CORRUPT_IMAGE'],
      ['BAT out of range', (b) => { b.writeUInt32BE(0x7fffff00, 1536); return b; }, 'CORRUPT_IMAGE'],
      ['lying BAT size', (b) => { const h = b.subarray(512, 1536); h.writeUInt32BE(1, 28); h.writeUInt32BE(vhdChecksum(h, 36), 36); return b; }, 'CORRUPT_IMAGE'],
      ['header checksum', (b) => { b[512 + 33] ^= 0xff; return b; }, 'CORRUPT_IMAGE'],
      ['block size', (b) => { const h = b.subarray(512, 1536); h.writeUInt32BE(3000, 32); h.writeUInt32BE(vhdChecksum(h, 36), 36); return b; }, 'CORRUPT_IMAGE'],
    ];
    for (const [what, mutate, code] of variants) {
      const f = path.join(dir, `bad-${what.replace(/ /g, '-')}.vhd`);
      fs.writeFileSync(f, mutate(Buffer.from(img)));
      await assert.rejects((async () => { const d = await openImage(f, { format: 'vpc' }); try { await assertSameAsQemu(d, f, 'vpc', dir); } finally { await d.close(); } })(),
        (e: unknown) => e instanceof ImgportError && e.code === code && e.file === f, what);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
