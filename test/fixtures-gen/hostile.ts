// Generates the inspector's corpus: benign images of every format (made by qemu-img)
// and hostile ones (qemu-img output edited by the small writers below, or written from
// scratch). Nothing here is committed as a blob; every file is rebuilt from this code.
//
//   node --import tsx test/fixtures-gen/hostile.ts DIR    writes the corpus to DIR and prints it
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from '@node-rs/crc32';

export interface CorpusCase {
  name: string;
  file: string;
  /** Expected verdict; `codes` must all appear among the unsafe findings. */
  safe: boolean;
  format: string;
  codes?: string[];
  /** For benign cases: the qemu format to ask `qemu-img info -f` for the virtual size. */
  qemuFormat?: string;
  opts?: import('../../src/engine/inspect/index.js').InspectOptions;
  /** Names the image refers to (must never be opened). */
  names?: string[];
}

const KiB = 1024;
const MiB = 1024 * KiB;

function qemuImg(args: string[], cwd: string): void {
  execFileSync('qemu-img', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}
function qemuIo(file: string, fmt: string, cmds: string[], cwd: string): void {
  execFileSync('qemu-io', ['-f', fmt, ...cmds.flatMap((c) => ['-c', c]), file], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}
/** A tiny deterministic PRNG (mulberry32), so "random" corpus files are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function edit(file: string, fn: (b: Buffer) => Buffer | void): void {
  const b = fs.readFileSync(file);
  const out = fn(b) ?? b;
  fs.writeFileSync(file, out);
}
function patchAt(file: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try { fs.writeSync(fd, data, 0, data.length, offset); } finally { fs.closeSync(fd); }
}
function readAt(file: string, offset: number, len: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try { const b = Buffer.alloc(len); fs.readSync(fd, b, 0, len, offset); return b; } finally { fs.closeSync(fd); }
}

/** Walks qcow2 header extensions; returns [offset of the extension header, type, length]. */
function qcow2Extensions(b: Buffer): Array<[number, number, number]> {
  const version = b.readUInt32BE(4);
  let off = version >= 3 ? b.readUInt32BE(100) : 72;
  const out: Array<[number, number, number]> = [];
  while (off + 8 <= b.length) {
    const type = b.readUInt32BE(off);
    const len = b.readUInt32BE(off + 4);
    if (type === 0) break;
    out.push([off, type, len]);
    off += 8 + Math.ceil(len / 8) * 8;
  }
  return out;
}

/** VHD footer checksum: ones' complement of the byte sum, the checksum field excluded. */
function vhdChecksum(f: Buffer): void {
  f.writeUInt32BE(0, 64);
  let s = 0;
  for (const x of f) s += x;
  f.writeUInt32BE((~s) >>> 0, 64);
}
function vhdDynChecksum(d: Buffer): void {
  d.writeUInt32BE(0, 36);
  let s = 0;
  for (const x of d) s += x;
  d.writeUInt32BE((~s) >>> 0, 36);
}

/** A minimal ISO 9660 image: empty system area, a primary volume descriptor, a terminator. */
export function writeIso(file: string, blocks = 64): void {
  const b = Buffer.alloc(blocks * 2048);
  const pvd = 0x8000;
  b[pvd] = 1; b.write('CD001', pvd + 1, 'latin1'); b[pvd + 6] = 1;
  b.write('IMGPORT'.padEnd(32), pvd + 40, 'latin1');
  b.writeUInt32LE(blocks, pvd + 80); b.writeUInt32BE(blocks, pvd + 84);
  b.writeUInt16LE(1, pvd + 120); b.writeUInt16BE(1, pvd + 122);
  b.writeUInt16LE(1, pvd + 124); b.writeUInt16BE(1, pvd + 126);
  b.writeUInt16LE(2048, pvd + 128); b.writeUInt16BE(2048, pvd + 130);
  const term = pvd + 2048;
  b[term] = 255; b.write('CD001', term + 1, 'latin1'); b[term + 6] = 1;
  fs.writeFileSync(file, b);
}

/** GPT on a raw file through sfdisk (one partition), for benign and hostile partition-table cases. */
function rawWithTable(file: string, size: number, label: 'gpt' | 'dos'): void {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  execFileSync('sfdisk', ['--quiet', file], { input: `label: ${label}\nstart=2048, type=${label === 'gpt' ? 'L' : '83'}\n`, stdio: ['pipe', 'ignore', 'pipe'] });
}
/** Recomputes the primary GPT header CRC after an edit. */
function gptHeaderCrc(file: string): void {
  const h = readAt(file, 512, 92);
  h.writeUInt32LE(0, 16);
  h.writeUInt32LE(crc32(h) >>> 0, 16);
  patchAt(file, 512, h);
}

export function generateCorpus(dir: string): CorpusCase[] {
  const cases: CorpusCase[] = [];
  const p = (n: string) => path.join(dir, n);
  const add = (c: CorpusCase) => cases.push(c);

  // ---------------------------------------------------------------- benign
  qemuImg(['create', '-q', '-f', 'qcow2', 'ok-v3.qcow2', '1G'], dir);
  qemuIo('ok-v3.qcow2', 'qcow2', ['write -P 0xab 0 1M', 'write -P 0xcd 512M 64k'], dir);
  add({ name: 'qcow2 v3 with data', file: p('ok-v3.qcow2'), safe: true, format: 'qcow2', qemuFormat: 'qcow2' });
  qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', 'ok-v2.qcow2', '100M'], dir);
  add({ name: 'qcow2 v2', file: p('ok-v2.qcow2'), safe: true, format: 'qcow2', qemuFormat: 'qcow2' });
  qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=2M,extended_l2=on', 'ok-2m.qcow2', '10G'], dir);
  add({ name: 'qcow2 2M clusters, extended L2', file: p('ok-2m.qcow2'), safe: true, format: 'qcow2', qemuFormat: 'qcow2' });
  qemuImg(['snapshot', '-c', 'snap1', 'ok-v3.qcow2'], dir);
  qemuImg(['create', '-q', '-f', 'qcow2', 'ok-snap.qcow2', '64M'], dir);
  qemuIo('ok-snap.qcow2', 'qcow2', ['write -P 1 0 128k'], dir);
  qemuImg(['snapshot', '-c', 'snap1', 'ok-snap.qcow2'], dir);
  qemuIo('ok-snap.qcow2', 'qcow2', ['write -P 2 0 64k'], dir);
  add({ name: 'qcow2 with a snapshot', file: p('ok-snap.qcow2'), safe: true, format: 'qcow2', qemuFormat: 'qcow2' });
  fs.writeFileSync(p('data.raw'), Buffer.alloc(3 * MiB, 0x5a));
  qemuImg(['convert', '-q', '-c', '-O', 'qcow2', 'data.raw', 'ok-compressed.qcow2'], dir);
  add({ name: 'qcow2 compressed', file: p('ok-compressed.qcow2'), safe: true, format: 'qcow2', qemuFormat: 'qcow2' });
  qemuImg(['create', '-q', '-f', 'qcow', 'ok.qcow', '100M'], dir);
  add({ name: 'qcow v1', file: p('ok.qcow'), safe: true, format: 'qcow', qemuFormat: 'qcow' });
  qemuImg(['convert', '-q', '-O', 'vmdk', 'data.raw', 'ok-sparse.vmdk'], dir);
  add({ name: 'vmdk monolithicSparse', file: p('ok-sparse.vmdk'), safe: true, format: 'vmdk', qemuFormat: 'vmdk' });
  qemuImg(['convert', '-q', '-O', 'vmdk', '-o', 'subformat=streamOptimized', 'data.raw', 'ok-stream.vmdk'], dir);
  add({ name: 'vmdk streamOptimized', file: p('ok-stream.vmdk'), safe: true, format: 'vmdk', qemuFormat: 'vmdk' });
  qemuImg(['create', '-q', '-f', 'vpc', 'ok-dynamic.vhd', '100M'], dir);
  qemuIo('ok-dynamic.vhd', 'vpc', ['write -P 3 0 3M'], dir);
  add({ name: 'vhd dynamic', file: p('ok-dynamic.vhd'), safe: true, format: 'vhd', qemuFormat: 'vpc' });
  qemuImg(['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', 'ok-fixed.vhd', '16M'], dir);
  add({ name: 'vhd fixed', file: p('ok-fixed.vhd'), safe: true, format: 'vhd', qemuFormat: 'vpc' });
  qemuImg(['create', '-q', '-f', 'vpc', '-o', 'force_size=on', 'ok-forcesize.vhd', '1000M'], dir);
  add({ name: 'vhd dynamic, force_size', file: p('ok-forcesize.vhd'), safe: true, format: 'vhd', qemuFormat: 'vpc' });
  qemuImg(['create', '-q', '-f', 'vhdx', 'ok.vhdx', '1G'], dir);
  qemuIo('ok.vhdx', 'vhdx', ['write -P 4 0 2M'], dir);
  add({ name: 'vhdx dynamic', file: p('ok.vhdx'), safe: true, format: 'vhdx', qemuFormat: 'vhdx' });
  qemuImg(['create', '-q', '-f', 'vdi', 'ok-dynamic.vdi', '100M'], dir);
  qemuIo('ok-dynamic.vdi', 'vdi', ['write -P 5 0 3M'], dir);
  add({ name: 'vdi dynamic', file: p('ok-dynamic.vdi'), safe: true, format: 'vdi', qemuFormat: 'vdi' });
  qemuImg(['create', '-q', '-f', 'vdi', '-o', 'static=on', 'ok-static.vdi', '8M'], dir);
  add({ name: 'vdi static', file: p('ok-static.vdi'), safe: true, format: 'vdi', qemuFormat: 'vdi' });
  fs.writeFileSync(p('ok.raw'), ''); fs.truncateSync(p('ok.raw'), 32 * MiB);
  add({ name: 'raw, empty', file: p('ok.raw'), safe: true, format: 'raw', qemuFormat: 'raw' });
  rawWithTable(p('ok-gpt.raw'), 32 * MiB, 'gpt');
  add({ name: 'raw with a GPT', file: p('ok-gpt.raw'), safe: true, format: 'raw', qemuFormat: 'raw' });
  rawWithTable(p('ok-mbr.raw'), 32 * MiB, 'dos');
  add({ name: 'raw with an MBR', file: p('ok-mbr.raw'), safe: true, format: 'raw', qemuFormat: 'raw' });
  writeIso(p('ok.iso'));
  add({ name: 'iso', file: p('ok.iso'), safe: true, format: 'iso', qemuFormat: 'raw' });
  writeIso(p('ok-hybrid.iso'), 1024);
  execFileSync('sfdisk', ['--quiet', p('ok-hybrid.iso')], { input: 'label: dos\nstart=64, type=17, bootable\n', stdio: ['pipe', 'ignore', 'pipe'] });
  add({ name: 'iso with an isohybrid MBR', file: p('ok-hybrid.iso'), safe: true, format: 'iso', qemuFormat: 'raw' });
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', '-u', 'ok-overlay.qcow2', '1G'], dir);
  add({ name: 'qcow2 overlay, backing allowed', file: p('ok-overlay.qcow2'), safe: true, format: 'qcow2', qemuFormat: 'qcow2', opts: { allowBackingFile: true }, names: ['base.qcow2'] });
  add({ name: 'qcow2 declared as qcow2', file: p('ok-v2.qcow2'), safe: true, format: 'qcow2', opts: { expectedFormat: 'qcow2' } });
  add({ name: 'vhd declared as vhd', file: p('ok-dynamic.vhd'), safe: true, format: 'vhd', opts: { expectedFormat: 'vhd' } });

  // ---------------------------------------------------------------- hostile: references
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', '/etc/passwd', '-F', 'raw', 'backing-passwd.qcow2', '1G'], dir);
  add({ name: 'qcow2 backing /etc/passwd with backing format', file: p('backing-passwd.qcow2'), safe: false, format: 'qcow2', codes: ['backing-file'], names: ['/etc/passwd'] });
  add({ name: 'qcow2 backing /etc/passwd, backing allowed (absolute path still refused)', file: p('backing-passwd.qcow2'), safe: false, format: 'qcow2', codes: ['backing-file'], opts: { allowBackingFile: true }, names: ['/etc/passwd'] });
  fs.copyFileSync(p('backing-passwd.qcow2'), p('backing-nofmt.qcow2'));
  edit(p('backing-nofmt.qcow2'), (b) => {
    const ext = qcow2Extensions(b).find(([, t]) => t === 0xe2792aca)!;
    b.writeUInt32BE(0, ext[0]); // drop the backing format: qemu would probe /etc/passwd
  });
  add({ name: 'qcow2 backing /etc/passwd without backing format', file: p('backing-nofmt.qcow2'), safe: false, format: 'qcow2', codes: ['backing-file'], names: ['/etc/passwd'] });
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'loop-b.qcow2', '-F', 'qcow2', '-u', 'loop-a.qcow2', '1G'], dir);
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'loop-a.qcow2', '-F', 'qcow2', '-u', 'loop-b.qcow2', '1G'], dir);
  add({ name: 'qcow2 backing loop a→b→a', file: p('loop-a.qcow2'), safe: false, format: 'qcow2', codes: ['backing-file'], names: ['loop-b.qcow2'] });
  qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'data_file=data-file-16char', 'datafile.qcow2', '1G'], dir);
  fs.rmSync(p('data-file-16char'));
  edit(p('datafile.qcow2'), (b) => {
    const ext = qcow2Extensions(b).find(([, t]) => t === 0x44415441)!;
    const name = Buffer.from('/etc/passwd');
    b.writeUInt32BE(name.length, ext[0] + 4);
    b.fill(0, ext[0] + 8, ext[0] + 8 + 16);
    name.copy(b, ext[0] + 8);
  });
  add({ name: 'qcow2 data file /etc/passwd', file: p('datafile.qcow2'), safe: false, format: 'qcow2', codes: ['data-file'], names: ['/etc/passwd'] });
  add({ name: 'qcow2 data file /etc/passwd, data files allowed (absolute path still refused)', file: p('datafile.qcow2'), safe: false, format: 'qcow2', codes: ['data-file'], opts: { allowDataFile: true }, names: ['/etc/passwd'] });
  fs.copyFileSync(p('ok-v2.qcow2'), p('datafile-bit.qcow2'));
  qemuImg(['amend', '-q', '-f', 'qcow2', '-o', 'compat=1.1', 'datafile-bit.qcow2'], dir);
  edit(p('datafile-bit.qcow2'), (b) => { b.writeUInt32BE(b.readUInt32BE(76) | 4, 76); });
  add({ name: 'qcow2 data-file bit without a name', file: p('datafile-bit.qcow2'), safe: false, format: 'qcow2', codes: ['data-file'] });
  qemuImg(['create', '-q', '-f', 'qed', '-b', '/etc/passwd', '-F', 'raw', 'backing.qed', '1G'], dir);
  add({ name: 'qed backing /etc/passwd', file: p('backing.qed'), safe: false, format: 'qed', codes: ['unsupported-format', 'backing-file'], names: ['/etc/passwd'] });

  const descriptor = (createType: string, extents: string[], extra = '') =>
    `# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="${createType}"\n${extra}\n# Extent description\n${extents.join('\n')}\n\n# The Disk Data Base\n#DDB\nddb.adapterType = "ide"\n`;
  fs.writeFileSync(p('flat-passwd.vmdk'), descriptor('monolithicFlat', ['RW 20480 FLAT "/etc/passwd" 0']));
  add({ name: 'vmdk flat extent /etc/passwd', file: p('flat-passwd.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-extent', 'vmdk-create-type'], names: ['/etc/passwd'] });
  add({ name: 'vmdk flat extent /etc/passwd, monolithicFlat allowed', file: p('flat-passwd.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-extent'], opts: { allowedVmdkCreateTypes: ['monolithicFlat'] }, names: ['/etc/passwd'] });
  fs.writeFileSync(p('flat-dotdot.vmdk'), descriptor('monolithicFlat', ['RW 20480 FLAT "../../etc/passwd" 0']));
  add({ name: 'vmdk flat extent ../../etc/passwd', file: p('flat-dotdot.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-extent'], names: ['../../etc/passwd'] });
  fs.writeFileSync(p('sparse-extents.vmdk'), descriptor('twoGbMaxExtentSparse', ['RW 4192256 SPARSE "/etc/passwd"', 'RW 4192256 SPARSE "x-s002.vmdk"']));
  add({ name: 'vmdk descriptor with sparse extents naming files', file: p('sparse-extents.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-extent', 'vmdk-create-type'], names: ['/etc/passwd', 'x-s002.vmdk'] });
  qemuImg(['create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', 'qemu-flat.vmdk', '10M'], dir);
  add({ name: 'vmdk monolithicFlat made by qemu-img', file: p('qemu-flat.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-extent', 'vmdk-create-type'], names: ['qemu-flat-flat.vmdk'] });

  // monolithicSparse whose embedded descriptor gains an extra extent (CVE-2024-32498).
  const embedded = (file: string, fn: (text: string) => string) => edit(file, (b) => {
    const off = Number(b.readBigUInt64LE(28)) * 512;
    const len = Number(b.readBigUInt64LE(36)) * 512;
    const text = b.subarray(off, off + len).toString('latin1').replace(/\0+$/, '');
    const out = Buffer.alloc(len);
    out.write(fn(text), 'latin1');
    out.copy(b, off);
  });
  fs.copyFileSync(p('ok-sparse.vmdk'), p('sparse-extra-extent.vmdk'));
  embedded(p('sparse-extra-extent.vmdk'), (t) => t.replace(/(RW \d+ SPARSE "[^"]*")/, '$1\nRW 2048 FLAT "/etc/passwd" 0'));
  add({ name: 'monolithicSparse with an extra FLAT extent in its embedded descriptor', file: p('sparse-extra-extent.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-extent'], names: ['/etc/passwd'] });
  fs.copyFileSync(p('ok-sparse.vmdk'), p('sparse-extent-path.vmdk'));
  embedded(p('sparse-extent-path.vmdk'), (t) => t.replace(/SPARSE "[^"]*"/, 'SPARSE "../../etc/passwd"'));
  add({ name: 'monolithicSparse whose own extent is ../../etc/passwd', file: p('sparse-extent-path.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-extent'], names: ['../../etc/passwd'] });
  fs.copyFileSync(p('sparse-extra-extent.vmdk'), p('sparse-zero-capacity.vmdk'));
  edit(p('sparse-zero-capacity.vmdk'), (b) => { b.writeBigUInt64LE(0n, 12); });
  add({ name: 'sparse header with capacity 0 (qemu follows the embedded descriptor)', file: p('sparse-zero-capacity.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-extent'], names: ['/etc/passwd'] });
  fs.copyFileSync(p('ok-sparse.vmdk'), p('sparse-parent.vmdk'));
  embedded(p('sparse-parent.vmdk'), (t) => t.replace(/parentCID=ffffffff/, 'parentCID=1234abcd\nparentFileNameHint="/etc/passwd"'));
  add({ name: 'vmdk with parentFileNameHint /etc/passwd', file: p('sparse-parent.vmdk'), safe: false, format: 'vmdk', codes: ['backing-file'], names: ['/etc/passwd'] });
  fs.copyFileSync(p('ok-sparse.vmdk'), p('sparse-createtype.vmdk'));
  embedded(p('sparse-createtype.vmdk'), (t) => t.replace(/createType="[^"]*"/, 'createType="vmfsSparse"'));
  add({ name: 'sparse vmdk with a createType outside the allow-list', file: p('sparse-createtype.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-create-type'] });
  fs.copyFileSync(p('ok-stream.vmdk'), p('stream-footer-missing.vmdk'));
  edit(p('stream-footer-missing.vmdk'), (b) => { b.fill(0xff, 56, 64); return b.subarray(0, b.length - 1536); });
  add({ name: 'streamOptimized saying "GD at end" without a footer', file: p('stream-footer-missing.vmdk'), safe: false, format: 'vmdk', codes: ['truncated'] });

  // ---------------------------------------------------------------- hostile: differencing
  fs.copyFileSync(p('ok-dynamic.vhd'), p('differencing.vhd'));
  edit(p('differencing.vhd'), (b) => {
    for (const off of [0, b.length - 512]) {
      const f = b.subarray(off, off + 512);
      f.writeUInt32BE(4, 60);
      vhdChecksum(f);
    }
    const dynOff = Number(b.readBigUInt64BE(16));
    const d = b.subarray(dynOff, dynOff + 1024);
    const name = Buffer.from('/etc/passwd', 'utf16le').swap16();
    name.copy(d, 64);
    d.write('W2ru', 576, 'latin1'); // a relative Windows path locator
    d.writeUInt32BE(512, 580); d.writeUInt32BE(22, 584); d.writeBigUInt64BE(BigInt(dynOff + 1024 - 512), 592);
    vhdDynChecksum(d);
  });
  add({ name: 'vhd differencing, parent /etc/passwd', file: p('differencing.vhd'), safe: false, format: 'vhd', codes: ['differencing'], names: ['/etc/passwd'] });
  fs.copyFileSync(p('ok.vhdx'), p('parent.vhdx'));
  edit(p('parent.vhdx'), (b) => vhdxAddParent(b, '../../etc/passwd'));
  add({ name: 'vhdx with has-parent flag and a parent locator', file: p('parent.vhdx'), safe: false, format: 'vhdx', codes: ['differencing'], names: ['../../etc/passwd'] });

  // ---------------------------------------------------------------- hostile: sizes and tables
  qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=2M', 'huge.qcow2', '1E'], dir);
  add({ name: 'qcow2 of 1 EiB', file: p('huge.qcow2'), safe: false, format: 'qcow2', codes: ['virtual-size-too-large'] });
  add({ name: 'qcow2 of 1 GiB with a 100 MiB cap', file: p('ok-v2.qcow2'), safe: false, format: 'qcow2', codes: ['virtual-size-too-large'], opts: { maxVirtualSize: 50 * MiB } });
  fs.copyFileSync(p('ok-v2.qcow2'), p('huge-header.qcow2'));
  edit(p('huge-header.qcow2'), (b) => { b.writeBigUInt64BE(1n << 60n, 24); });
  add({ name: 'qcow2 header edited to 1 EiB', file: p('huge-header.qcow2'), safe: false, format: 'qcow2', codes: ['virtual-size-too-large', 'size-mismatch'] });
  fs.copyFileSync(p('ok-v3.qcow2'), p('truncated.qcow2'));
  fs.truncateSync(p('truncated.qcow2'), 256 * KiB);
  add({ name: 'truncated qcow2', file: p('truncated.qcow2'), safe: false, format: 'qcow2', codes: ['table-outside-file'] });
  fs.writeFileSync(p('cut-short.qcow2'), readAt(p('ok-v3.qcow2'), 0, 50));
  add({ name: 'qcow2 header cut short', file: p('cut-short.qcow2'), safe: false, format: 'qcow2', codes: ['header-cut-short'] });
  const rnd = rng(47951);
  const garbage = Buffer.alloc(64 * KiB);
  for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(rnd() * 256);
  garbage.write('QFI\xfb', 0, 'latin1');
  fs.writeFileSync(p('garbage.qcow2'), garbage);
  add({ name: 'QFI\\xfb + garbage', file: p('garbage.qcow2'), safe: false, format: 'qcow2', codes: ['invalid-header'] });
  fs.copyFileSync(p('ok-v3.qcow2'), p('l1-outside.qcow2'));
  edit(p('l1-outside.qcow2'), (b) => { b.writeBigUInt64BE(1n << 40n, 40); });
  add({ name: 'qcow2 L1 table beyond the end of the file', file: p('l1-outside.qcow2'), safe: false, format: 'qcow2', codes: ['table-outside-file'] });
  fs.copyFileSync(p('ok-v3.qcow2'), p('refcount-outside.qcow2'));
  edit(p('refcount-outside.qcow2'), (b) => { b.writeBigUInt64BE(1n << 40n, 48); });
  add({ name: 'qcow2 refcount table beyond the end of the file', file: p('refcount-outside.qcow2'), safe: false, format: 'qcow2', codes: ['table-outside-file'] });
  fs.copyFileSync(p('ok-snap.qcow2'), p('snapshot-outside.qcow2'));
  edit(p('snapshot-outside.qcow2'), (b) => { b.writeBigUInt64BE(1n << 40n, 64); });
  add({ name: 'qcow2 snapshot table beyond the end of the file', file: p('snapshot-outside.qcow2'), safe: false, format: 'qcow2', codes: ['table-outside-file'] });
  fs.copyFileSync(p('ok-v3.qcow2'), p('incompat.qcow2'));
  edit(p('incompat.qcow2'), (b) => { b.writeUInt32BE(b.readUInt32BE(76) | (1 << 10), 76); });
  add({ name: 'qcow2 with an unknown incompatible feature', file: p('incompat.qcow2'), safe: false, format: 'qcow2', codes: ['unknown-incompatible-features'] });
  fs.copyFileSync(p('ok-v3.qcow2'), p('corrupt-bit.qcow2'));
  edit(p('corrupt-bit.qcow2'), (b) => { b.writeUInt32BE(b.readUInt32BE(76) | 2, 76); });
  add({ name: 'qcow2 marked corrupt', file: p('corrupt-bit.qcow2'), safe: false, format: 'qcow2', codes: ['corrupt'] });
  fs.copyFileSync(p('ok-sparse.vmdk'), p('gd-outside.vmdk'));
  edit(p('gd-outside.vmdk'), (b) => { b.writeBigUInt64LE(1n << 40n, 56); });
  add({ name: 'vmdk grain directory beyond the end of the file', file: p('gd-outside.vmdk'), safe: false, format: 'vmdk', codes: ['table-outside-file'] });
  fs.copyFileSync(p('ok-fixed.vhd'), p('fixed-short.vhd'));
  edit(p('fixed-short.vhd'), (b) => {
    const f = b.subarray(b.length - 512);
    f.writeBigUInt64BE(64n << 30n, 40); f.writeBigUInt64BE(64n << 30n, 48);
    f.writeUInt32BE(0x71656d32, 28); // creator 'qem2': qemu then uses current_size
    vhdChecksum(f);
  });
  add({ name: 'fixed vhd claiming 64 GiB in a 16 MiB file', file: p('fixed-short.vhd'), safe: false, format: 'vhd', codes: ['size-mismatch'] });
  fs.copyFileSync(p('ok-dynamic.vhd'), p('bat-outside.vhd'));
  edit(p('bat-outside.vhd'), (b) => {
    const dynOff = Number(b.readBigUInt64BE(16));
    const d = b.subarray(dynOff, dynOff + 1024);
    d.writeBigUInt64BE(1n << 40n, 16);
    vhdDynChecksum(d);
  });
  add({ name: 'dynamic vhd with its BAT beyond the end of the file', file: p('bat-outside.vhd'), safe: false, format: 'vhd', codes: ['table-outside-file'] });
  fs.copyFileSync(p('ok-dynamic.vdi'), p('vdi-lying-blocks.vdi'));
  edit(p('vdi-lying-blocks.vdi'), (b) => { b.writeUInt32LE(b.readUInt32LE(0x180), 0x184); });
  add({ name: 'vdi claiming every block allocated in a small file', file: p('vdi-lying-blocks.vdi'), safe: false, format: 'vdi', codes: ['size-mismatch'] });
  fs.copyFileSync(p('ok-dynamic.vdi'), p('vdi-few-blocks.vdi'));
  edit(p('vdi-few-blocks.vdi'), (b) => { b.writeUInt32LE(10, 0x180); });
  add({ name: 'vdi with fewer blocks than its disk size', file: p('vdi-few-blocks.vdi'), safe: false, format: 'vdi', codes: ['size-mismatch'] });
  fs.copyFileSync(p('ok-dynamic.vdi'), p('vdi-parent.vdi'));
  edit(p('vdi-parent.vdi'), (b) => { b.writeUInt32LE(4, 0x4c); b.fill(0x11, 0x1b8, 0x1c8); b.fill(0x22, 0x1a8, 0x1b8); });
  add({ name: 'vdi differencing image', file: p('vdi-parent.vdi'), safe: false, format: 'vdi', codes: ['differencing'] });

  // ---------------------------------------------------------------- hostile: polyglots and spoofing
  writeIso(p('iso-qcow2.iso'), 256);
  patchAt(p('iso-qcow2.iso'), 0, readAt(p('ok-v3.qcow2'), 0, 512));
  add({ name: 'ISO with a qcow2 header in its system area', file: p('iso-qcow2.iso'), safe: false, format: 'qcow2', codes: ['polyglot'], opts: { expectedFormat: 'iso' } });
  writeIso(p('iso-vmdk.iso'), 256);
  patchAt(p('iso-vmdk.iso'), 0, readAt(p('ok-sparse.vmdk'), 0, 4096));
  add({ name: 'ISO with a VMDK header and descriptor in its system area', file: p('iso-vmdk.iso'), safe: false, format: 'vmdk', codes: ['polyglot'] });
  fs.copyFileSync(p('ok-v2.qcow2'), p('qcow2-vmdk.qcow2'));
  // A streamOptimized footer: footer marker (type 3), the sparse header again, end-of-stream marker.
  const footer = Buffer.alloc(1536);
  footer.writeUInt32LE(3, 12);
  readAt(p('ok-stream.vmdk'), 0, 512).copy(footer, 512);
  fs.appendFileSync(p('qcow2-vmdk.qcow2'), footer);
  add({ name: 'qcow2/vmdk polyglot (streamOptimized footer on a qcow2)', file: p('qcow2-vmdk.qcow2'), safe: false, format: 'qcow2', codes: ['polyglot'] });
  fs.copyFileSync(p('ok-v2.qcow2'), p('qcow2-vhd.qcow2'));
  fs.appendFileSync(p('qcow2-vhd.qcow2'), readAt(p('ok-fixed.vhd'), fs.statSync(p('ok-fixed.vhd')).size - 512, 512));
  add({ name: 'qcow2 with a VHD footer', file: p('qcow2-vhd.qcow2'), safe: false, format: 'qcow2', codes: ['polyglot'] });
  fs.copyFileSync(p('ok-v3.qcow2'), p('qcow2-mbr.qcow2'));
  patchAt(p('qcow2-mbr.qcow2'), 446, readAt(p('ok-mbr.raw'), 446, 66));
  add({ name: 'qcow2 with an MBR partition table in its first sector', file: p('qcow2-mbr.qcow2'), safe: false, format: 'qcow2', codes: ['polyglot'] });
  add({ name: 'qcow2 declared raw', file: p('ok-v2.qcow2'), safe: false, format: 'qcow2', codes: ['format-mismatch'], opts: { expectedFormat: 'raw' } });
  add({ name: 'raw declared qcow2', file: p('ok.raw'), safe: false, format: 'raw', codes: ['format-mismatch'], opts: { expectedFormat: 'qcow2' } });
  add({ name: 'vmdk declared vhd', file: p('ok-sparse.vmdk'), safe: false, format: 'vmdk', codes: ['format-mismatch'], opts: { expectedFormat: 'vhd' } });
  execFileSync('gzip', ['-k', '-f', 'ok-v2.qcow2'], { cwd: dir });
  add({ name: 'gzip-compressed qcow2', file: p('ok-v2.qcow2.gz'), safe: false, format: 'gzip', codes: ['compressed'] });

  // ---------------------------------------------------------------- hostile: partition tables on raw
  fs.copyFileSync(p('ok-gpt.raw'), p('gpt-entries.raw'));
  edit(p('gpt-entries.raw'), (b) => { b.writeUInt32LE(0xffffffff, 512 + 80); });
  gptHeaderCrc(p('gpt-entries.raw'));
  add({ name: 'raw with a GPT claiming 2^32 partition entries', file: p('gpt-entries.raw'), safe: false, format: 'raw', codes: ['gpt-mbr'] });
  fs.copyFileSync(p('ok-gpt.raw'), p('gpt-lba.raw'));
  edit(p('gpt-lba.raw'), (b) => { b.writeBigUInt64LE(1n << 50n, 512 + 72); b.writeBigUInt64LE(1n << 40n, 512 + 48); });
  gptHeaderCrc(p('gpt-lba.raw'));
  add({ name: 'raw with a GPT whose entries and usable area lie beyond the disk', file: p('gpt-lba.raw'), safe: false, format: 'raw', codes: ['gpt-mbr'] });
  fs.copyFileSync(p('ok-gpt.raw'), p('gpt-mbr-extra.raw'));
  edit(p('gpt-mbr-extra.raw'), (b) => { b[446 + 16 + 4] = 0x83; b.writeUInt32LE(2048, 446 + 16 + 8); b.writeUInt32LE(2048, 446 + 16 + 12); });
  add({ name: 'raw with a protective MBR defining an extra partition', file: p('gpt-mbr-extra.raw'), safe: false, format: 'raw', codes: ['gpt-mbr'] });
  fs.copyFileSync(p('ok-gpt.raw'), p('gpt-bootflag.raw'));
  edit(p('gpt-bootflag.raw'), (b) => { b[446] = 0x42; });
  add({ name: 'raw with a protective MBR with an invalid boot flag', file: p('gpt-bootflag.raw'), safe: false, format: 'raw', codes: ['gpt-mbr'] });
  fs.copyFileSync(p('ok-mbr.raw'), p('mbr-past-end.raw'));
  edit(p('mbr-past-end.raw'), (b) => { b.writeUInt32LE(0x7fffffff, 446 + 12); });
  add({ name: 'raw with an MBR partition past the end of the disk', file: p('mbr-past-end.raw'), safe: false, format: 'raw', codes: ['gpt-mbr'] });

  // ---------------------------------------------------------------- more, after Glance's test history
  // A LUKS1 header (magic, version, cipher, payload offset); qemu probes it by the magic alone.
  const luks = Buffer.alloc(2 * MiB);
  luks.write('LUKS\xba\xbe', 0, 'latin1'); luks.writeUInt16BE(1, 6);
  luks.write('aes', 8, 'latin1'); luks.write('xts-plain64', 40, 'latin1'); luks.write('sha256', 72, 'latin1');
  luks.writeUInt32BE(4096, 104); luks.writeUInt32BE(64, 108);
  fs.writeFileSync(p('disk.luks'), luks);
  add({ name: 'LUKS image (qemu would open it by content)', file: p('disk.luks'), safe: false, format: 'luks', codes: ['unsupported-format'] });
  writeIso(p('iso-vhd.iso'), 256);
  fs.appendFileSync(p('iso-vhd.iso'), readAt(p('ok-fixed.vhd'), fs.statSync(p('ok-fixed.vhd')).size - 512, 512));
  add({ name: 'ISO with a VHD footer', file: p('iso-vhd.iso'), safe: false, format: 'iso', codes: ['polyglot'] });
  fs.copyFileSync(p('ok-dynamic.vhd'), p('bad-checksum.vhd'));
  edit(p('bad-checksum.vhd'), (b) => { b[b.length - 512 + 40] ^= 1; });
  add({ name: 'vhd whose footer checksum does not match', file: p('bad-checksum.vhd'), safe: false, format: 'vhd', codes: ['bad-checksum'] });
  fs.copyFileSync(p('ok-v3.qcow2'), p('ext-overrun.qcow2'));
  edit(p('ext-overrun.qcow2'), (b) => { const [off] = qcow2Extensions(b)[0]!; b.writeUInt32BE(0x7fffffff, off + 4); });
  add({ name: 'qcow2 header extension running past the first cluster', file: p('ext-overrun.qcow2'), safe: false, format: 'qcow2', codes: ['invalid-header'] });
  fs.copyFileSync(p('ok-stream.vmdk'), p('stream-footer-outside.vmdk'));
  edit(p('stream-footer-outside.vmdk'), (b) => {
    const header = Buffer.from(b.subarray(0, 512));
    b.fill(0xff, 56, 64); // the header defers the grain directory to the footer
    const footer = Buffer.alloc(1536);
    footer.writeUInt32LE(3, 12);
    header.writeBigUInt64LE(1n << 40n, 56); // ... which puts it far beyond the end
    header.copy(footer, 512);
    return Buffer.concat([b, footer]);
  });
  add({ name: 'streamOptimized footer with the grain directory beyond the end', file: p('stream-footer-outside.vmdk'), safe: false, format: 'vmdk', codes: ['table-outside-file'] });
  fs.copyFileSync(p('ok-stream.vmdk'), p('stream-footer-ok.vmdk'));
  edit(p('stream-footer-ok.vmdk'), (b) => {
    const header = Buffer.from(b.subarray(0, 512));
    b.fill(0xff, 56, 64);
    const footer = Buffer.alloc(1536);
    footer.writeUInt32LE(3, 12);
    header.copy(footer, 512);
    return Buffer.concat([b, footer]);
  });
  add({ name: 'streamOptimized with its grain directory named in a valid footer (VMware style)', file: p('stream-footer-ok.vmdk'), safe: true, format: 'vmdk' });

  fs.writeFileSync(p('odd.raw'), Buffer.alloc(1000, 0x61));
  add({ name: 'raw of 1000 bytes (virtual size rounded to sectors like qemu)', file: p('odd.raw'), safe: true, format: 'raw', qemuFormat: 'raw' });
  fs.copyFileSync(p('ok-sparse.vmdk'), p('hint-in-comment.vmdk'));
  embedded(p('hint-in-comment.vmdk'), (t) => t.replace('# Extent description', '# Extent parentFileNameHint="/etc/passwd"'));
  add({ name: 'vmdk with parentFileNameHint inside a comment (qemu finds it with strstr; found by differential fuzzing)', file: p('hint-in-comment.vmdk'), safe: false, format: 'vmdk', codes: ['backing-file'], names: ['/etc/passwd'] });
  fs.copyFileSync(p('ok-sparse.vmdk'), p('createtype-in-comment.vmdk'));
  embedded(p('createtype-in-comment.vmdk'), (t) => t.replace('# Disk DescriptorFile', '# Disk DescriptorFile createType="monolithicFlat"'));
  add({ name: 'vmdk whose first createType (in a comment) is not allowed', file: p('createtype-in-comment.vmdk'), safe: false, format: 'vmdk', codes: ['vmdk-create-type'] });

  fs.rmSync(p('data.raw'));
  return cases;
}

/** Sets the has-parent flag and adds a parent locator item to a qemu-made VHDX. */
function vhdxAddParent(b: Buffer, parent: string): void {
  // Region table: find the metadata region.
  const rt = 192 * KiB;
  const count = b.readUInt32LE(rt + 8);
  let metaOff = 0;
  for (let i = 0; i < count; i++) {
    const e = rt + 16 + i * 32;
    if (b.subarray(e, e + 4).toString('hex') === '06a27c8b') metaOff = Number(b.readBigUInt64LE(e + 16));
  }
  const n = b.readUInt16LE(metaOff + 10);
  const fileParams = 'caa16737fa364d43b3b633f0aa44e76b';
  const guidLE = (g: string) => { const h = g.replace(/-/g, ''); const sw = (x: string) => x.match(/../g)!.reverse().join(''); return Buffer.from(sw(h.slice(0, 8)) + sw(h.slice(8, 12)) + sw(h.slice(12, 16)) + h.slice(16), 'hex'); };
  const fp = guidLE(fileParams);
  let used = 64 * KiB;
  for (let i = 0; i < n; i++) {
    const e = metaOff + 32 + i * 32;
    const off = b.readUInt32LE(e + 16); const len = b.readUInt32LE(e + 20);
    used = Math.max(used, off + len);
    if (b.subarray(e, e + 16).equals(fp)) b.writeUInt32LE(b.readUInt32LE(metaOff + off + 4) | 2, metaOff + off + 4);
  }
  // Locator: header (type GUID, reserved, count) + one key/value pair, UTF-16LE.
  const key = Buffer.from('relative_path', 'utf16le');
  const val = Buffer.from(parent, 'utf16le');
  const loc = Buffer.alloc(20 + 12 + key.length + val.length);
  guidLE('B04AEFB7-D19E-4A81-B789-25B8E9445913').copy(loc, 0);
  loc.writeUInt16LE(1, 18);
  loc.writeUInt32LE(32, 20); loc.writeUInt32LE(32 + key.length, 24); loc.writeUInt16LE(key.length, 28); loc.writeUInt16LE(val.length, 30);
  key.copy(loc, 32); val.copy(loc, 32 + key.length);
  const locOff = Math.ceil(used / 4096) * 4096;
  loc.copy(b, metaOff + locOff);
  const e = metaOff + 32 + n * 32;
  guidLE('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C').copy(b, e);
  b.writeUInt32LE(locOff, e + 16); b.writeUInt32LE(loc.length, e + 20); b.writeUInt32LE(4 | 2, e + 24);
  b.writeUInt16LE(n + 1, metaOff + 10);
}

// CLI: write the corpus to a directory and list it.
if (process.argv[1] && import.meta.url === new URL(`file://${path.resolve(process.argv[1])}`).href) {
  const dir = process.argv[2];
  if (!dir) { console.error('usage: hostile.ts DIR'); process.exit(1); }
  fs.mkdirSync(dir, { recursive: true });
  for (const c of generateCorpus(dir)) console.log(`${c.safe ? 'benign ' : 'hostile'}  ${path.basename(c.file).padEnd(34)} ${c.name}${c.codes ? `  [${c.codes.join(', ')}]` : ''}`);
}
