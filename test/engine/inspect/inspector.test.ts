// Unit tests of the inspector's edges: the memory bound of the stream, Glance name
// mapping and declared formats, reference-name rules, descriptor parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FINDING_CODES, StreamInspector, assertSafe, engineToGlanceFormat, glanceToEngineFormat } from '../../../src/engine/inspect/index.js';
import { HEAD_CAP, TAIL_BYTES } from '../../../src/engine/inspect/view.js';
import { dangerousName, isBareName } from '../../../src/engine/inspect/refs.js';
import { parseDescriptor } from '../../../src/engine/inspect/formats/vmdk.js';

const MiB = 1 << 20;

function inspectBytes(b: Uint8Array, opts = {}, chunk = 65536) {
  const s = new StreamInspector(opts);
  for (let o = 0; o < b.length; o += chunk) s.push(b.subarray(o, o + chunk));
  return { verdict: s.finish(), retained: s.retainedBytes };
}

/** A qcow2 v3 header: 64 KiB clusters, the given size and table positions. */
function qcow2Header(size: bigint, l1Offset: bigint, l1Size: number, rtOffset = 0x10000n): Buffer {
  const b = Buffer.alloc(0x30000);
  b.write('QFI\xfb', 0, 'latin1');
  b.writeUInt32BE(3, 4);
  b.writeUInt32BE(16, 20);
  b.writeBigUInt64BE(size, 24);
  b.writeUInt32BE(l1Size, 36);
  b.writeBigUInt64BE(l1Offset, 40);
  b.writeBigUInt64BE(rtOffset, 48);
  b.writeUInt32BE(1, 56);
  b.writeUInt32BE(4, 96);
  b.writeUInt32BE(104, 100);
  return b;
}

test('the stream keeps at most the head cap and the tail, whatever the headers claim', () => {
  // L1 of 4M entries (32 MiB) just below the cap: the inspector must not buffer it.
  const h = qcow2Header(1n << 48n, 8n * BigInt(MiB), 4 * 1024 * 1024);
  const body = Buffer.alloc(64 * MiB);
  h.copy(body);
  const { verdict, retained } = inspectBytes(body, {}, MiB);
  assert.ok(retained <= HEAD_CAP + TAIL_BYTES, `retained ${retained}`);
  assert.equal(verdict.format, 'qcow2');
  assert.equal(verdict.safe, false); // 256 TiB > 4 TiB
  assert.ok(verdict.findings.some((f) => f.code === 'virtual-size-too-large'));
  // A plain raw stream keeps only the minimum.
  const raw = inspectBytes(Buffer.alloc(8 * MiB), {}, MiB);
  assert.ok(raw.retained <= 64 * 1024 + TAIL_BYTES);
  assert.equal(raw.verdict.safe, true);
});

test('a valid small qcow2 header built here passes, and each field edit is caught', () => {
  const size = 1n << 30n;
  const ok = qcow2Header(size, 0x20000n, 2);
  const v = inspectBytes(ok).verdict;
  assert.equal(v.safe, true, JSON.stringify(v));
  assert.equal(v.virtualSize, 2 ** 30);
  const l1Small = qcow2Header(size, 0x20000n, 1);
  assert.ok(inspectBytes(l1Small).verdict.findings.some((f) => f.code === 'size-mismatch'));
  const misaligned = qcow2Header(size, 0x20008n, 2);
  assert.ok(inspectBytes(misaligned).verdict.findings.some((f) => f.code === 'invalid-header'));
  const l2Outside = qcow2Header(size, 0x20000n, 2);
  l2Outside.writeBigUInt64BE((1n << 63n) | (1n << 40n), 0x20000);
  assert.ok(inspectBytes(l2Outside).verdict.findings.some((f) => f.code === 'table-outside-file'));
});

test('declared formats: Glance names, raw aliases, fixed VHD as raw', () => {
  assert.equal(glanceToEngineFormat('vhd'), 'vpc');
  assert.equal(glanceToEngineFormat('ami'), 'raw');
  assert.equal(glanceToEngineFormat('floppy'), undefined);
  assert.equal(engineToGlanceFormat('vpc'), 'vhd');
  assert.equal(engineToGlanceFormat('qcow2'), 'qcow2');
  const raw = Buffer.alloc(MiB);
  for (const f of ['raw', 'ami', 'ari', 'aki']) assert.equal(inspectBytes(raw, { expectedFormat: f }).verdict.safe, true, f);
  assert.equal(inspectBytes(raw, { expectedFormat: 'iso' }).verdict.safe, false);
  // A fixed VHD: raw data plus a footer.
  const vhd = Buffer.alloc(MiB + 512);
  const f = vhd.subarray(MiB);
  f.write('conectix', 0, 'latin1');
  f.writeUInt32BE(2, 8); f.writeUInt32BE(0x00010000, 12);
  f.writeBigUInt64BE(0xffffffffffffffffn, 16);
  f.write('qem2', 28, 'latin1');
  f.writeBigUInt64BE(BigInt(MiB), 40); f.writeBigUInt64BE(BigInt(MiB), 48);
  f.writeUInt32BE(2, 60);
  let sum = 0;
  for (const x of f) sum += x;
  f.writeUInt32BE((~sum) >>> 0, 64);
  const asVhd = inspectBytes(vhd, { expectedFormat: 'vhd' }).verdict;
  assert.equal(asVhd.safe, true, JSON.stringify(asVhd));
  assert.equal(asVhd.subformat, 'fixed');
  assert.equal(asVhd.virtualSize, MiB);
  const asRaw = inspectBytes(vhd, { expectedFormat: 'raw' }).verdict;
  assert.equal(asRaw.safe, true);
  assert.ok(asRaw.findings.some((x) => x.code === 'vhd-fixed-as-raw' && !x.unsafe));
  assert.equal(inspectBytes(vhd, { expectedFormat: 'vhdx' }).verdict.safe, false);
});

test('push after finish is an error; options are checked', () => {
  const s = new StreamInspector();
  s.finish();
  assert.throws(() => s.push(new Uint8Array(1)), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => new StreamInspector({ maxVirtualSize: -1 }), { code: 'INVALID_ARGUMENT' });
});

test('reference names: what counts as dangerous', () => {
  for (const n of ['/etc/passwd', '../x', 'a/../../b', 'json:{"file":{}}', 'nbd://host/x', 'C:\\x', '', 'a\nb']) assert.ok(dangerousName(n), n);
  for (const n of ['base.qcow2', 'sub/dir.img', 'disk-flat.vmdk']) assert.equal(dangerousName(n), null, n);
  assert.equal(isBareName('disk.vmdk'), true);
  assert.equal(isBareName('sub/disk.vmdk'), false);
});

test('VMDK descriptor parsing', () => {
  const d = parseDescriptor('# Disk DescriptorFile\nversion=1\nparentCID=ffffffff\ncreateType="monolithicSparse"\nRW 2048 SPARSE "a.vmdk"\nRDONLY 10 FLAT "b" 5\nRW 7 ZERO\r\nRW x SPARSE\nddb.x = "1"\0RW 1 FLAT "hidden-after-nul"\n');
  assert.equal(d.createType, 'monolithicSparse');
  assert.deepEqual(d.extents.map((e) => [e.access, e.sectors, e.type, e.file]), [['RW', 2048, 'SPARSE', 'a.vmdk'], ['RDONLY', 10, 'FLAT', 'b'], ['RW', 7, 'ZERO', undefined]]);
  assert.deepEqual(d.bad, ['RW x SPARSE']);
  // A text descriptor made only of ZERO extents names no file.
  const text = Buffer.from('# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="custom"\nRW 2048 ZERO\n');
  const v = inspectBytes(text, { allowedVmdkCreateTypes: ['custom'] }).verdict;
  assert.equal(v.format, 'vmdk');
  assert.equal(v.safe, true, JSON.stringify(v));
  assert.equal(v.virtualSize, 2048 * 512);
});

test('an L1 table naming one big L2 table thousands of times is checked in linear time', () => {
  // 2 MiB clusters: one L2 table holds 256 Ki entries; 4096 L1 entries all point at it.
  const cs = 2 * MiB;
  const b = Buffer.alloc(3 * cs);
  b.write('QFI\xfb', 0, 'latin1');
  b.writeUInt32BE(3, 4);
  b.writeUInt32BE(21, 20);
  b.writeBigUInt64BE(4096n * BigInt(cs / 8) * BigInt(cs), 24); // exactly what 4096 L1 entries cover
  b.writeUInt32BE(4096, 36);
  b.writeBigUInt64BE(BigInt(cs), 40); // L1 in cluster 1
  b.writeBigUInt64BE(BigInt(cs) + 65536n, 48); // refcount table after it, same cluster
  b.writeUInt32BE(1, 56);
  b.writeUInt32BE(4, 96);
  b.writeUInt32BE(104, 100);
  for (let i = 0; i < 4096; i++) b.writeBigUInt64BE((1n << 63n) | BigInt(2 * cs), cs + i * 8);
  const s = new StreamInspector({ maxVirtualSize: 2 ** 62 });
  s.push(b);
  const v = s.finish();
  assert.equal(v.format, 'qcow2');
  assert.equal(v.safe, false, JSON.stringify(v)); // the refcount table overlaps the L1 table's cluster: misaligned
});

test('assertSafe throws UnsafeImage with the reasons; every emitted code is documented', () => {
  const h = qcow2Header(1n << 50n, 0x20000n, 2);
  const v = inspectBytes(h).verdict;
  assert.throws(() => assertSafe(v, 'x.qcow2'), (e: Error & { code?: string }) => e.code === 'UNSAFE_IMAGE' && /virtual-size-too-large/.test(e.message));
  const ok = inspectBytes(Buffer.alloc(4096)).verdict;
  assert.equal(assertSafe(ok), ok);
  for (const f of v.findings) assert.ok(f.code in FINDING_CODES, f.code);
});

test('descriptor lines built to make a regex backtrack parse in linear time', { timeout: 20000 }, () => {
  // 'a=' + tabs/blanks + '""x': the old key="value" regex never finished on 40 KiB of it.
  const line = 'a=' + '\t '.repeat(20000) + '""x';
  const d = parseDescriptor(`createType="monolithicSparse"\n${line}\nRW 1 ${'F'.repeat(20000)} "${'x'.repeat(20000)}\n`);
  assert.equal(d.createType, 'monolithicSparse');
  const v = inspectBytes(Buffer.from(`# Disk DescriptorFile\nversion=1\n${line}\n`)).verdict;
  assert.equal(v.format, 'vmdk');
});
