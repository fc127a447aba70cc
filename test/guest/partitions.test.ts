// Partition tables built by sfdisk, compared with sfdisk's own JSON; damaged tables
// (EBR loops, out-of-bounds logicals, bad GPT CRCs) must be reported, not followed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from '@node-rs/crc32';
import { openImage } from '../../src/engine/block/open.js';
import { readPartitionTable, partitionDevice, SubRangeDevice, type PartitionTable } from '../../src/guest/partitions.js';
import { openGuest } from '../../src/guest/guest.js';
import { missingTools } from './fixture.js';

const missing = missingTools(['sfdisk', 'mke2fs', 'qemu-img']);
const PATH = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` };

async function table(file: string): Promise<PartitionTable> {
  const dev = await openImage(file);
  try { return await readPartitionTable(dev); } finally { await dev.close(); }
}

function sfdiskJson(file: string): { label: string; id: string; partitions: Array<{ node: string; start: number; size: number; type: string; uuid?: string; name?: string; bootable?: boolean }> } {
  return JSON.parse(execFileSync('sfdisk', ['--json', file], { encoding: 'utf8', env: PATH })).partitiontable;
}

function patch(file: string, offset: number, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, bytes, 0, bytes.length, offset);
  fs.closeSync(fd);
}

function readBytes(file: string, offset: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, b, 0, len, offset);
  fs.closeSync(fd);
  return b;
}

describe('partition tables', { skip: missing.length ? `missing tools: ${missing.join(', ')}` : false }, () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-parts-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function mbrDisk(name: string): string {
    const f = path.join(dir, name);
    fs.writeFileSync(f, '');
    fs.truncateSync(f, 64 * 1024 * 1024);
    const input = ['label: dos', `${f}1 : start=2048, size=4096, type=83, bootable`, `${f}2 : start=8192, type=5`,
      `${f}5 : size=2048, type=83`, `${f}6 : size=4096, type=82`, `${f}7 : type=83`, ''].join('\n');
    execFileSync('sfdisk', ['-q', f], { input, env: PATH });
    return f;
  }

  it('MBR with an extended partition: primaries and the EBR chain match sfdisk', async () => {
    const f = mbrDisk('mbr.raw');
    const t = await table(f);
    const ref = sfdiskJson(f);
    assert.equal(t.type, 'mbr');
    assert.equal('0x' + t.diskId, ref.id);
    assert.deepEqual(t.partitions.map((p) => p.number), [1, 2, 5, 6, 7]);
    for (const r of ref.partitions) {
      const n = Number(/(\d+)$/.exec(r.node)![1]);
      const p = t.partitions.find((x) => x.number === n)!;
      assert.equal(p.offset, r.start * 512, `start of ${n}`);
      assert.equal(p.size, r.size * 512, `size of ${n}`);
      assert.equal(p.type, '0x' + r.type.padStart(2, '0'));
      assert.equal(!!p.bootable, !!r.bootable);
    }
    assert.equal(t.partitions.find((p) => p.number === 5)!.logical, true);
    // Through qcow2 as well: the table is read through the block layer.
    const q = path.join(dir, 'mbr.qcow2');
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', f, q]);
    assert.deepEqual(await table(q), t);
  });

  it('an EBR chain that loops back is reported, not followed forever', async () => {
    const f = mbrDisk('loop.raw');
    const extStart = 8192;
    const first = readBytes(f, extStart * 512, 512);
    const rel = first.readUInt32LE(470);
    assert.ok(rel > 0);
    // The second EBR links back to the first one (relative start 0).
    const link = Buffer.alloc(16);
    link[4] = 0x05;
    link.writeUInt32LE(0, 8);
    link.writeUInt32LE(2048, 12);
    patch(f, (extStart + rel) * 512 + 462, link);
    await assert.rejects(table(f), /EBR chain loops back to sector 8192/);
  });

  it('a logical partition running past its extended partition is corrupt', async () => {
    const f = mbrDisk('oob.raw');
    const count = Buffer.alloc(4);
    count.writeUInt32LE(0x7fffffff);
    patch(f, 8192 * 512 + 446 + 12, count);
    await assert.rejects(table(f), (e: Error & { code?: string }) => e.code === 'CORRUPT_IMAGE' && /extends past/.test(e.message));
  });

  it('a primary partition past the end of the disk is corrupt', async () => {
    const f = mbrDisk('oob2.raw');
    const count = Buffer.alloc(4);
    count.writeUInt32LE(1_000_000);
    patch(f, 446 + 12, count);
    await assert.rejects(table(f), /past the end of the disk/);
  });

  function gptDisk(name: string): string {
    const f = path.join(dir, name);
    fs.writeFileSync(f, '');
    fs.truncateSync(f, 32 * 1024 * 1024);
    execFileSync('sfdisk', ['-q', f], {
      input: 'label: gpt\nstart=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"\ntype=0FC63DAF-8483-4772-8E79-3D69C8E47DE4, name="root"\n',
      env: PATH,
    });
    return f;
  }

  it('GPT: entries, GUIDs and names match sfdisk', async () => {
    const f = gptDisk('gpt.raw');
    const t = await table(f);
    const ref = sfdiskJson(f);
    assert.equal(t.type, 'gpt');
    assert.equal(t.diskId, ref.id);
    assert.deepEqual(t.warnings, []);
    assert.equal(t.partitions.length, ref.partitions.length);
    for (const [i, r] of ref.partitions.entries()) {
      const p = t.partitions[i]!;
      assert.equal(p.offset, r.start * 512);
      assert.equal(p.size, r.size * 512);
      assert.equal(p.type, r.type);
      assert.equal(p.guid, r.uuid);
      assert.equal(p.name, r.name);
    }
    assert.equal(t.partitions[0]!.typeName, 'EFI System');
    assert.equal(t.partitions[1]!.typeName, 'Linux filesystem');
  });

  it('GPT: a damaged primary header falls back to the backup, with a warning', async () => {
    const f = gptDisk('gpt-bad1.raw');
    const good = await table(f);
    patch(f, 512 + 60, Buffer.from([0xde, 0xad]));
    const t = await table(f);
    assert.deepEqual(t.partitions, good.partitions);
    assert.match(t.warnings.join('\n'), /primary GPT is bad \(header CRC32 mismatch at LBA 1\); using the backup/);
  });

  it('GPT: a damaged primary entry array (header CRC still valid) falls back too', async () => {
    const f = gptDisk('gpt-bad2.raw');
    const good = await table(f);
    patch(f, 1024 + 40, Buffer.from([1, 2, 3]));
    const t = await table(f);
    assert.deepEqual(t.partitions, good.partitions);
    assert.match(t.warnings.join('\n'), /entry array CRC32 mismatch/);
  });

  it('GPT: both copies bad is CorruptImage; a valid CRC over bad bounds is refused too', async () => {
    const f = gptDisk('gpt-bad3.raw');
    const size = fs.statSync(f).size;
    patch(f, 512 + 60, Buffer.from([0xde]));
    patch(f, size - 512 + 60, Buffer.from([0xde]));
    await assert.rejects(table(f), (e: Error & { code?: string }) => e.code === 'CORRUPT_IMAGE' && /primary: .*backup: /.test(e.message));

    // Entry 1 moved past the last usable LBA, with both CRCs recomputed.
    const g = gptDisk('gpt-bad4.raw');
    const entries = readBytes(g, 1024, 128 * 128);
    entries.writeBigUInt64LE(10n ** 9n, 40);
    patch(g, 1024, entries);
    const hdr = readBytes(g, 512, 92);
    hdr.writeUInt32LE(crc32(entries) >>> 0, 88);
    hdr.writeUInt32LE(0, 16);
    hdr.writeUInt32LE(crc32(hdr) >>> 0, 16);
    patch(g, 512, hdr);
    await assert.rejects(table(g), /lies outside the usable range/);
  });

  it('a partition device is a bounded window of the disk', async () => {
    const f = gptDisk('gpt-sub.raw');
    const marker = Buffer.from('partition-two-starts-here');
    const t0 = await table(f);
    patch(f, t0.partitions[1]!.offset, marker);
    const dev = await openImage(f);
    try {
      const t = await readPartitionTable(dev);
      const p2 = partitionDevice(dev, t, 2);
      const b = new Uint8Array(marker.length);
      await p2.read(b, 0);
      assert.equal(Buffer.from(b).toString(), marker.toString());
      await assert.rejects(p2.read(new Uint8Array(1024), p2.virtualSize - 512), /outside the partition/);
      assert.throws(() => new SubRangeDevice(dev, 1024, dev.virtualSize, 'x'), /outside the disk/);
      assert.throws(() => partitionDevice(dev, t, 9), /no partition 9/);
    } finally {
      await dev.close();
    }
  });

  it('a whole-disk ext4 filesystem (no partition table) is found as the root', async () => {
    const root = path.join(dir, 'root');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'bin'));
    fs.writeFileSync(path.join(root, 'etc/fstab'), '/dev/vda / ext4 defaults 0 1\n');
    const f = path.join(dir, 'whole.raw');
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', root, f, '16M'], { env: PATH });
    assert.equal((await table(f)).type, 'none');
    const g = await openGuest(f);
    try {
      assert.equal(g.root.partition, 0);
      assert.equal(await g.fs.readText('/etc/fstab'), '/dev/vda / ext4 defaults 0 1\n');
    } finally {
      await g.close();
    }
  });

  it('a filesystem libext2fs finds corrupt is reported as such, naming the check that failed', async () => {
    const root = path.join(dir, 'root2');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'bin'));
    fs.writeFileSync(path.join(root, 'etc/fstab'), '\n');
    const f = path.join(dir, 'corrupt.raw');
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', '-d', root, f, '16M'], { env: PATH });
    // First group descriptor (block 2): its block bitmap location, so the checksum fails.
    patch(f, 2048, Buffer.from([0xff, 0xff, 0xff, 0x7f]));
    await assert.rejects(openGuest(f), (e: Error & { code?: string }) =>
      e.code === 'UNSUPPORTED' && /whole disk: ext4 \(whole disk: cannot open the ext4 filesystem: .*checksum does not match.*run e2fsck/.test(e.message));
  });
});
