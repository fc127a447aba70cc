import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../../../src/engine/block/open.js';
import { convertImage } from '../../../../src/engine/convert/index.js';
import { vmdkFormat } from '../../../../src/engine/formats/vmdk/index.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { FileSink } from '../../../../src/engine/io/file.js';
import { tmp, sh, qemuIo, qemuInfo, assertSameAsQemu, assertMapMatchesQemu, writeImage, PipeSink, collect } from './util.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
const ODD = 10000896; // not a multiple of the 64 KiB grain

function errCode(code: string, re?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ImgportError, `expected an ImgportError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  };
}

async function readsLikeQemu(file: string, dir: string, ranges?: Array<[number, number]>) {
  const dev = await openImage(file);
  try {
    assert.equal(dev.format, 'vmdk');
    await assertSameAsQemu(dev, file, 'vmdk', dir, ranges);
    await assertMapMatchesQemu(dev, file, 'vmdk');
    return dev.describe();
  } finally {
    await dev.close();
  }
}

test('reads every subformat qemu-img writes, byte for byte and map for map', async () => {
  const t = tmp();
  try {
    for (const sub of ['monolithicSparse', 'monolithicFlat', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat', 'streamOptimized']) {
      const raw = t.p('src.raw');
      sh('qemu-img', ['create', '-f', 'raw', raw, String(ODD)]);
      qemuIo(raw, 'raw', ['write -P 0x5a 0 1M', 'write -P 0x07 3000k 70000', 'write -P 0x33 9999872 1024']);
      const f = t.p(`${sub}.vmdk`);
      sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${sub}`, raw, f]);
      const info = await readsLikeQemu(f, t.dir);
      const q = qemuInfo(f);
      assert.equal(info.formatSpecific!.data['create-type'], q['format-specific'].data['create-type']);
      assert.equal(info.formatSpecific!.data.cid, q['format-specific'].data.cid);
      assert.deepEqual(info.formatSpecific!.data.extents.map((e: any) => [e['virtual-size'], e['cluster-size'], e.format, e.compressed]),
        q['format-specific'].data.extents.map((e: any) => [e['virtual-size'], e['cluster-size'], e.format, e.compressed]));
      if (q['cluster-size']) assert.equal(info.clusterSize, q['cluster-size']);
    }
  } finally { t.cleanup(); }
});

test('empty, fully allocated and zeroed-grain images', async () => {
  const t = tmp();
  try {
    const empty = t.p('empty.vmdk');
    sh('qemu-img', ['create', '-f', 'vmdk', empty, '64M']);
    await readsLikeQemu(empty, t.dir);
    const full = t.p('full.vmdk');
    sh('qemu-img', ['create', '-f', 'vmdk', full, '8M']);
    qemuIo(full, 'vmdk', ['write -P 0x11 0 8M']);
    await readsLikeQemu(full, t.dir);
    const z = t.p('zg.vmdk');
    sh('qemu-img', ['create', '-f', 'vmdk', '-o', 'zeroed_grain=on', z, '8M']);
    qemuIo(z, 'vmdk', ['write -P 0x11 0 4M', 'write -z 1M 1M']);
    await readsLikeQemu(z, t.dir);
    const dev = await openImage(z);
    const ex = await collect(dev.extents(0, dev.virtualSize));
    await dev.close();
    assert.ok(ex.some((e) => e.kind === 'zero' && e.offset === MiB && e.length === MiB), JSON.stringify(ex));
    const emptyStream = t.p('empty-so.vmdk');
    sh('qemu-img', ['convert', '-f', 'vmdk', '-O', 'vmdk', '-o', 'subformat=streamOptimized', empty, emptyStream]);
    await readsLikeQemu(emptyStream, t.dir);
  } finally { t.cleanup(); }
});

test('a > 4 GiB sparse split disk with data straddling 2 GiB and 4 GiB', async () => {
  const t = tmp();
  try {
    const f = t.p('big.vmdk');
    sh('qemu-img', ['create', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', f, '5G']);
    qemuIo(f, 'vmdk', [`write -P 0x41 ${2 * GiB - MiB} 2M`, `write -P 0x42 ${4 * GiB - 100 * 1024} 300k`]);
    const ranges: Array<[number, number]> = [[0, MiB], [2 * GiB - 2 * MiB, 4 * MiB], [4 * GiB - 2 * MiB, 4 * MiB], [5 * GiB - MiB, MiB]];
    await readsLikeQemu(f, t.dir, ranges);
    // The same data in one monolithicSparse file (4 GiB is past 32-bit byte offsets).
    const m = t.p('big-mono.vmdk');
    sh('qemu-img', ['convert', '-O', 'vmdk', f, m]);
    await readsLikeQemu(m, t.dir, ranges);
    // Our writers for the big disk: qemu agrees.
    const src = await openImage(m);
    try {
      for (const sub of ['monolithicSparse', 'streamOptimized', 'twoGbMaxExtentSparse']) {
        const out = t.p(`ours-big-${sub}.vmdk`);
        await writeImage(src, out, 'vmdk', { subformat: sub });
        assert.equal(sh('qemu-img', ['compare', m, out]).trim(), 'Images are identical.');
        assert.equal(qemuInfo(out)['virtual-size'], 5 * GiB);
      }
    } finally { await src.close(); }
  } finally { t.cleanup(); }
});

test('a child with parentFileNameHint reads through its parent', async () => {
  const t = tmp();
  try {
    const base = t.p('base.vmdk');
    sh('qemu-img', ['create', '-f', 'vmdk', base, '16M']);
    qemuIo(base, 'vmdk', ['write -P 0x21 0 8M']);
    const child = t.p('child.vmdk');
    sh('qemu-img', ['create', '-f', 'vmdk', '-b', 'base.vmdk', '-F', 'vmdk', child]);
    qemuIo(child, 'vmdk', ['write -P 0x22 1M 64k']);
    const dev = await openImage(child);
    try {
      assert.ok(dev.backing);
      assert.equal(dev.describe().backingFilename, 'base.vmdk');
      await assertSameAsQemu(dev, child, 'vmdk', t.dir);
    } finally { await dev.close(); }
    // Our own child: parentCID must match the parent's CID for qemu to read it.
    const baseDev = await openImage(base);
    try {
      for (const sub of ['monolithicSparse', 'streamOptimized']) {
        const ours = t.p(`ours-child-${sub}.vmdk`);
        await assert.rejects(vmdkFormat.create!({ sink: await FileSink.create(ours), virtualSize: baseDev.virtualSize, options: { subformat: sub }, backingFile: 'base.vmdk' }),
          errCode('UNSUPPORTED', /parent CID/));
        const sink = await FileSink.create(ours);
        const w = await vmdkFormat.create!({ sink, virtualSize: baseDev.virtualSize, options: { subformat: sub }, backingFile: 'base.vmdk', backingFormat: 'vmdk', backingDevice: baseDev });
        await w.writeData(MiB, Buffer.alloc(65536, 0x23));
        await w.finish();
        await sink.close();
        assert.equal(qemuInfo(ours)['backing-filename'], 'base.vmdk');
        const r = t.p('child.raw');
        sh('qemu-img', ['convert', '-O', 'raw', ours, r]);
        const b = fs.readFileSync(r);
        assert.ok(b.subarray(0, MiB).every((x) => x === 0x21) && b.subarray(MiB, MiB + 65536).every((x) => x === 0x23) && b.subarray(MiB + 65536, 8 * MiB).every((x) => x === 0x21));
        const mine = await openImage(ours);
        await assertSameAsQemu(mine, ours, 'vmdk', t.dir);
        await mine.close();
      }
    } finally { await baseDev.close(); }
  } finally { t.cleanup(); }
});

test('every vmdk we write is accepted by qemu-img (info, compare, check)', async () => {
  const t = tmp();
  try {
    const raw = t.p('src.raw');
    sh('qemu-img', ['create', '-f', 'raw', raw, String(ODD)]);
    qemuIo(raw, 'raw', ['write -P 0x5a 0 1M', 'write -P 0x07 3000k 70000', 'write -P 0x33 9999872 1024']);
    const src = await openImage(raw, { format: 'raw' });
    try {
      const cases: Array<Record<string, string>> = [
        { subformat: 'monolithicSparse' },
        { subformat: 'monolithicSparse', zeroed_grain: 'on' },
        { subformat: 'streamOptimized', adapter_type: 'lsilogic', hwversion: '14' },
        { subformat: 'monolithicFlat', adapter_type: 'buslogic' },
        { subformat: 'twoGbMaxExtentSparse' },
        { subformat: 'twoGbMaxExtentFlat' },
      ];
      for (const o of cases) {
        const out = t.p(`out-${Object.values(o).join('-')}.vmdk`);
        await writeImage(src, out, 'vmdk', o);
        const q = qemuInfo(out);
        assert.equal(q.format, 'vmdk');
        assert.equal(q['virtual-size'], ODD);
        assert.equal(q['format-specific'].data['create-type'], o.subformat);
        assert.equal(sh('qemu-img', ['compare', raw, out]).trim(), 'Images are identical.');
        assert.match(sh('qemu-img', ['check', out]), /No errors were found/);
        await readsLikeQemu(out, t.dir);
        const dev = await openImage(out);
        const rep = await dev.check!({});
        await dev.close();
        assert.equal(rep.corruptions + rep.checkErrors, 0, JSON.stringify(rep));
        const desc = o.subformat.includes('Flat') || o.subformat.startsWith('twoGb') ? fs.readFileSync(out, 'utf8') : '';
        if (o.adapter_type === 'buslogic') assert.match(desc, /ddb\.adapterType = "buslogic"/);
      }
      const so = fs.readFileSync(t.p('out-streamOptimized-lsilogic-14.vmdk'));
      const text = so.subarray(512, 512 * 21).toString('latin1');
      assert.match(text, /ddb\.virtualHWVersion = "14"/);
      assert.match(text, /ddb\.adapterType = "lsilogic"/);
      assert.match(text, /ddb\.geometry\.heads = "255"/);
      assert.match(text, /ddb\.toolsVersion = "\d+"/);
      assert.ok(fs.existsSync(t.p('out-monolithicFlat-buslogic-flat.vmdk')));
    } finally { await src.close(); }
  } finally { t.cleanup(); }
});

test('streamOptimized goes to a non-seekable sink strictly in order', async () => {
  const t = tmp();
  try {
    assert.equal(vmdkFormat.streamable, true);
    const raw = t.p('src.raw');
    sh('qemu-img', ['create', '-f', 'raw', raw, '40M']);
    qemuIo(raw, 'raw', ['write -P 0x5a 0 9M', 'write -P 0x07 33M 70000']);
    fs.appendFileSync(raw, Buffer.alloc(0));
    const src = await openImage(raw, { format: 'raw' });
    const pipe = new PipeSink('pipe.vmdk');
    try {
      await writeImage(src, t.p('pipe.vmdk'), 'vmdk', { subformat: 'streamOptimized' }, pipe);
    } finally { await src.close(); }
    const out = t.p('pipe.vmdk');
    fs.writeFileSync(out, pipe.data);
    assert.equal(sh('qemu-img', ['compare', raw, out]).trim(), 'Images are identical.');
    assert.match(sh('qemu-img', ['check', out]), /No errors were found/);
    assert.equal(qemuInfo(out)['format-specific'].data['create-type'], 'streamOptimized');
  } finally { t.cleanup(); }
});

test('measure gives a size at least as large as what we write', async () => {
  const m = vmdkFormat.measure!(ODD, 2 * MiB, { subformat: 'monolithicSparse' });
  assert.ok(m.required >= 2 * MiB && m.fullyAllocated >= ODD);
  const s = vmdkFormat.measure!(ODD, 2 * MiB, { subformat: 'streamOptimized' });
  assert.ok(s.required > 2 * MiB);
});

test('vmfs, vmfsThin and vmfsSparse (COWD) descriptors read like qemu', async () => {
  const t = tmp();
  try {
    // A flat VMFS extent, as ESX lays out a vmfs / vmfsThin disk.
    const flat = t.p('esx-flat.vmdk');
    const data = Buffer.alloc(2 * MiB);
    for (let i = 0; i < data.length; i += 4096) data.fill((i / 4096) & 0xff, i, i + 512);
    fs.writeFileSync(flat, data);
    for (const ct of ['vmfs', 'vmfsThin']) {
      const d = t.p(`esx-${ct}.vmdk`);
      fs.writeFileSync(d, `# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=fffffffe\nparentCID=ffffffff\nisNativeSnapshot="no"\ncreateType="${ct}"\n\n# Extent description\nRW 4096 VMFS "esx-flat.vmdk"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = "lsilogic"\nddb.uuid = "60 00 C2 9b 3c 1d 2e 4f-9a 8b 7c 6d 5e 4f 3a 2b"\nddb.thinProvisioned = "1"\n`);
      const dev = await openImage(d);
      try {
        assert.equal(dev.describe().formatSpecific!.data['create-type'], ct);
        // qemu 7.2 refuses createType vmfsThin; the bytes are the flat file's.
        if (ct === 'vmfs') await assertSameAsQemu(dev, d, 'vmdk', t.dir);
        const got = Buffer.alloc(data.length);
        await dev.read(got, 0);
        assert.ok(got.equals(data));
      } finally { await dev.close(); }
    }
    // A COWD delta extent: header, one grain directory entry, one 4096-entry table, grains.
    const grainSectors = 16;
    const cowd = Buffer.alloc(512 * 4 + 512 + 4096 * 4 + 3 * grainSectors * 512);
    cowd.write('COWD', 0, 'latin1');
    cowd.writeUInt32LE(1, 4); cowd.writeUInt32LE(3, 8);
    cowd.writeUInt32LE(4096, 12); // sectors (2 MiB)
    cowd.writeUInt32LE(grainSectors, 16);
    cowd.writeUInt32LE(4, 20); // GD at sector 4
    cowd.writeUInt32LE(1, 24); // one GD entry
    cowd.writeUInt32LE(5, 4 * 512); // GT at sector 5
    const gtAt = 5 * 512;
    const grainsAt = (gtAt + 4096 * 4) / 512;
    for (const [k, grain] of [[0, 3], [1, 100], [2, 255]] as const) {
      cowd.writeUInt32LE(grainsAt + k * grainSectors, gtAt + grain * 4);
      cowd.fill(0x40 + k, (grainsAt + k * grainSectors) * 512, (grainsAt + (k + 1) * grainSectors) * 512);
    }
    fs.writeFileSync(t.p('esx-delta.vmdk'), cowd);
    const ds = t.p('esx-snap.vmdk');
    fs.writeFileSync(ds, '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfsSparse"\n\nRW 4096 VMFSSPARSE "esx-delta.vmdk"\n');
    // qemu 7.2 registers a VMFSSPARSE extent twice (its virtual size doubles), so the
    // expected bytes and host offsets are spelled out here instead.
    const dev = await openImage(ds);
    try {
      assert.equal(dev.virtualSize, 2 * MiB);
      const got = Buffer.alloc(2 * MiB);
      await dev.read(got, 0);
      const want = Buffer.alloc(2 * MiB);
      const G = grainSectors * 512;
      want.fill(0x40, 3 * G, 4 * G); want.fill(0x41, 100 * G, 101 * G); want.fill(0x42, 255 * G, 256 * G);
      assert.ok(got.equals(want));
      const ex = (await collect(dev.extents(0, dev.virtualSize))).filter((e) => e.kind === 'data');
      assert.deepEqual(ex.map((e) => [e.offset, e.length, e.hostOffset]), [[3 * G, G, grainsAt * 512], [100 * G, G, (grainsAt + 16) * 512], [255 * G, G, (grainsAt + 32) * 512]]);
    } finally { await dev.close(); }
  } finally { t.cleanup(); }
});

// ---------------------------------------------------------------------------
// Bad input

function patch(file: string, offset: number, bytes: Buffer | number[]) {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from(bytes as any), 0, (bytes as any).length, offset);
  fs.closeSync(fd);
}
function u32(n: number) { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; }
function u64(n: number) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; }

test('bad input is reported as our errors, with no hang and no partial output', async () => {
  const t = tmp();
  try {
    const good = t.p('good.vmdk');
    sh('qemu-img', ['create', '-f', 'vmdk', good, '8M']);
    qemuIo(good, 'vmdk', ['write -P 0x5a 0 1M']);
    const copy = (name: string) => { const f = t.p(name); fs.copyFileSync(good, f); return f; };

    const badGrain = copy('grain.vmdk');
    patch(badGrain, 20, u64(3));
    await assert.rejects(openImage(badGrain), errCode('CORRUPT_IMAGE', /grain size/));

    const badGd = copy('gd.vmdk');
    patch(badGd, 56, u64(1 << 30));
    patch(badGd, 48, u64(1 << 30));
    await assert.rejects(openImage(badGd), errCode('CORRUPT_IMAGE', /grain directory/));

    const badGt = copy('gt.vmdk');
    const gdOff = fs.readFileSync(badGt).readBigUInt64LE(56);
    patch(badGt, Number(gdOff) * 512, u32(0x7fffffff));
    await assert.rejects(openImage(badGt), errCode('CORRUPT_IMAGE', /grain directory entry 0/));

    const hugeCap = copy('cap.vmdk');
    patch(hugeCap, 12, u64(2 ** 50));
    await assert.rejects(openImage(hugeCap), errCode('CORRUPT_IMAGE'));

    // A grain table entry pointing past the end of the file.
    const badGte = copy('gte.vmdk');
    const gd0 = fs.readFileSync(badGte).readUInt32LE(Number(gdOff) * 512);
    patch(badGte, gd0 * 512, u32(0x00ffffff));
    const dev = await openImage(badGte);
    await assert.rejects(dev.read(Buffer.alloc(65536), 0), errCode('CORRUPT_IMAGE', /past the end/));
    const rep = await dev.check!({});
    assert.equal(rep.corruptions, 1, JSON.stringify(rep));
    assert.match(rep.messages[0]!, /points after EOF/);
    await dev.close();
    // convert from it: fails with our error and leaves no target behind.
    const target = t.p('out.raw');
    await assert.rejects(convertImage({ source: badGte, target, targetFormat: 'raw' }), errCode('CORRUPT_IMAGE'));
    assert.equal(fs.existsSync(target), false);

    // streamOptimized: truncated (footer lost) and corrupt compressed grain.
    const so = t.p('so.vmdk');
    const raw = t.p('r.raw');
    sh('qemu-img', ['create', '-f', 'raw', raw, '4M']);
    qemuIo(raw, 'raw', ['write -P 0x5a 0 2M']);
    const src = await openImage(raw, { format: 'raw' });
    await writeImage(src, so, 'vmdk', { subformat: 'streamOptimized' });
    await src.close();
    const trunc = t.p('so-trunc.vmdk');
    fs.writeFileSync(trunc, fs.readFileSync(so).subarray(0, fs.statSync(so).size - 2048));
    await assert.rejects(openImage(trunc), errCode('CORRUPT_IMAGE', /footer/));
    const garbled = t.p('so-garbled.vmdk');
    const b = fs.readFileSync(so);
    b.fill(0xee, 65536 + 12, 65536 + 40); // inside the first grain's deflate stream
    fs.writeFileSync(garbled, b);
    const g = await openImage(garbled);
    await assert.rejects(g.read(Buffer.alloc(4 * MiB), 0), errCode('CORRUPT_IMAGE', /inflate/));
    await assert.rejects(g.read(Buffer.alloc(4096), 0), errCode('CORRUPT_IMAGE', /inflate/));
    await g.close();
    const lying = t.p('so-lying.vmdk');
    const c = fs.readFileSync(so);
    c.writeUInt32LE(0x7fffffff, 65536 + 8); // marker size
    fs.writeFileSync(lying, c);
    const l = await openImage(lying);
    await assert.rejects(l.read(Buffer.alloc(65536), 0), errCode('CORRUPT_IMAGE', /compressed size/));
    await l.close();

    // Descriptors: syntax error (with its line), oversized, escaping extent, self-parent.
    const flatData = t.p('d-flat.vmdk');
    fs.writeFileSync(flatData, Buffer.alloc(1 << 20, 0x61));
    const desc = (body: string) => `# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n${body}\n`;
    const syn = t.p('syntax.vmdk');
    fs.writeFileSync(syn, desc('RW 2048 FLAT "d-flat.vmdk" 0\nthis is not a descriptor line'));
    await assert.rejects(openImage(syn), errCode('CORRUPT_IMAGE', /line 8/));
    const badType = t.p('badtype.vmdk');
    fs.writeFileSync(badType, desc('RW 2048 BOGUS "d-flat.vmdk" 0'));
    await assert.rejects(openImage(badType), errCode('CORRUPT_IMAGE', /line 7.*extent type/));
    const noExt = t.p('noext.vmdk');
    fs.writeFileSync(noExt, desc(''));
    await assert.rejects(openImage(noExt), errCode('CORRUPT_IMAGE', /no extents/));
    const big = t.p('oversized.vmdk');
    fs.writeFileSync(big, desc('RW 2048 FLAT "d-flat.vmdk" 0\n' + '# padding\n'.repeat(120000)));
    await assert.rejects(openImage(big, { format: 'vmdk' }), errCode('CORRUPT_IMAGE', /descriptor/));
    const esc = t.p('escape.vmdk');
    fs.writeFileSync(esc, desc('RW 2048 FLAT "../../etc/passwd" 0'));
    await assert.rejects(openImage(esc), errCode('UNSAFE_IMAGE', /extent/));
    const abs = t.p('abs.vmdk');
    fs.writeFileSync(abs, desc('RW 2048 FLAT "/etc/passwd" 0'));
    await assert.rejects(openImage(abs), errCode('UNSAFE_IMAGE'));
    const notSparse = t.p('notsparse.vmdk');
    fs.writeFileSync(notSparse, desc('RW 2048 SPARSE "notsparse.vmdk"'));
    await assert.rejects(openImage(notSparse), errCode('CORRUPT_IMAGE', /not a hosted sparse extent/));
    const cyc = t.p('cyclic.vmdk');
    fs.writeFileSync(cyc, desc('RW 2048 FLAT "d-flat.vmdk" 0').replace('parentCID=ffffffff', 'parentCID=12345678\nparentFileNameHint="cyclic.vmdk"'));
    await assert.rejects(openImage(cyc), errCode('UNSAFE_IMAGE', /loop/));
    const huge = t.p('huge.vmdk');
    fs.writeFileSync(huge, desc(`RW ${2 ** 45} FLAT "d-flat.vmdk" 0`));
    await assert.rejects(openImage(huge), errCode('CORRUPT_IMAGE'));
    // A good descriptor still works (the fixture itself is fine).
    const ok = t.p('ok.vmdk');
    fs.writeFileSync(ok, desc('RW 2048 FLAT "d-flat.vmdk" 0\nRW 2048 ZERO'));
    const od = await openImage(ok);
    assert.equal(od.virtualSize, 2 * MiB);
    const buf = Buffer.alloc(2 * MiB);
    await od.read(buf, 0);
    assert.ok(buf.subarray(0, MiB).every((x) => x === 0x61) && buf.subarray(MiB).every((x) => x === 0));
    await od.close();
  } finally { t.cleanup(); }
});
