import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseOvf, allocationUnits } from '../../src/migrate/ovf.js';
import { readOvaDescriptor, extractOvaDisks, parseManifest } from '../../src/migrate/ova-source.js';
import { loadSource } from '../../src/migrate/v2v.js';
import { tmpdir, vmwareOvf, virtualboxOvf, packOva, makeStreamVmdk } from './fixtures.js';

test('AllocationUnits: programmatic units and the words VirtualBox writes', () => {
  assert.equal(allocationUnits('byte * 2^20'), 1024 ** 2);
  assert.equal(allocationUnits('byte*2^30'), 1024 ** 3);
  assert.equal(allocationUnits('byte * 1024^2'), 1024 ** 2);
  assert.equal(allocationUnits('MegaBytes'), 1024 ** 2);
  assert.equal(allocationUnits('GigaBytes'), 1024 ** 3);
  assert.equal(allocationUnits('byte'), 1);
  assert.equal(allocationUnits('hertz * 10^6'), undefined);
});

test('VMware OVF: name, CPUs + CoresPerSocket, memory units, firmware + secure boot, SCSI disk, IDE CD-ROM, VmxNet3 NIC', () => {
  const vm = parseOvf(vmwareOvf('rhel8', [
    { id: 'vmdisk1', href: 'rhel8-disk1.vmdk', capacity: 20, units: 'byte * 2^30' },
    { id: 'vmdisk2', href: 'rhel8-disk2.vmdk', capacity: 1048576 },
  ], { firmware: 'efi', secureBoot: true, memMiB: 3072 }), 'rhel8.ovf');
  assert.equal(vm.name, 'rhel8');
  assert.equal(vm.hypervisor, 'vmware');
  assert.equal(vm.vcpus, 4);
  assert.deepEqual(vm.topology, { sockets: 2, cores: 2, threads: 1 });
  assert.equal(vm.memoryBytes, 3072 * 1024 * 1024);
  assert.equal(vm.firmware, 'uefi');
  assert.equal(vm.secureBoot, true);
  assert.equal(vm.guestOS, 'rhel8_64guest');
  assert.equal(vm.osCimId, 80);
  assert.equal(vm.hardwareVersion, 'vmx-19');
  assert.deepEqual(vm.controllers.map((c) => [c.bus, c.model]), [['scsi', 'VirtualSCSI'], ['ide', undefined]]);
  assert.deepEqual(vm.disks.map((d) => [d.id, d.bus, d.unit, d.fileName, d.capacity, d.format]), [
    ['vmdisk1', 'scsi', 0, 'rhel8-disk1.vmdk', 20 * 1024 ** 3, 'vmdk'],
    ['vmdisk2', 'scsi', 1, 'rhel8-disk2.vmdk', 1048576, 'vmdk'],
  ]);
  assert.deepEqual(vm.removables.map((r) => [r.kind, r.bus, r.unit]), [['cdrom', 'ide', 2]], 'IDE controller 1, unit 0 → slot 2');
  assert.deepEqual(vm.nics.map((n) => [n.mac, n.model, n.networkName, n.connection]), [['00:50:56:ab:cd:ef', 'vmxnet3', 'VM Network', 'bridge']]);
});

test('VMware OVF without vmw:Config firmware: firmware unknown', () => {
  const vm = parseOvf(vmwareOvf('x', [{ id: 'd', href: 'x.vmdk', capacity: 1 }]), 'x.ovf');
  assert.equal(vm.firmware, 'unknown');
  assert.equal(vm.secureBoot, false);
});

test('VirtualBox OVF: vbox:Machine gives uuid, EFI, OSType and MACs; PIIX4 IDE + AHCI SATA; MegaBytes', () => {
  const vm = parseOvf(virtualboxOvf('deb12', { id: 'vmdisk1', href: 'deb12-disk001.vmdk', capacity: 8 * 1024 ** 3 }), 'deb12.ovf');
  assert.equal(vm.hypervisor, 'virtualbox');
  assert.equal(vm.name, 'deb12', 'falls back to VirtualSystem ovf:id');
  assert.equal(vm.uuid, '7f1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9');
  assert.equal(vm.firmware, 'uefi');
  assert.equal(vm.memoryBytes, 1536 * 1024 * 1024);
  assert.equal(vm.vcpus, 2);
  assert.equal(vm.guestOS, 'debian_64');
  assert.deepEqual(vm.disks.map((d) => [d.bus, d.capacity]), [['sata', 8 * 1024 ** 3]]);
  assert.deepEqual(vm.removables.map((r) => [r.kind, r.bus, r.unit]), [['cdrom', 'ide', 1]]);
  assert.deepEqual(vm.nics.map((n) => [n.mac, n.model, n.networkName]), [['08:00:27:aa:bb:cc', 'e1000', 'NAT']]);
});

test('OVF 2.0 namespaces and StorageItem/EthernetPortItem elements are read too', () => {
  const xml = vmwareOvf('v2', [{ id: 'd1', href: 'v2.vmdk', capacity: 2, units: 'byte * 2^30' }])
    .replace(/envelope\/1/g, 'envelope/2')
    .replace(/<Item>(\s*<rasd:AddressOnParent>0<\/rasd:AddressOnParent>\s*<rasd:ElementName>Hard disk)/, '<StorageItem>$1')
    .replace(/(<rasd:ResourceType>17<\/rasd:ResourceType>\s*)<\/Item>/, '$1</StorageItem>');
  assert.match(xml, /<StorageItem>[\s\S]*<\/StorageItem>/);
  const vm = parseOvf(xml, 'v2.ovf');
  assert.equal(vm.disks.length, 1);
  assert.equal(vm.disks[0].capacity, 2 * 1024 ** 3);
});

test('broken OVFs are reported, not crashed on', () => {
  assert.throws(() => parseOvf('<notovf/>', 'a.ovf'), /no <Envelope>/);
  assert.throws(() => parseOvf('<Envelope><VirtualSystem', 'a.ovf'), /not well-formed|Envelope|VirtualSystem/);
  assert.throws(() => parseOvf('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><Envelope/>', 'a.ovf'), /DOCTYPE/);
  const dangling = vmwareOvf('x', [{ id: 'd', href: 'x.vmdk', capacity: 1 }]).replace('ovf:/disk/d', 'ovf:/disk/nope');
  assert.throws(() => parseOvf(dangling, 'a.ovf'), /DiskSection does not define/);
  const lz = vmwareOvf('x', [{ id: 'd', href: 'x.vmdk', capacity: 1 }]).replace('ovf:id="file1"', 'ovf:id="file1" ovf:compression="lzma"');
  assert.throws(() => parseOvf(lz, 'a.ovf'), /compression "lzma"/);
});

test('manifest lines', () => {
  const m = parseManifest('SHA256(a.ovf)= ABCDEF\nSHA1(b.vmdk)= 0123\ngarbage\r\n');
  assert.deepEqual(m.get('a.ovf'), { algorithm: 'sha256', hex: 'abcdef' });
  assert.deepEqual(m.get('b.vmdk'), { algorithm: 'sha1', hex: '0123' });
  assert.equal(m.size, 2);
});

test('OVA: the .ovf is found in the tar, disks extracted with manifest digests checked', async () => {
  const t = tmpdir();
  try {
    makeStreamVmdk(path.join(t.dir, 'app-disk1.vmdk'), '8M', 0x5a);
    const size = 8 * 1024 * 1024;
    fs.writeFileSync(path.join(t.dir, 'app.ovf'), vmwareOvf('app', [{ id: 'vmdisk1', href: 'app-disk1.vmdk', capacity: size }], { firmware: 'bios' }));
    const ova = path.join(t.dir, 'app.ova');
    packOva(t.dir, ova, 'app.ovf', ['app-disk1.vmdk']);
    const d = await readOvaDescriptor(ova);
    assert.equal(d.ovfName, 'app.ovf');
    assert.match(d.manifest ?? '', /^SHA256\(app\.ovf\)= /);
    const vm = await loadSource(ova);
    assert.equal(vm.origin, 'ova');
    assert.equal(vm.firmware, 'bios');
    assert.equal(vm.disks[0].capacity, size);

    const dest = path.join(t.dir, 'out.vmdk');
    await extractOvaDisks(ova, { files: new Map([['app-disk1.vmdk', { dest }]]) });
    assert.deepEqual(fs.readFileSync(dest), fs.readFileSync(path.join(t.dir, 'app-disk1.vmdk')));

    // A wrong digest in the manifest is refused; so is a disk the OVA lacks.
    const bad = path.join(t.dir, 'bad.ova');
    packOva(t.dir, bad, 'app.ovf', ['app-disk1.vmdk'], { corrupt: 'app-disk1.vmdk' });
    await assert.rejects(extractOvaDisks(bad, { files: new Map([['app-disk1.vmdk', { dest }]]) }), /does not match the manifest/);
    await assert.rejects(extractOvaDisks(ova, { files: new Map([['other.vmdk', { dest }]]) }), /not in the OVA/);
    // gzip-compressed members are inflated on the way out.
    execFileSync('gzip', ['-k', '-f', path.join(t.dir, 'app-disk1.vmdk')]);
    fs.writeFileSync(path.join(t.dir, 'gz.ovf'), vmwareOvf('gz', [{ id: 'vmdisk1', href: 'app-disk1.vmdk.gz', capacity: size }]).replace('ovf:id="file1"', 'ovf:id="file1" ovf:compression="gzip"'));
    const gz = path.join(t.dir, 'gz.ova');
    packOva(t.dir, gz, 'gz.ovf', ['app-disk1.vmdk.gz'], { sha1: true });
    await extractOvaDisks(gz, { files: new Map([['app-disk1.vmdk.gz', { dest, gzip: true }]]) });
    assert.deepEqual(fs.readFileSync(dest), fs.readFileSync(path.join(t.dir, 'app-disk1.vmdk')));
  } finally { t.cleanup(); }
});

test('OVA without an .ovf, and a file that is not a tar, are rejected', async () => {
  const t = tmpdir();
  try {
    fs.writeFileSync(path.join(t.dir, 'x.txt'), 'hello');
    execFileSync('tar', ['-cf', path.join(t.dir, 'none.ova'), '-C', t.dir, 'x.txt']);
    await assert.rejects(readOvaDescriptor(path.join(t.dir, 'none.ova')), /no \.ovf/);
    fs.writeFileSync(path.join(t.dir, 'junk.ova'), Buffer.alloc(2048, 0x41));
    await assert.rejects(readOvaDescriptor(path.join(t.dir, 'junk.ova')), (e: Error & { code?: string }) => e.code === 'CORRUPT_IMAGE');
  } finally { t.cleanup(); }
});

test('directory OVF: disk hrefs resolved through the policy, escapes refused', async () => {
  const t = tmpdir();
  try {
    fs.writeFileSync(path.join(t.dir, 'd.vmdk'), '');
    fs.writeFileSync(path.join(t.dir, 'ok.ovf'), vmwareOvf('ok', [{ id: 'a', href: 'd.vmdk', capacity: 1 }]));
    const vm = await loadSource(path.join(t.dir, 'ok.ovf'));
    assert.equal(vm.disks[0].path, path.join(t.dir, 'd.vmdk'));
    fs.writeFileSync(path.join(t.dir, 'evil.ovf'), vmwareOvf('evil', [{ id: 'a', href: '../../etc/shadow', capacity: 1 }]));
    await assert.rejects(loadSource(path.join(t.dir, 'evil.ovf')), (e: Error & { code?: string }) => e.code === 'UNSAFE_IMAGE');
  } finally { t.cleanup(); }
});
