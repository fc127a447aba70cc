// inspect-guest: synthetic initramfs archives (early cpio + gzip/xz/zstd), a crafted
// guest with built-in and missing virtio drivers, and the real Debian fixture checked
// against cpio -t, its kernel config and the fixture's own layout.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { listInitramfs, modulesIn } from '../../src/guest/initramfs.js';
import { elfArch, inspectGuest, parseFstab } from '../../src/guest/inspect.js';
import { buildFixture, cli, FIXTURE_TOOLS, missingTools, sha256, type Fixture } from './fixture.js';

const require = createRequire(import.meta.url);
const PATH = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` };

/** A newc cpio archive of the given files (directories implied by the names are not added). */
function newc(files: Array<{ name: string; data?: string; mode?: number }>): Buffer {
  const parts: Buffer[] = [];
  const h = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  const add = (name: string, data: Buffer, mode: number) => {
    const nameBuf = Buffer.from(name + '\0');
    const hdr = '070701' + [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0].map(h).join('');
    let rec = Buffer.concat([Buffer.from(hdr), nameBuf]);
    rec = Buffer.concat([rec, Buffer.alloc((4 - (rec.length % 4)) % 4)]);
    parts.push(rec, data, Buffer.alloc((4 - (data.length % 4)) % 4));
  };
  for (const f of files) add(f.name, Buffer.from(f.data ?? ''), f.mode ?? 0o100644);
  add('TRAILER!!!', Buffer.alloc(0), 0);
  const all = Buffer.concat(parts);
  return Buffer.concat([all, Buffer.alloc((512 - (all.length % 512)) % 512)]);
}

const EARLY = newc([{ name: 'kernel/x86/microcode/GenuineIntel.bin', data: 'microcode' }]);
const MAIN = newc([
  { name: 'init', data: '#!/bin/sh\n', mode: 0o100755 },
  { name: 'usr/lib/modules/6.1.0-1-amd64/kernel/drivers/block/virtio_blk.ko', data: 'x' },
  { name: 'usr/lib/modules/6.1.0-1-amd64/kernel/drivers/net/virtio_net.ko.xz', data: 'x' },
  { name: 'usr/lib/modules/6.1.0-1-amd64/kernel/drivers/scsi/virtio_scsi.ko.zst', data: 'x' },
]);

describe('initramfs listing', () => {
  it('plain cpio, early cpio + gzip, + xz, + zstd all list every member', async () => {
    const xz = execFileSync('xz', ['--check=crc32', '-c'], { input: MAIN });
    const zstd = (require('zstd-napi') as typeof import('zstd-napi')).compress(MAIN);
    const variants: Array<[string, Buffer, string[]]> = [
      ['plain', MAIN, ['none']],
      ['early+gzip', Buffer.concat([EARLY, zlib.gzipSync(MAIN)]), ['none', 'gzip']],
      ['early+xz', Buffer.concat([EARLY, xz]), ['none', 'xz']],
      ['early+zstd', Buffer.concat([EARLY, zstd]), ['none', 'zstd']],
      ['gzip only', zlib.gzipSync(MAIN), ['gzip']],
    ];
    for (const [what, data, comp] of variants) {
      const l = await listInitramfs(data, what);
      assert.deepEqual(l.segments.map((s) => s.compression), comp, what);
      const names = l.entries.map((e) => e.name);
      assert.ok(names.includes('init'), what);
      assert.equal(names.includes('kernel/x86/microcode/GenuineIntel.bin'), comp.length === 2, what);
      assert.deepEqual([...modulesIn(l.entries).keys()].sort(), ['virtio_blk', 'virtio_net', 'virtio_scsi'], what);
    }
  });

  it('rejects damaged archives and unsupported compression with clear errors', async () => {
    await assert.rejects(listInitramfs(MAIN.subarray(0, 200), 't1'), /truncated|runs past/);
    await assert.rejects(listInitramfs(Buffer.from([0x02, 0x21, 0x4c, 0x18, 1, 2, 3]), 't2'), /lz4 compression is not supported/);
    await assert.rejects(listInitramfs(Buffer.from('hello world, not an archive'), 't3'), /unrecognised data/);
    const bad = Buffer.from(MAIN);
    bad.write('zzzzzzzz', 94); // namesize field
    await assert.rejects(listInitramfs(bad, 't4'), /bad cpio header fields/);
  });

  it('agrees with cpio -t on a gzip archive', { skip: missingTools(['cpio']).length ? 'cpio missing' : false }, async () => {
    const data = zlib.gzipSync(MAIN);
    const ref = execFileSync('cpio', ['-t', '--quiet'], { input: zlib.gunzipSync(data), encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual((await listInitramfs(data)).entries.map((e) => e.name), ref);
  });
});

describe('guest facts helpers', () => {
  it('elfArch reads e_machine', () => {
    const h = Buffer.alloc(64);
    h.set([0x7f, 0x45, 0x4c, 0x46, 2, 1], 0);
    h.writeUInt16LE(62, 18); assert.equal(elfArch(h), 'x86_64');
    h.writeUInt16LE(183, 18); assert.equal(elfArch(h), 'aarch64');
    h.writeUInt16LE(21, 18); assert.equal(elfArch(h), 'ppc64le');
    h[5] = 2; h.writeUInt16BE(22, 18); assert.equal(elfArch(h), 's390x');
    assert.equal(elfArch(Buffer.from('#!/bin/sh\n')), null);
    // The host's own shell, as a cross-check.
    const host = ({ x64: 'x86_64', arm64: 'aarch64' } as Record<string, string>)[process.arch];
    if (host) assert.equal(elfArch(fs.readFileSync(fs.realpathSync('/bin/sh')).subarray(0, 64)), host);
  });
  it('parseFstab handles comments, escapes and short lines', () => {
    assert.deepEqual(parseFstab('# c\nUUID=ab / ext4 defaults 0 1\n/dev/sdb1 /mnt/my\\040disk xfs\n\n'), [
      { spec: 'UUID=ab', file: '/', vfstype: 'ext4', options: 'defaults', freq: 0, passno: 1 },
      { spec: '/dev/sdb1', file: '/mnt/my disk', vfstype: 'xfs', options: 'defaults', freq: 0, passno: 0 },
    ]);
  });
});

describe('inspect-guest on a crafted guest', { skip: missingTools(['mke2fs', 'sfdisk']).length ? 'mke2fs/sfdisk missing' : false }, () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgport-inspect-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reports built-in drivers from the kernel config and modules missing from the initramfs', async () => {
    const r = path.join(dir, 'root');
    for (const d of ['etc', 'bin', 'boot']) fs.mkdirSync(path.join(r, d), { recursive: true });
    fs.writeFileSync(path.join(r, 'etc/os-release'), 'ID=fedora\nVERSION_ID="40"\nPRETTY_NAME="Fedora Linux 40"\n');
    fs.writeFileSync(path.join(r, 'etc/HOSTNAME'), '# comment\nbox.example\n');
    fs.copyFileSync(fs.realpathSync('/bin/sh'), path.join(r, 'bin/sh'));
    // Kernel A: everything built in, no initramfs at all.
    fs.writeFileSync(path.join(r, 'boot/vmlinuz-1.0-a'), 'kernel');
    fs.writeFileSync(path.join(r, 'boot/config-1.0-a'), 'CONFIG_VIRTIO_BLK=y\nCONFIG_VIRTIO_NET=y\nCONFIG_SCSI_VIRTIO=y\nCONFIG_VIRTIO_PCI=y\n');
    // Kernel B: modules, but the initramfs only carries virtio_net.
    fs.writeFileSync(path.join(r, 'boot/vmlinuz-2.0-b'), 'kernel');
    fs.writeFileSync(path.join(r, 'boot/config-2.0-b'), 'CONFIG_VIRTIO_BLK=m\nCONFIG_VIRTIO_NET=m\n# CONFIG_SCSI_VIRTIO is not set\nCONFIG_VIRTIO_PCI=m\n');
    fs.writeFileSync(path.join(r, 'boot/initramfs-2.0-b.img'), zlib.gzipSync(newc([{ name: 'lib/modules/2.0-b/virtio_net.ko', data: 'x' }])));
    const part = path.join(dir, 'p.ext4');
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext3', '-d', r, part, '8M'], { env: PATH });
    const disk = path.join(dir, 'disk.raw');
    fs.writeFileSync(disk, '');
    fs.truncateSync(disk, 10 * 1024 * 1024);
    execFileSync('sfdisk', ['-q', disk], { input: 'label: dos\n2048,16384,83\n', env: PATH });
    const fd = fs.openSync(disk, 'r+');
    fs.writeSync(fd, fs.readFileSync(part), 0, 8 * 1024 * 1024, 1024 * 1024);
    fs.closeSync(fd);

    const g = await inspectGuest(disk);
    assert.equal(g.distro, 'fedora');
    assert.equal(g.version, '40');
    assert.equal(g.hostname, 'box.example');
    assert.equal(g.filesystems[0]!.type, 'ext3');
    assert.deepEqual(g.kernels.map((k) => k.version), ['1.0-a', '2.0-b']);
    const [a, b] = g.kernels;
    assert.deepEqual(a!.virtio, { virtio_blk: 'builtin', virtio_net: 'builtin', virtio_scsi: 'builtin', virtio_pci: 'builtin' });
    assert.equal(a!.virtioBootable, true);
    assert.equal(a!.initramfs, null);
    assert.deepEqual(b!.virtio, { virtio_blk: 'module-not-in-initramfs', virtio_net: 'initramfs', virtio_scsi: 'absent', virtio_pci: 'module-not-in-initramfs' });
    assert.equal(b!.virtioBootable, false);
    assert.deepEqual(b!.initramfsCompression, ['gzip']);
  });
});

describe('inspect-guest on the Debian fixture', { skip: missingTools([...FIXTURE_TOOLS, 'cpio', 'zstd']).length ? 'fixture tools missing' : false }, () => {
  let fx: Fixture;
  before(() => { fx = buildFixture(); });
  after(() => fx?.cleanup());

  it('reads the same facts from qcow2, vmdk and vpc, never writing', async () => {
    const results = [];
    for (const f of ['gpt.qcow2', 'mbr.vmdk', 'gpt.vpc']) {
      const file = path.join(fx.dir, f);
      const before = sha256(file);
      const g = await inspectGuest(file);
      assert.equal(sha256(file), before, `${f} untouched`);
      results.push(g);
    }
    const [q, v, p] = results;
    const facts = (g: typeof q) => ({ ...g!, file: '', format: '', virtualSize: 0, partitionTable: '', filesystems: [], warnings: [] });
    for (const g of [v!, p!]) assert.deepEqual(facts(g), facts(q));
    assert.deepEqual(q!.warnings, []);
    // VHD rounds the disk up to its CHS geometry, so the GPT backup is no longer last.
    assert.match(p!.warnings.join('\n'), /backup GPT header is at LBA \d+, not at the last LBA/);
    assert.equal(v!.partitionTable, 'mbr');
    assert.equal(q!.partitionTable, 'gpt');
    const g = q!;
    assert.equal(g.os, 'linux');
    assert.equal(g.hostname, 'oldhost');
    assert.deepEqual(g.fstab.map((e) => [e.spec, e.file, e.vfstype]), [[`UUID=${fx.fsUuid}`, '/', 'ext4'], ['/dev/vdb1', '/data', 'xfs']]);
    assert.equal(g.filesystems[0]!.uuid, fx.fsUuid);
    assert.equal(g.filesystems[0]!.label, 'imgport-root');
    assert.equal(g.filesystems[0]!.offset, fx.partOffset);
    assert.deepEqual(g.cloudInit.datasources, ['NoCloud', 'ConfigDrive', 'OpenStack', 'None']);
    if (!fx.realDistro) { process.stderr.write('NOTE: synthetic rootfs: distro/kernel checks skipped\n'); return; }
    const rootfs = execFileSync('sh', [path.join(import.meta.dirname, '../../scripts/make-debian-rootfs.sh'), 'rootfs'], { encoding: 'utf8' }).trim();
    const osr = fs.readFileSync(path.join(rootfs, 'etc/os-release'), 'utf8');
    assert.equal(g.distro, 'debian');
    assert.equal(g.version, /VERSION_ID="?(\d+)/.exec(osr)![1]);
    assert.equal(g.arch, 'x86_64');
    assert.equal(g.packageFormat, 'deb');
    const dpkgCount = execFileSync('sh', ['-c', `grep -c '^Status: install ok installed' ${rootfs}/var/lib/dpkg/status`], { encoding: 'utf8' }).trim();
    assert.equal(g.packages, Number(dpkgCount));
    const boot = fs.readdirSync(path.join(rootfs, 'boot'));
    const versions = boot.filter((n) => n.startsWith('vmlinuz-')).map((n) => n.slice(8)).sort();
    assert.deepEqual(g.kernels.map((k) => k.version), versions);
    for (const k of g.kernels) {
      // Independent listing with the host's tools (this initrd is a single compressed cpio).
      const initrd = path.join(rootfs, k.initramfs!);
      const magic = fs.readFileSync(initrd).subarray(0, 4).toString('hex');
      const dec = magic === '28b52ffd' ? 'zstd -dc' : magic.startsWith('1f8b') ? 'gzip -dc' : magic === 'fd377a58' ? 'xz -dc' : null;
      assert.ok(dec, `unexpected initrd magic ${magic}`);
      const listed = spawnSync('sh', ['-c', `${dec} < '${initrd}' | cpio -t --quiet`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.equal(listed.status, 0, listed.stderr);
      assert.ok(listed.stdout.split('\n').length > 100);
      const config = fs.readFileSync(path.join(rootfs, 'boot', `config-${k.version}`), 'utf8');
      for (const [d, c] of [['virtio_blk', 'CONFIG_VIRTIO_BLK'], ['virtio_net', 'CONFIG_VIRTIO_NET'], ['virtio_scsi', 'CONFIG_SCSI_VIRTIO']] as const) {
        const builtin = new RegExp(`^${c}=y$`, 'm').test(config);
        const inInitrd = new RegExp(`/${d}\\.ko(\\.(xz|zst|gz))?$`, 'm').test(listed.stdout);
        assert.equal(k.virtio[d], builtin ? 'builtin' : inInitrd ? 'initramfs' : new RegExp(`^${c}=m$`, 'm').test(config) ? 'module-not-in-initramfs' : 'absent', `${k.version} ${d}`);
      }
      assert.equal(k.virtioBootable, true, 'Debian initramfs-tools (MODULES=most) includes virtio');
    }
  });

  it('--output json from the CLI', () => {
    const [status, stdout, stderr] = cli(['inspect-guest', '--output', 'json', path.join(fx.dir, 'gpt.qcow2')]);
    assert.equal(status, 0, stderr);
    const j = JSON.parse(stdout);
    assert.equal(j.os, 'linux');
    assert.equal(j.hostname, 'oldhost');
    assert.ok(Array.isArray(j.kernels));
    const [s2, out2] = cli(['inspect-guest', path.join(fx.dir, 'gpt.qcow2')]);
    assert.equal(s2, 0);
    assert.match(out2, /^hostname:\s+oldhost$/m);
  });
});
