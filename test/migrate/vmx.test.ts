import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseVmxText, unescapeVmx } from '../../src/migrate/vmx-file.js';
import { readVmx, vmxToModel, genidFromVmx } from '../../src/migrate/vmx.js';
import { canonicalUuid, normaliseMac } from '../../src/migrate/model.js';
import { sameDirectoryPolicy } from '../../src/engine/policy.js';
import { tmpdir, makeVmdk, linuxEfiVmx, windowsBiosVmx, nvmeVmx, writeVmx } from './fixtures.js';

test('vmx escapes: |22 quote, |7C pipe, UTF-8 bytes, lone pipes kept', () => {
  assert.equal(unescapeVmx('a|20b'), 'a b');
  assert.equal(unescapeVmx('say |22hi|22'), 'say "hi"');
  assert.equal(unescapeVmx('x|7Cy'), 'x|y');
  assert.equal(unescapeVmx('caf|C3|A9'), 'café');
  assert.equal(unescapeVmx('a|zz|'), 'a|zz|');
});

test('vmx text: case-insensitive keys, first duplicate wins, comments, CRLF, present=FALSE drops namespaces', () => {
  const v = parseVmxText([
    '#!/usr/bin/vmware', '# comment', '', 'DisplayName = "one"', 'displayname = "two"',
    'ethernet0.present = "TRUE"', 'ethernet0.virtualDev = "e1000"',
    'ethernet1.present = "false"', 'ethernet1.virtualDev = "vmxnet3"',
    'scsi1.present = "FALSE"', 'scsi1:0.fileName = "x.vmdk"', 'scsi10:0.fileName = "keep.vmdk"',
    'unquoted = 42', 'broken line without equals',
  ].join('\r\n'), 't.vmx');
  assert.equal(v.get('displayName'), 'one');
  assert.equal(v.get('DISPLAYNAME'), 'one');
  assert.ok(v.warnings.some((w) => /duplicate key displayname/i.test(w)));
  assert.ok(v.warnings.some((w) => /broken line/.test(w)));
  assert.equal(v.get('ethernet0.virtualDev'), 'e1000');
  assert.equal(v.get('ethernet1.virtualDev'), undefined, 'ethernet1 is absent');
  assert.equal(v.get('scsi1:0.fileName'), undefined, 'disk on an absent controller is dropped');
  assert.equal(v.get('scsi10:0.fileName'), 'keep.vmdk', 'scsi10 is not scsi1');
  assert.equal(v.int('unquoted'), 42);
});

test('a VMDK passed as the .vmx is recognised', () => {
  assert.throws(() => parseVmxText('# Disk DescriptorFile\nversion=1\n', 'x.vmx'), /VMDK disk image, not a \.vmx/);
  assert.throws(() => parseVmxText('KDMV\x01\x00', 'x.vmx'), /VMDK disk image/);
});

test('uuid.bios, MACs and VM generation id are normalised', () => {
  assert.equal(canonicalUuid('56 4d 9c 2a 1b 3c 4d 5e-6f 70 81 92 a3 b4 c5 d6'), '564d9c2a-1b3c-4d5e-6f70-8192a3b4c5d6');
  assert.equal(canonicalUuid('{7F1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9}'), '7f1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9');
  assert.equal(canonicalUuid('56 4d'), undefined);
  assert.equal(normaliseMac('080027AABBCC'), '08:00:27:aa:bb:cc');
  assert.equal(normaliseMac('00-50-56-01-02-03'), '00:50:56:01:02:03');
  assert.equal(normaliseMac('zz'), undefined);
  // The example from the libvirt/virt-v2v discussion: the guest must see 8987940a09512cc5:e81510634ff550b9.
  assert.equal(genidFromVmx('-8536691797830587195', '-1723453263670062919'), '09512cc5-940a-8987-b950-f54f631015e8');
  assert.equal(genidFromVmx('12', undefined), undefined);
});

test('Linux EFI + secure boot guest: CPU, memory, firmware, pvscsi disk, vmxnet3 NIC', async () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'linux.vmdk'), '64M');
    const vm = await readVmx(linuxEfiVmx(t.dir));
    assert.equal(vm.name, 'web server"prod"');
    assert.equal(vm.memoryBytes, 4096 * 1024 * 1024);
    assert.equal(vm.vcpus, 4);
    assert.deepEqual(vm.topology, { sockets: 2, cores: 2, threads: 1 });
    assert.equal(vm.firmware, 'uefi');
    assert.equal(vm.secureBoot, true);
    assert.equal(vm.guestOS, 'rhel9-64');
    assert.equal(vm.uuid, '421a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8');
    assert.equal(vm.genid, '09512cc5-940a-8987-b950-f54f631015e8');
    assert.equal(vm.sound, 'ich6');
    assert.deepEqual(vm.controllers.map((c) => [c.id, c.model]), [['scsi0', 'pvscsi']]);
    assert.equal(vm.disks.length, 1, 'the disk on the absent scsi1 is dropped');
    assert.equal(vm.disks[0].bus, 'scsi');
    assert.equal(vm.disks[0].capacity, 64 * 1024 * 1024);
    assert.deepEqual(vm.disks[0].chain, [path.join(t.dir, 'linux.vmdk')]);
    assert.equal(vm.nics.length, 1, 'ethernet1.present = FALSE');
    assert.deepEqual({ ...vm.nics[0] }, {
      index: 0, mac: '00:0c:29:aa:bb:cc', addressType: 'generated', model: 'vmxnet3',
      networkName: 'VM Network', connection: 'bridge', connectionType: 'bridged',
    });
  } finally { t.cleanup(); }
});

test('Windows BIOS guest: lsilogic + sata disks, IDE CD-ROM, static MAC wins over generatedAddress', async () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'win.vmdk'), '32M');
    makeVmdk(path.join(t.dir, 'win-data.vmdk'), '16M');
    const vm = await readVmx(windowsBiosVmx(t.dir));
    assert.equal(vm.firmware, 'bios');
    assert.equal(vm.secureBoot, false);
    assert.equal(vm.memoryBytes, 8 * 1024 ** 3);
    assert.equal(vm.topology, undefined);
    assert.deepEqual(vm.disks.map((d) => [d.id, d.bus, d.capacity]), [['scsi0:0', 'scsi', 32 << 20], ['sata0:1', 'sata', 16 << 20]]);
    assert.deepEqual(vm.controllers.map((c) => `${c.id}:${c.model}`), ['scsi0:lsilogic', 'sata0:ahci', 'ide1:undefined']);
    assert.equal(vm.removables.length, 1);
    assert.deepEqual([vm.removables[0].kind, vm.removables[0].bus, vm.removables[0].deviceType, vm.removables[0].fileName, vm.removables[0].startConnected],
      ['cdrom', 'ide', 'cdrom-image', 'missing.iso', false]);
    assert.equal(vm.nics[0].mac, '00:50:56:01:02:03');
    assert.equal(vm.nics[0].addressType, 'static');
    assert.equal(vm.nics[0].connection, 'network');
    assert.equal(vm.nics[0].networkName, 'Prod');
  } finally { t.cleanup(); }
});

test('NVMe and SATA disks, SATA raw CD-ROM, vpx MAC, upper-case keys, defaults', async () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'nv.vmdk'), '8M');
    makeVmdk(path.join(t.dir, 'sa.vmdk'), '8M');
    const vm = await readVmx(nvmeVmx(t.dir));
    assert.equal(vm.name, 'ubuntu-nvme');
    assert.equal(vm.vcpus, 1);
    assert.equal(vm.firmware, 'bios');
    assert.deepEqual(vm.disks.map((d) => d.bus), ['nvme', 'sata'], 'NVMe before SATA, like virt-v2v');
    assert.deepEqual(vm.removables.map((r) => [r.bus, r.deviceType, r.fileName]), [['sata', 'cdrom-raw', undefined]]);
    assert.equal(vm.nics[0].mac, '00:50:56:80:12:34');
    assert.equal(vm.nics[0].networkName, 'ethernet0');
  } finally { t.cleanup(); }
});

test('missing displayName and memsize fall back to the file name and 32 MiB', () => {
  const vm = vmxToModel(parseVmxText('guestOS = "other"\n', '/x/my-vm.vmx'), '/x/my-vm.vmx');
  assert.equal(vm.name, 'my-vm');
  assert.equal(vm.memoryBytes, 32 * 1024 * 1024);
  assert.ok(vm.warnings.some((w) => /no displayName/.test(w)));
});

test('snapshot chain: child.vmdk → parent through the policy; parents outside the folder are refused', async () => {
  const t = tmpdir();
  try {
    const parent = path.join(t.dir, 'base.vmdk');
    makeVmdk(parent, '32M', [[0x11, '0', '1M']]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'vmdk', '-b', 'base.vmdk', '-F', 'vmdk', path.join(t.dir, 'base-000001.vmdk')]);
    const vmx = path.join(t.dir, 'snap.vmx');
    writeVmx(vmx, ['displayName = "snap"', 'guestOS = "debian11-64"', 'scsi0.present = "TRUE"', 'scsi0:0.fileName = "base-000001.vmdk"']);
    const vm = await readVmx(vmx);
    assert.deepEqual(vm.disks[0].chain, [path.join(t.dir, 'base-000001.vmdk'), parent]);
    assert.equal(vm.disks[0].capacity, 32 << 20);

    // The same child in a sub-folder whose parent hint climbs out: refused by the default policy.
    const sub = path.join(t.dir, 'vm');
    fs.mkdirSync(sub);
    execFileSync('qemu-img', ['create', '-q', '-f', 'vmdk', '-b', '../base.vmdk', '-F', 'vmdk', path.join(sub, 'child.vmdk')]);
    const vmx2 = path.join(sub, 'c.vmx');
    writeVmx(vmx2, ['displayName = "c"', 'scsi0:0.fileName = "child.vmdk"']);
    await assert.rejects(readVmx(vmx2), (e: Error & { code?: string }) => e.code === 'UNSAFE_IMAGE' && /outside/.test(e.message));
    // ...and allowed when the caller's policy root includes the parent folder.
    const ok = await readVmx(vmx2, { policy: sameDirectoryPolicy({ root: t.dir }) });
    assert.equal(ok.disks[0].chain!.length, 2);
  } finally { t.cleanup(); }
});

test('a snapshot chain that loops is refused', async () => {
  const t = tmpdir();
  try {
    const desc = (name: string, parent: string) => [
      '# Disk DescriptorFile', 'version=1', 'CID=fffffffe', 'parentCID=fffffffe', 'createType="vmfsSparse"',
      `parentFileNameHint="${parent}"`, `RW 2048 VMFSSPARSE "${name}-delta.vmdk"`, '',
    ].join('\n');
    fs.writeFileSync(path.join(t.dir, 'a.vmdk'), desc('a', 'b.vmdk'));
    fs.writeFileSync(path.join(t.dir, 'b.vmdk'), desc('b', 'a.vmdk'));
    writeVmx(path.join(t.dir, 'l.vmx'), ['displayName = "l"', 'scsi0:0.fileName = "a.vmdk"']);
    await assert.rejects(readVmx(path.join(t.dir, 'l.vmx')), /loops/);
  } finally { t.cleanup(); }
});

test('absolute datastore paths: refused unless the file sits next to the .vmx', async () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'd.vmdk'), '4M');
    writeVmx(path.join(t.dir, 'a.vmx'), ['displayName = "a"', 'scsi0:0.fileName = "/vmfs/volumes/ds1/a/d.vmdk"']);
    const vm = await readVmx(path.join(t.dir, 'a.vmx'));
    assert.equal(vm.disks[0].path, path.join(t.dir, 'd.vmdk'));
    assert.ok(vm.warnings.some((w) => /absolute path/.test(w)));
    writeVmx(path.join(t.dir, 'b.vmx'), ['displayName = "b"', 'scsi0:0.fileName = "/etc/passwd.vmdk"']);
    await assert.rejects(readVmx(path.join(t.dir, 'b.vmx')), /absolute path/);
  } finally { t.cleanup(); }
});
