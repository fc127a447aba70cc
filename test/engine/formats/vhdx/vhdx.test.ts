import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../../../src/engine/block/open.js';
import { convertImage } from '../../../../src/engine/convert/index.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { crc32c } from '../../../../src/engine/block/crc32c.js';
import { guidToString } from '../../../../src/engine/block/uuid.js';
import * as S from '../../../../src/engine/formats/vhdx/structs.js';
import { assertMapMatchesQemu, assertSameAsQemu, ourExtents, qemuCheck, qemuCompare, qemuImg, qemuInfo, qemuIo, tmpDir, writeRawWithPattern } from '../vpc/qemu-helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

async function checkAgainstQemu(file: string, dir: string) {
  const dev = await openImage(file);
  try {
    assert.equal(dev.format, 'vhdx');
    const info = qemuInfo(file);
    assert.equal(info.format, 'vhdx');
    assert.equal(dev.virtualSize, info['virtual-size']);
    assert.equal(dev.describe().clusterSize, info['cluster-size']);
    await assertSameAsQemu(dev, file, 'vhdx', dir);
    // qemu-img map reports every VHDX byte as data; ours must be a subset of it.
    await assertMapMatchesQemu(dev, file, 'vhdx', { subset: true });
    const rep = await dev.check!({});
    assert.equal(rep.corruptions, 0, rep.messages.join('\n'));
  } finally {
    await dev.close();
  }
}

test('vhdx: images written by qemu-img read like qemu-img reads them', async () => {
  const dir = tmpDir();
  try {
    const cases: Array<[string, string, string, string[]]> = [
      ['dyn-odd.vhdx', '', '33566720', ['write -P 0x5a 0 64k', 'write -P 0x11 8387584 2048', 'write -P 0x22 20000256 512']],
      ['fixed.vhdx', 'subformat=fixed', '20M', ['write -P 0x33 3M 2M']],
      ['bs1m.vhdx', 'block_size=1M', '24M', ['write -P 0x44 1048064 1024', 'write -P 0x45 23M 1M']],
      ['empty.vhdx', '', '10M', []],
      ['full.vhdx', 'block_size=2M', '6M', ['write -P 0x77 0 6M']],
      ['big.vhdx', '', '5G', [`write -P 0x5a ${2 * GiB - 3 * MiB} 6M`, `write -P 0xa5 ${4 * GiB - 512} 1024`]],
    ];
    for (const [name, opts, size, writes] of cases) {
      const f = path.join(dir, name);
      qemuImg('create', '-q', '-f', 'vhdx', ...(opts ? ['-o', opts] : []), f, size);
      if (writes.length) qemuIo('vhdx', f, ...writes);
      await checkAgainstQemu(f, dir);
    }
    // Our map is precise where qemu's is not: only the written blocks are data.
    const d = await openImage(path.join(dir, 'bs1m.vhdx'));
    const ext = await ourExtents(d);
    await d.close();
    assert.deepEqual(ext.filter((e) => e.kind === 'data').map((e) => [e.offset, e.length]), [[0, 2 * MiB], [23 * MiB, MiB]]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vhdx: convert raw -> vhdx (dynamic, fixed, block_size, log_size) passes qemu-img info/check/compare', async () => {
  const dir = tmpDir();
  try {
    const src = path.join(dir, 'src.raw');
    const size = 40 * MiB + 512;
    writeRawWithPattern(src, size, [[0, 4096, 0x5a], [MiB - 100, 300, 0x17], [9 * MiB, 5 * MiB, 0x42], [size - 512, 512, 0x99]]);
    for (const [name, options] of [['d.vhdx', {}], ['f.vhdx', { subformat: 'fixed' }], ['b.vhdx', { block_size: '1M', log_size: '2M' }]] as const) {
      const out = path.join(dir, name);
      await convertImage({ source: src, sourceFormat: 'raw', target: out, targetFormat: 'vhdx', options: { ...options } });
      const info = qemuInfo(out);
      assert.equal(info.format, 'vhdx');
      assert.equal(info['virtual-size'], size);
      const chk = qemuCheck(out, 'vhdx');
      assert.equal(chk.status, 0, chk.out);
      assert.equal(qemuCompare(src, 'raw', out, 'vhdx').status, 0, `${name} equals source`);
      await checkAgainstQemu(out, dir);
    }
    assert.equal(qemuInfo(path.join(dir, 'b.vhdx'))['cluster-size'], MiB);
    // Fixed images are really allocated (every block written), dynamic ones are not.
    const st = fs.statSync(path.join(dir, 'f.vhdx'));
    assert.ok(st.blocks * 512 >= 48 * MiB, `fixed image allocates its blocks (${st.blocks * 512})`);
    assert.ok(fs.statSync(path.join(dir, 'd.vhdx')).size <= 4 * MiB + 3 * 8 * MiB);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// --- images qemu-img cannot make: differencing and dirty logs, generated from the spec

function header(seq: bigint, logGuid: Uint8Array, dataWrite: Uint8Array) {
  return S.buildHeader({ sequence: seq, fileWriteGuid: new Uint8Array(16).fill(1), dataWriteGuid: dataWrite, logGuid, logVersion: 0, version: 1, logLength: MiB, logOffset: MiB }, (b) => crc32c(b, 4));
}

/** A differencing VHDX (block size 1 MiB, 512-byte sectors) over `parentRel` whose given sectors hold fill bytes. */
function makeDifferencing(file: string, size: number, parentRel: string, linkage: string | null, sectors: Map<number, number>) {
  const bs = MiB;
  const fd = fs.openSync(file, 'w');
  const w = (b: Uint8Array, at: number) => fs.writeSync(fd, b, 0, b.length, at);
  const id = Buffer.alloc(64 * 1024); id.write('vhdxfile', 0, 'latin1'); w(id, 0);
  w(header(1n, new Uint8Array(16), new Uint8Array(16).fill(2)), S.HEADER1_AT);
  const rt = Buffer.alloc(S.REGION_SIZE); rt.write('regi', 0, 'latin1'); rt.writeUInt32LE(2, 8);
  Buffer.from(S.BAT_GUID).copy(rt, 16); rt.writeBigUInt64LE(BigInt(3 * MiB), 32); rt.writeUInt32LE(MiB, 40); rt.writeUInt32LE(1, 44);
  Buffer.from(S.METADATA_GUID).copy(rt, 48); rt.writeBigUInt64LE(BigInt(2 * MiB), 64); rt.writeUInt32LE(MiB, 72); rt.writeUInt32LE(1, 76);
  rt.writeUInt32LE(crc32c(rt, 4), 4); w(rt, S.REGION1_AT);
  // metadata
  const md = Buffer.alloc(MiB); md.write('metadata', 0, 'latin1');
  const kv: Array<[string, string]> = [['relative_path', parentRel]];
  if (linkage) kv.push(['parent_linkage', linkage]);
  let loc = Buffer.alloc(20 + kv.length * 12);
  Buffer.from(S.VHDX_PARENT_LOCATOR_TYPE).copy(loc, 0); loc.writeUInt16LE(kv.length, 18);
  const strs: Buffer[] = [];
  let off = loc.length;
  kv.forEach(([k, v], i) => {
    const kb = Buffer.from(k, 'utf16le'), vb = Buffer.from(v, 'utf16le');
    loc.writeUInt32LE(off, 20 + i * 12); off += kb.length; loc.writeUInt32LE(off, 24 + i * 12); off += vb.length;
    loc.writeUInt16LE(kb.length, 28 + i * 12); loc.writeUInt16LE(vb.length, 30 + i * 12); strs.push(kb, vb);
  });
  loc = Buffer.concat([loc, ...strs]);
  const fp = Buffer.alloc(8); fp.writeUInt32LE(bs, 0); fp.writeUInt32LE(2, 4);
  const vs = Buffer.alloc(8); vs.writeBigUInt64LE(BigInt(size));
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
  const items: Array<[Uint8Array, Buffer]> = [[S.FILE_PARAMETERS, fp], [S.VIRTUAL_DISK_SIZE, vs], [S.LOGICAL_SECTOR_SIZE, u32(512)], [S.PHYSICAL_SECTOR_SIZE, u32(512)], [S.PAGE83_DATA, Buffer.alloc(16, 7)], [S.PARENT_LOCATOR, loc]];
  md.writeUInt16LE(items.length, 10);
  let io = 64 * 1024;
  items.forEach(([g, d], i) => { Buffer.from(g).copy(md, 32 + i * 32); md.writeUInt32LE(io, 48 + i * 32); md.writeUInt32LE(d.length, 52 + i * 32); md.writeUInt32LE(4, 56 + i * 32); d.copy(md, io); io += 4096; });
  w(md, 2 * MiB);
  // BAT + blocks: one sector bitmap block for the chunk, blocks stored after it.
  const cr = S.chunkRatio(512, bs);
  const bat = Buffer.alloc(MiB);
  const bdv = new DataView(bat.buffer);
  const sbAt = 4 * MiB;
  const sbm = Buffer.alloc(MiB);
  let next = 5 * MiB;
  const blockAt = new Map<number, number>();
  for (const [s, v] of sectors) {
    const bi = Math.floor(s * 512 / bs);
    if (!blockAt.has(bi)) { blockAt.set(bi, next); S.setBatEntry(bdv, bi + Math.floor(bi / cr), S.PAYLOAD_PARTIALLY_PRESENT, next); next += bs; }
    const bitIndex = bi * (bs / 512) + (s - bi * (bs / 512));
    sbm[bitIndex >> 3] |= 1 << (bitIndex & 7);
    w(Buffer.alloc(512, v), blockAt.get(bi)! + (s * 512 - bi * bs));
  }
  S.setBatEntry(bdv, cr, S.SB_PRESENT, sbAt);
  w(bat, 3 * MiB);
  w(sbm, sbAt);
  fs.ftruncateSync(fd, next);
  fs.closeSync(fd);
}

test('vhdx: differencing chain follows the parent locator and sector bitmaps', async () => {
  const dir = tmpDir();
  try {
    const parent = path.join(dir, 'parent.vhdx');
    qemuImg('create', '-q', '-f', 'vhdx', parent, '8M');
    qemuIo('vhdx', parent, 'write -P 0x11 0 4M');
    const child = path.join(dir, 'child.vhdx');
    makeDifferencing(child, 8 * MiB, '.\\parent.vhdx', null, new Map([[0, 0xc1], [1, 0xc2], [2047, 0xc3], [9000, 0xc4]]));
    const dev = await openImage(child);
    try {
      assert.equal(dev.describe().backingFilename, 'parent.vhdx');
      const buf = Buffer.alloc(dev.virtualSize);
      await dev.read(buf, 0);
      const expect = Buffer.alloc(dev.virtualSize);
      expect.fill(0x11, 0, 4 * MiB);
      expect.fill(0xc1, 0, 512); expect.fill(0xc2, 512, 1024); expect.fill(0xc3, 2047 * 512, 2048 * 512); expect.fill(0xc4, 9000 * 512, 9001 * 512);
      assert.ok(buf.equals(expect));
      const ext = await ourExtents(dev);
      assert.deepEqual(ext.filter((e) => e.kind === 'data').map((e) => [e.offset, e.length]), [[0, 1024], [2047 * 512, 512], [9000 * 512, 512]]);
    } finally {
      await dev.close();
    }
    // A wrong parent_linkage (parent changed since) is refused; loops are refused.
    const stale = path.join(dir, 'stale.vhdx');
    makeDifferencing(stale, 8 * MiB, 'parent.vhdx', '{' + guidToString(new Uint8Array(16).fill(9)) + '}', new Map([[0, 1]]));
    await assert.rejects(openImage(stale), (e: unknown) => e instanceof ImgportError && e.code === 'CORRUPT_IMAGE');
    const loop = path.join(dir, 'loop.vhdx');
    makeDifferencing(loop, 8 * MiB, 'loop.vhdx', null, new Map([[0, 1]]));
    await assert.rejects(openImage(loop), (e: unknown) => e instanceof ImgportError && e.code === 'UNSAFE_IMAGE');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Moves the first BAT page of a clean image into a log entry (as if the crash came before the BAT write). */
function makeDirty(file: string, damage: 'none' | 'crc' | 'descriptor' = 'none') {
  const img = fs.readFileSync(file);
  const batAt = 2 * MiB; // qemu's layout: log at 1 MiB, BAT at 2 MiB
  const page = Buffer.from(img.subarray(batAt, batAt + 4096));
  assert.ok(page.some((x) => x !== 0), 'fixture has BAT entries');
  img.fill(0, batAt, batAt + 4096);
  const logGuid = new Uint8Array(16).fill(0xab);
  const entry = Buffer.alloc(8192);
  entry.write('loge', 0, 'latin1'); entry.writeUInt32LE(8192, 8); entry.writeUInt32LE(0, 12);
  entry.writeBigUInt64LE(1n, 16); entry.writeUInt32LE(1, 24); Buffer.from(logGuid).copy(entry, 32);
  entry.writeBigUInt64LE(BigInt(img.length), 48); entry.writeBigUInt64LE(BigInt(img.length), 56);
  entry.write('desc', 64, 'latin1'); page.copy(entry, 68, 4092, 4096); page.copy(entry, 72, 0, 8);
  entry.writeBigUInt64LE(BigInt(batAt), 80); entry.writeBigUInt64LE(1n, 88);
  entry.write('data', 4096, 'latin1'); entry.writeUInt32LE(0, 4100); page.copy(entry, 4104, 8, 4092); entry.writeUInt32LE(1, 8188);
  if (damage === 'descriptor') entry.writeBigUInt64LE(2n, 88);
  entry.writeUInt32LE(crc32c(entry, 4), 4);
  if (damage === 'crc') entry[5000] ^= 1;
  entry.copy(img, MiB);
  const dw = img.subarray(S.HEADER1_AT + 32, S.HEADER1_AT + 48);
  Buffer.from(header(1n << 62n, logGuid, dw)).copy(img, S.HEADER1_AT);
  fs.writeFileSync(file, img);
}

test('vhdx: a dirty log is replayed in memory, never written; a bad log is refused', async () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'dirty.vhdx');
    qemuImg('create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', f, '16M');
    qemuIo('vhdx', f, 'write -P 0x5a 0 3M', 'write -P 0x6b 9M 512');
    const ref = path.join(dir, 'ref.raw');
    qemuImg('convert', '-f', 'vhdx', '-O', 'raw', f, ref);
    makeDirty(f);
    const before = fs.readFileSync(f);
    const dev = await openImage(f);
    try {
      const buf = Buffer.alloc(dev.virtualSize);
      await dev.read(buf, 0);
      assert.ok(buf.equals(fs.readFileSync(ref)), 'replayed BAT gives the data back');
      const ext = await ourExtents(dev);
      assert.deepEqual(ext.filter((e) => e.kind === 'data').map((e) => [e.offset, e.length]), [[0, 3 * MiB], [9 * MiB, MiB]]);
    } finally {
      await dev.close();
    }
    assert.ok(fs.readFileSync(f).equals(before), 'the source was not modified');

    const bad = path.join(dir, 'badlog.vhdx');
    qemuImg('create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', bad, '16M');
    qemuIo('vhdx', bad, 'write -P 0x5a 0 3M');
    makeDirty(bad, 'descriptor');
    await assert.rejects(openImage(bad), (e: unknown) => e instanceof ImgportError && e.code === 'CORRUPT_IMAGE' && e.file === bad);
    // An entry failing its CRC-32C is a torn write: ignored, as the spec and qemu do, so
    // the BAT page it carried stays as on disk (zeros: the blocks read as unallocated).
    const torn = path.join(dir, 'torn.vhdx');
    qemuImg('create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', torn, '16M');
    qemuIo('vhdx', torn, 'write -P 0x5a 0 3M');
    makeDirty(torn, 'crc');
    const t = await openImage(torn);
    try {
      assert.deepEqual((await ourExtents(t)).filter((e) => e.kind === 'data'), []);
    } finally {
      await t.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vhdx: 4 KiB logical sectors (Hyper-V can make them; qemu cannot open them) read right', async () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, '4k.vhdx');
    qemuImg('create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', f, '16M');
    qemuIo('vhdx', f, 'write -P 0x5a 4096 8192', 'write -P 0x6b 9M 1M');
    const ref = path.join(dir, 'ref.raw');
    qemuImg('convert', '-f', 'vhdx', '-O', 'raw', f, ref);
    const b = fs.readFileSync(f);
    // Find the metadata region (region table) and its logical-sector-size item.
    const rt = b.subarray(S.REGION1_AT, S.REGION1_AT + S.REGION_SIZE);
    let meta = -1;
    for (let i = 0; i < rt.readUInt32LE(8); i++) if (rt.subarray(16 + i * 32, 32 + i * 32).equals(Buffer.from(S.METADATA_GUID))) meta = Number(rt.readBigUInt64LE(32 + i * 32));
    assert.ok(meta > 0);
    let patched = false;
    for (let i = 0; i < b.readUInt16LE(meta + 10); i++) {
      const e = meta + 32 + i * 32;
      if (b.subarray(e, e + 16).equals(Buffer.from(S.LOGICAL_SECTOR_SIZE))) { b.writeUInt32LE(4096, meta + b.readUInt32LE(e + 16)); patched = true; }
    }
    assert.ok(patched);
    fs.writeFileSync(f, b);
    // The sector size changes neither the layout of so small an image nor its contents.
    const dev = await openImage(f);
    try {
      const buf = Buffer.alloc(dev.virtualSize);
      await dev.read(buf, 0);
      assert.ok(buf.equals(fs.readFileSync(ref)));
      assert.deepEqual((await ourExtents(dev)).filter((e) => e.kind === 'data').map((e) => [e.offset, e.length]), [[0, MiB], [9 * MiB, MiB]]);
    } finally {
      await dev.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vhdx: bad images fail with our errors naming the file', async () => {
  const dir = tmpDir();
  try {
    const good = path.join(dir, 'good.vhdx');
    qemuImg('create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', good, '16M');
    qemuIo('vhdx', good, 'write -P 0x5a 0 3M');
    const img = fs.readFileSync(good);
    const fixHeader = (b: Buffer, at: number) => { b.writeUInt32LE(0, at + 4); b.writeUInt32LE(crc32c(b.subarray(at, at + 4096), 4), at + 4); };
    const variants: Array<[string, (b: Buffer) => Buffer]> = [
      ['truncated', (b) => b.subarray(0, 100000)],
      ['both headers bad', (b) => { b[S.HEADER1_AT + 20] ^= 1; b[S.HEADER2_AT + 20] ^= 1; return b; }],
      ['both region tables bad', (b) => { b[S.REGION1_AT + 20] ^= 1; b[S.REGION2_AT + 20] ^= 1; return b; }],
      ['BAT entry out of range', (b) => { b.writeUInt32LE((6 | (0xfff << 20)) >>> 0, 2 * MiB); b.writeUInt32LE(0xfff, 2 * MiB + 4); return b; }],
      ['BAT invalid state', (b) => { b.writeUInt32LE(5, 2 * MiB); return b; }],
      ['log outside file', (b) => { b.fill(0x77, S.HEADER1_AT + 48, S.HEADER1_AT + 64); b.writeBigUInt64LE(1n << 40n, S.HEADER1_AT + 72); b.writeBigUInt64LE(1n << 62n, S.HEADER1_AT + 8); fixHeader(b, S.HEADER1_AT); return b; }],
      ['truncated data', (b) => b.subarray(0, b.length - 2 * MiB)],
      ['regions overlap', (b) => { for (const at of [S.REGION1_AT, S.REGION2_AT]) { const r = b.subarray(at, at + S.REGION_SIZE); for (let i = 0; i < r.readUInt32LE(8); i++) r.writeBigUInt64LE(BigInt(2 * MiB), 32 + i * 32); r.writeUInt32LE(crc32c(r, 4), 4); } return b; }],
    ];
    for (const [what, mutate] of variants) {
      const f = path.join(dir, `bad-${what.replace(/ /g, '-')}.vhdx`);
      fs.writeFileSync(f, mutate(Buffer.from(img)));
      await assert.rejects(openImage(f, { format: 'vhdx' }),
        (e: unknown) => e instanceof ImgportError && (e.code === 'CORRUPT_IMAGE' || e.code === 'UNSUPPORTED') && e.file === f, what);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
