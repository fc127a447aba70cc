// `imgport v2v` end to end: VMX (with a snapshot chain), OVA, directory OVF → converted
// disks equal to the source per `qemu-img compare`, valid XML, Glance JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpdir, have, makeVmdk, makeStreamVmdk, linuxEfiVmx, windowsBiosVmx, vmwareOvf, virtualboxOvf, packOva } from './fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function imgport(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function compare(a: string, fa: string, b: string, fb: string): void {
  const r = spawnSync('qemu-img', ['compare', '-f', fa, '-F', fb, a, b], { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img compare ${a} ${b}: ${r.stdout}${r.stderr}`);
}

function validate(file: string): void {
  if (have('virt-xml-validate')) {
    const r = spawnSync('virt-xml-validate', [file, 'domain'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  }
  if (have('virsh')) {
    const r = spawnSync('virsh', ['-c', 'test:///default', 'define', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  }
}

test('VMX with a snapshot chain → qcow2 equal to the chain, XML valid, Glance JSON', () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'base.vmdk'), '48M', [[0x11, '0', '1M'], [0x33, '40M', '64k']]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'vmdk', '-b', 'base.vmdk', '-F', 'vmdk', path.join(t.dir, 'base-000001.vmdk')]);
    execFileSync('qemu-io', ['-f', 'vmdk', '-c', 'write -P 0x22 512k 1M', path.join(t.dir, 'base-000001.vmdk')], { stdio: 'ignore' });
    const vmx = linuxEfiVmx(t.dir, 'base-000001.vmdk');
    const out = path.join(t.dir, 'out');
    const r = imgport(['v2v', vmx, '-o', out]);
    assert.equal(r.status, 0, r.stderr);
    const stem = 'web_server_prod_';
    const disk = path.join(out, `${stem}-vda.qcow2`);
    assert.equal(execFileSync('qemu-img', ['info', '--output', 'json', disk], { encoding: 'utf8' }).includes('"format": "qcow2"'), true);
    compare(path.join(t.dir, 'base-000001.vmdk'), 'vmdk', disk, 'qcow2');
    // The copy is flat: no backing file left in the qcow2.
    assert.doesNotMatch(execFileSync('qemu-img', ['info', disk], { encoding: 'utf8' }), /backing file/);
    // ...and it really differs from the base alone (the child's data is there).
    assert.notEqual(spawnSync('qemu-img', ['compare', '-f', 'vmdk', '-F', 'qcow2', path.join(t.dir, 'base.vmdk'), disk]).status, 0);

    const xmlFile = path.join(out, `${stem}.xml`);
    validate(xmlFile);
    assert.match(fs.readFileSync(xmlFile, 'utf8'), new RegExp(`<source file='${disk.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'/>`));
    const g = JSON.parse(fs.readFileSync(path.join(out, `${stem}.glance.json`), 'utf8'));
    assert.equal(g.min_ram, 4096);
    assert.equal(g.images.length, 1);
    assert.equal(g.images[0].min_disk, 1);
    assert.equal(g.images[0].virtual_size, 48 << 20);
    assert.equal(g.images[0].disk_format, 'qcow2');
    assert.equal(g.properties.hw_firmware_type, 'uefi');
    assert.equal(g.properties.os_distro, 'rhel');
    assert.equal(r.stdout, `${xmlFile}\n${path.join(out, `${stem}.glance.json`)}\n`);
  } finally { t.cleanup(); }
});

test('Windows VMX, two disks, -of raw', () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'win.vmdk'), '32M', [[0x41, '0', '64k'], [0x42, '31M', '1M']]);
    makeVmdk(path.join(t.dir, 'win-data.vmdk'), '16M', [[0x43, '8M', '4k']]);
    const out = path.join(t.dir, 'out');
    const r = imgport(['v2v', windowsBiosVmx(t.dir), '-o', out, '-of', 'raw', '--network', 'lan']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /missing\.iso not found/);
    compare(path.join(t.dir, 'win.vmdk'), 'vmdk', path.join(out, 'Win2019-sda.raw'), 'raw');
    compare(path.join(t.dir, 'win-data.vmdk'), 'vmdk', path.join(out, 'Win2019-sdb.raw'), 'raw');
    const xml = fs.readFileSync(path.join(out, 'Win2019.xml'), 'utf8');
    assert.match(xml, /<source network='lan'\/>/);
    validate(path.join(out, 'Win2019.xml'));
    const g = JSON.parse(fs.readFileSync(path.join(out, 'Win2019.glance.json'), 'utf8'));
    assert.deepEqual(g.images.map((i: { name: string; disk_format: string }) => [i.name, i.disk_format]), [['Win2019-sda', 'raw'], ['Win2019-sdb', 'raw']]);
    assert.equal(g.properties.hw_disk_bus, 'sata');
    assert.equal(g.properties.os_type, 'windows');
  } finally { t.cleanup(); }
});

test('OVA (VMware style, streamOptimized disk) → qcow2 equal to the VMDK; scratch files removed', () => {
  const t = tmpdir();
  try {
    const src = path.join(t.dir, 'pkg');
    fs.mkdirSync(src);
    makeStreamVmdk(path.join(src, 'app-disk1.vmdk'), '24M', 0x7e);
    fs.writeFileSync(path.join(src, 'app.ovf'), vmwareOvf('app', [{ id: 'vmdisk1', href: 'app-disk1.vmdk', capacity: 24, units: 'byte * 2^20' }], { firmware: 'efi' }));
    const ova = path.join(t.dir, 'app.ova');
    packOva(src, ova, 'app.ovf', ['app-disk1.vmdk']);
    const out = path.join(t.dir, 'out');
    const r = imgport(['v2v', ova, '-o', out]);
    assert.equal(r.status, 0, r.stderr);
    compare(path.join(src, 'app-disk1.vmdk'), 'vmdk', path.join(out, 'app-vda.qcow2'), 'qcow2');
    validate(path.join(out, 'app.xml'));
    assert.deepEqual(fs.readdirSync(out).sort(), ['app-vda.qcow2', 'app.glance.json', 'app.xml']);
    // A tampered disk member is refused before anything is converted.
    packOva(src, path.join(t.dir, 'bad.ova'), 'app.ovf', ['app-disk1.vmdk'], { corrupt: 'app-disk1.vmdk' });
    const bad = imgport(['v2v', path.join(t.dir, 'bad.ova'), '-o', path.join(t.dir, 'out2')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /does not match the manifest/);
  } finally { t.cleanup(); }
});

test('VirtualBox OVF in a folder → qcow2', () => {
  const t = tmpdir();
  try {
    makeStreamVmdk(path.join(t.dir, 'deb-disk001.vmdk'), '16M', 0x3c);
    fs.writeFileSync(path.join(t.dir, 'deb.ovf'), virtualboxOvf('deb', { id: 'vmdisk1', href: 'deb-disk001.vmdk', capacity: 16 << 20 }));
    const out = path.join(t.dir, 'out');
    const r = imgport(['v2v', path.join(t.dir, 'deb.ovf'), '-o', out]);
    assert.equal(r.status, 0, r.stderr);
    compare(path.join(t.dir, 'deb-disk001.vmdk'), 'vmdk', path.join(out, 'deb-vda.qcow2'), 'qcow2');
    const xml = fs.readFileSync(path.join(out, 'deb.xml'), 'utf8');
    assert.match(xml, /<os firmware='efi'>/);
    assert.match(xml, /<mac address='08:00:27:aa:bb:cc'\/>/);
    validate(path.join(out, 'deb.xml'));
  } finally { t.cleanup(); }
});

test('--dry-run writes XML and JSON only; --print-source prints; bad usage exits 1', () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'linux.vmdk'), '8M');
    const vmx = linuxEfiVmx(t.dir);
    const out = path.join(t.dir, 'dry');
    const r = imgport(['v2v', vmx, '-o', out, '--dry-run', '--nic-model', 'e1000e', '--bridge', 'br9']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(out).sort(), ['web_server_prod_.glance.json', 'web_server_prod_.xml']);
    const xml = fs.readFileSync(path.join(out, 'web_server_prod_.xml'), 'utf8');
    assert.match(xml, /<interface type='bridge'>\s*<mac address='00:0c:29:aa:bb:cc'\/>\s*<source bridge='br9'\/>\s*<model type='e1000e'\/>/);
    const g = JSON.parse(fs.readFileSync(path.join(out, 'web_server_prod_.glance.json'), 'utf8'));
    assert.equal(g.properties.hw_vif_model, 'e1000e');
    assert.equal(g.images[0].virtual_size, 8 << 20, 'source capacity from the VMDK descriptor');

    const p = imgport(['v2v', vmx, '--print-source']);
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, /^    source name: web server"prod"$/m);
    assert.match(p.stdout, /^         memory: 4294967296 \(bytes\)$/m);
    assert.match(p.stdout, /^   CPU topology: sockets: 2 cores\/socket: 2 threads\/core: 1$/m);
    assert.match(p.stdout, /^\tBridge "VM Network" mac: 00:0c:29:aa:bb:cc \[vmxnet3\]$/m);

    assert.equal(imgport(['v2v', vmx]).status, 1, '-o is required');
    const bad = imgport(['v2v', vmx, '-o', out, '-of', 'vdi']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /-of must be one of qcow2, raw/);
    assert.equal(imgport(['v2v', vmx, '-o', out, '--disk-bus', 'floppy']).status, 1);
    const missing = imgport(['v2v', path.join(t.dir, 'nope.vmx'), '-o', out]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nope\.vmx/);
  } finally { t.cleanup(); }
});

test('ESXi-style text descriptor with a -flat.vmdk extent', () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'esx.vmdk'), '16M', [[0x44, '1M', '1M']], ['-o', 'subformat=monolithicFlat']);
    assert.ok(fs.existsSync(path.join(t.dir, 'esx-flat.vmdk')));
    fs.writeFileSync(path.join(t.dir, 'esx.vmx'), 'displayName = "esx"\nguestOS = "debian11-64"\nscsi0.present = "TRUE"\nscsi0:0.fileName = "esx.vmdk"\n');
    const out = path.join(t.dir, 'out');
    const r = imgport(['v2v', path.join(t.dir, 'esx.vmx'), '-o', out, '-q']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', '-q silences the progress lines');
    compare(path.join(t.dir, 'esx.vmdk'), 'vmdk', path.join(out, 'esx-vda.qcow2'), 'qcow2');
    const p = imgport(['v2v', path.join(t.dir, 'esx.vmx'), '-o', path.join(t.dir, 'out2'), '-q', '--progress', 'json']);
    assert.equal(p.status, 0, p.stderr);
    const lines = p.stderr.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.length >= 1);
    assert.deepEqual(lines.at(-1), { disk: 'vda', done: 16 << 20, total: 16 << 20, percent: 100 });
  } finally { t.cleanup(); }
});

test('a disk that fails to convert removes the disks already written, and no XML is left', () => {
  const t = tmpdir();
  try {
    makeVmdk(path.join(t.dir, 'ok.vmdk'), '4M', [[0x1, '0', '4k']]);
    fs.writeFileSync(path.join(t.dir, 'broken.vmdk'), '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 8192 FLAT "broken-flat.vmdk" 0\n');
    fs.writeFileSync(path.join(t.dir, 'two.vmx'), 'displayName = "two"\nguestOS = "ubuntu-64"\nscsi0:0.fileName = "ok.vmdk"\nscsi0:1.fileName = "broken.vmdk"\n');
    const out = path.join(t.dir, 'out');
    const r = imgport(['v2v', path.join(t.dir, 'two.vmx'), '-o', out]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /broken-flat\.vmdk/);
    assert.deepEqual(fs.readdirSync(out), []);
  } finally { t.cleanup(); }
});
