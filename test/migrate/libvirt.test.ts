// Generated domain XML must pass libvirt's RNG schema (virt-xml-validate) and libvirt's
// own parser (virsh -c test:///default define); Glance properties follow the same plan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { readVmx } from '../../src/migrate/vmx.js';
import { parseOvf } from '../../src/migrate/ovf.js';
import { planTarget, addNetworkMapping, driveLetters, type NetworkMap, type TargetOptions } from '../../src/migrate/target.js';
import { domainXml } from '../../src/migrate/libvirt.js';
import { glanceProperties, glanceDocument } from '../../src/migrate/glance-properties.js';
import { classifyGuest } from '../../src/migrate/guest.js';
import type { SourceVM } from '../../src/migrate/model.js';
import { tmpdir, have, makeVmdk, linuxEfiVmx, windowsBiosVmx, nvmeVmx, vmwareOvf, virtualboxOvf } from './fixtures.js';

const canValidate = have('virt-xml-validate') && have('xmllint');
const canDefine = have('virsh');

function validate(file: string): void {
  if (canValidate) {
    const r = spawnSync('virt-xml-validate', [file, 'domain'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `virt-xml-validate ${file}:\n${r.stdout}${r.stderr}\n${fs.readFileSync(file, 'utf8')}`);
  }
  if (canDefine) {
    const r = spawnSync('virsh', ['-c', 'test:///default', 'define', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `virsh define ${file}:\n${r.stdout}${r.stderr}`);
  }
}

function xmlOf(vm: SourceVM, dir: string, opts: Partial<TargetOptions> = {}): { xml: string; file: string; plan: ReturnType<typeof planTarget> } {
  const plan = planTarget(vm, { outputDir: dir, ...opts });
  const xml = domainXml(plan);
  const file = path.join(dir, `${plan.name.replace(/[^\w.-]/g, '_')}-${Math.random().toString(36).slice(2)}.xml`);
  fs.writeFileSync(file, xml);
  return { xml, file, plan };
}

test('the validators are installed (else the XML checks below would prove nothing)', { skip: process.env.CI ? false : !canValidate && 'virt-xml-validate not installed' }, () => {
  assert.ok(canValidate, 'virt-xml-validate + xmllint (libvirt-clients, libxml2-utils) are needed');
  assert.ok(canDefine, 'virsh (libvirt-clients) is needed');
});

test('a broken domain is rejected by the same validators (the check can fail)', { skip: !canValidate && 'no virt-xml-validate' }, () => {
  const t = tmpdir();
  try {
    const f = path.join(t.dir, 'bad.xml');
    fs.writeFileSync(f, `<domain type='kvm'><name>x</name><memory>abc</memory><os><type>hvm</type></os></domain>`);
    assert.notEqual(spawnSync('virt-xml-validate', [f, 'domain']).status, 0);
  } finally { t.cleanup(); }
});

test('Linux EFI + secure boot: q35, efi firmware with secure-boot feature, virtio disk and NIC, MAC, uuid', async () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'linux.vmdk'), '64M');
    const vm = await readVmx(linuxEfiVmx(t.dir));
    const { xml, file, plan } = xmlOf(vm, t.dir);
    assert.match(xml, /<os firmware='efi'>/);
    assert.match(xml, /<type arch='x86_64' machine='q35'>hvm<\/type>/);
    assert.match(xml, /<feature enabled='yes' name='secure-boot'\/>/);
    assert.match(xml, /<smm state='on'\/>/);
    assert.match(xml, /<uuid>421a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8<\/uuid>/);
    assert.match(xml, /<memory unit='KiB'>4194304<\/memory>/);
    assert.match(xml, /<topology sockets='2' cores='2' threads='1'\/>/);
    assert.match(xml, /<target dev='vda' bus='virtio'\/>/);
    assert.match(xml, /<mac address='00:0c:29:aa:bb:cc'\/>\s*<source network='default'\/>\s*<model type='virtio'\/>/);
    assert.match(xml, /<name>web server&quot;prod&quot;<\/name>/);
    assert.match(xml, /<clock offset='utc'\/>/);
    assert.equal(plan.disks[0].file, path.join(t.dir, 'web_server_prod_-vda.qcow2'));
    validate(file);

    const g = glanceProperties(plan);
    assert.equal(g.hw_disk_bus, 'virtio');
    assert.equal(g.hw_vif_model, 'virtio');
    assert.equal(g.hw_firmware_type, 'uefi');
    assert.equal(g.hw_machine_type, 'q35');
    assert.equal(g.os_type, 'linux');
    assert.equal(g.os_distro, 'rhel');
    assert.equal(g.os_version, '9');
    assert.equal(g.os_secure_boot, 'required');
    const doc = glanceDocument(plan, new Map([['vda', 64 << 20]]));
    assert.equal(doc.images[0].min_disk, 1, '64 MiB rounds up to 1 GiB');
    assert.equal(doc.min_ram, 4096);
  } finally { t.cleanup(); }
});

test('Windows BIOS: sata disks, e1000e with the static MAC, sata CD-ROM after the disks, localtime clock', async () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'win.vmdk'), '32M');
    makeVmdk(path.join(t.dir, 'win-data.vmdk'), '16M');
    const vm = await readVmx(windowsBiosVmx(t.dir));
    const nets: NetworkMap = { bySource: new Map() };
    addNetworkMapping(nets, 'bridge', 'Prod:br-prod');
    const { xml, file, plan } = xmlOf(vm, t.dir, { networks: nets, graphics: 'spice' });
    assert.doesNotMatch(xml, /firmware=/);
    assert.match(xml, /machine='q35'/);
    assert.deepEqual(plan.disks.map((d) => `${d.dev}/${d.bus}`), ['sda/sata', 'sdb/sata']);
    assert.deepEqual(plan.cdroms.map((c) => `${c.dev}/${c.bus}/${c.file ?? ''}`), ['sdc/sata/'], 'missing ISO → empty drive');
    assert.match(xml, /<interface type='bridge'>\s*<mac address='00:50:56:01:02:03'\/>\s*<source bridge='br-prod'\/>\s*<model type='e1000e'\/>/);
    assert.match(xml, /<clock offset='localtime'\/>/);
    assert.match(xml, /<graphics type='spice'/);
    assert.doesNotMatch(xml, /guest_agent/);
    validate(file);
    const g = glanceProperties(plan);
    assert.deepEqual([g.hw_disk_bus, g.hw_vif_model, g.hw_firmware_type, g.os_type, g.os_distro, g.os_version], ['sata', 'e1000e', 'bios', 'windows', 'windows', '2019']);
    assert.equal(g.hw_video_model, 'qxl');

    // Told otherwise: virtio disks and NICs for a Windows guest with virtio-win installed.
    const o = xmlOf(vm, t.dir, { diskBus: 'virtio', nicModel: 'virtio' });
    assert.match(o.xml, /<target dev='vda' bus='virtio'\/>/);
    assert.match(o.xml, /<target dev='sda' bus='sata'\/>/, 'the CD-ROM starts its own sdX names');
    validate(o.file);
    // virtio-scsi puts a controller in.
    const s = xmlOf(vm, t.dir, { diskBus: 'scsi', machine: 'q35' });
    assert.match(s.xml, /<controller type='scsi' index='0' model='virtio-scsi'\/>/);
    validate(s.file);
  } finally { t.cleanup(); }
});

test('NVMe/SATA Ubuntu BIOS guest, one default bridge for all NICs, --machine pc puts CD-ROMs on IDE', async () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'nv.vmdk'), '8M');
    makeVmdk(path.join(t.dir, 'sa.vmdk'), '8M');
    const vm = await readVmx(nvmeVmx(t.dir));
    const nets: NetworkMap = { bySource: new Map() };
    addNetworkMapping(nets, 'bridge', 'br0');
    const { xml, file } = xmlOf(vm, t.dir, { networks: nets, outputFormat: 'raw' });
    assert.match(xml, /<target dev='vda' bus='virtio'\/>[\s\S]*<target dev='vdb' bus='virtio'\/>/);
    assert.match(xml, /<driver name='qemu' type='raw'\/>\s*<source file='[^']*-vda\.raw'\/>/);
    assert.match(xml, /<source bridge='br0'\/>/);
    assert.match(xml, /<mac address='00:50:56:80:12:34'\/>/);
    validate(file);
    const pc = xmlOf(vm, t.dir, { machine: 'pc' });
    assert.match(pc.xml, /machine='pc'/);
    assert.match(pc.xml, /<target dev='hda' bus='ide'\/>/);
    validate(pc.file);
  } finally { t.cleanup(); }
});

test('OVF guests (VMware RHEL EFI, VirtualBox Debian EFI) produce valid domains', () => {
  const t = tmpdir();
  try {
    const vmw = parseOvf(vmwareOvf('rhel8', [{ id: 'vmdisk1', href: 'rhel8-disk1.vmdk', capacity: 16, units: 'byte * 2^30' }], { firmware: 'efi', secureBoot: true }), 'x.ovf');
    const a = xmlOf(vmw, t.dir);
    assert.match(a.xml, /<os firmware='efi'>/);
    assert.match(a.xml, /<mac address='00:50:56:ab:cd:ef'\/>/);
    validate(a.file);
    assert.equal(glanceDocument(a.plan, new Map()).images[0].min_disk, 16);

    const vb = parseOvf(virtualboxOvf('deb', { id: 'vmdisk1', href: 'deb-disk001.vmdk', capacity: 3 * 1024 ** 3 + 1 }), 'y.ovf');
    const b = xmlOf(vb, t.dir);
    assert.match(b.xml, /<uuid>7f1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9<\/uuid>/);
    assert.match(b.xml, /<mac address='08:00:27:aa:bb:cc'\/>/);
    validate(b.file);
    assert.equal(glanceDocument(b.plan, new Map()).images[0].min_disk, 4, '3 GiB + 1 byte rounds up');
    assert.equal(glanceProperties(b.plan).os_distro, 'debian');
  } finally { t.cleanup(); }
});

test('guest classification: virtio for modern Linux, not for old or unknown; legacy guests get pc + ide', () => {
  const c = (guestOS: string) => classifyGuest({ guestOS });
  assert.deepEqual([c('ubuntu-64').virtio, c('ubuntu-64').distro, c('ubuntu-64').arch], [true, 'ubuntu', 'x86_64']);
  assert.deepEqual([c('rhel4').virtio, c('rhel4').legacy, c('rhel4').arch], [false, true, 'i686']);
  assert.equal(c('centos8_64Guest').distro, 'centos');
  assert.equal(c('sles15-64').distro, 'sled');
  assert.equal(c('windows9-64').family, 'windows');
  assert.equal(c('windows9-64').e1000e, true);
  assert.equal(c('winxppro').legacy, true);
  assert.equal(c('freebsd13-64').virtio, true);
  assert.equal(c('other').family, 'other');
  assert.equal(classifyGuest({ osCimId: 94 }).distro, 'ubuntu');
  assert.equal(classifyGuest({ osDescription: 'Microsoft Windows Server 2016 (64-bit)' }).family, 'windows');

  const xp: SourceVM = {
    name: 'xp', origin: 'vmx', sourceFile: '/x/xp.vmx', hypervisor: 'vmware', memoryBytes: 512 << 20, vcpus: 1, firmware: 'bios', secureBoot: false,
    guestOS: 'winxppro', controllers: [], removables: [{ id: 'ide1:0', kind: 'cdrom', bus: 'ide', controller: 1, unit: 0 }], nics: [], serials: [], warnings: [],
    disks: [{ id: 'ide0:0', bus: 'ide', controller: 0, unit: 0, fileName: 'xp.vmdk' }],
  };
  const p = planTarget(xp, { outputDir: '/out' });
  assert.deepEqual([p.machine, p.diskBus, p.nicModel, p.arch], ['pc', 'ide', 'e1000', 'i686']);
  assert.deepEqual(p.cdroms.map((x) => x.dev), ['hdb']);
  const t = tmpdir();
  try {
    const f = path.join(t.dir, 'xp.xml');
    fs.writeFileSync(f, domainXml(p));
    assert.match(fs.readFileSync(f, 'utf8'), /<pae\/>/);
    validate(f);
  } finally { t.cleanup(); }
  assert.throws(() => planTarget({ ...xp, firmware: 'uefi' }, { outputDir: '/out', machine: 'pc' }), /q35/);
  assert.throws(() => planTarget(xp, { outputDir: '/out', diskBus: 'ide', machine: 'q35' }), /no IDE/);
});

test('drive letters and network mapping', () => {
  assert.deepEqual([0, 1, 25, 26, 27, 701].map(driveLetters), ['a', 'b', 'z', 'aa', 'ab', 'zz']);
  const m: NetworkMap = { bySource: new Map() };
  addNetworkMapping(m, 'network', 'VM Network:prod');
  addNetworkMapping(m, 'network', 'default2');
  assert.deepEqual(m.bySource.get('VM Network'), { type: 'network', name: 'prod' });
  assert.deepEqual(m.default, { type: 'network', name: 'default2' });
  assert.throws(() => addNetworkMapping(m, 'bridge', 'br0'), /already set/);
});
