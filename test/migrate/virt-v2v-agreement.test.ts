// Our --print-source against virt-v2v's (`virt-v2v -i vmx|ova FILE --print-source`,
// which parses the metadata without booting its appliance). Skipped when virt-v2v is not
// installed. Where we deliberately read more than virt-v2v 2.2 (static MACs, SATA
// CD-ROMs, VirtualBox's vbox:Machine, IDE slot from the OVF controller address) the
// comparison says so field by field; everything else must be identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadSource } from '../../src/migrate/v2v.js';
import { printSource } from '../../src/migrate/print-source.js';
import type { SourceVM } from '../../src/migrate/model.js';
import { tmpdir, have, makeVmdk, makeStreamVmdk, linuxEfiVmx, windowsBiosVmx, nvmeVmx, vmwareOvf, virtualboxOvf, packOva, writeVmx } from './fixtures.js';

const hasV2v = have('virt-v2v');

interface Printed { fields: Map<string, string>; disks: string[]; removables: string[]; nics: string[] }

/** Splits a --print-source block (virt-v2v's or ours, up to our "imgport details") into its parts. */
function parsePrinted(out: string): Printed {
  const start = out.indexOf('Source guest information');
  assert.ok(start >= 0, `no --print-source block in:\n${out}`);
  const lines = out.slice(start).split('\n').slice(2);
  const p: Printed = { fields: new Map(), disks: [], removables: [], nics: [] };
  let section: 'fields' | 'disks' | 'removables' | 'nics' = 'fields';
  for (const l of lines) {
    if (l.startsWith('imgport details')) break;
    if (l === 'disks:') { section = 'disks'; continue; }
    if (l === 'removable media:') { section = 'removables'; continue; }
    if (l === 'NICs:') { section = 'nics'; continue; }
    if (l.trim() === '') continue;
    if (section === 'fields') {
      const i = l.indexOf(':');
      p.fields.set(l.slice(0, i).trim(), l.slice(i + 1).trim());
    } else {
      p[section].push(l.trim());
    }
  }
  return p;
}

function virtV2v(kind: 'vmx' | 'ova', file: string): Printed {
  const r = spawnSync('virt-v2v', ['-i', kind, file, '--print-source'], {
    encoding: 'utf8', timeout: 60_000,
    env: { ...process.env, LIBGUESTFS_BACKEND: 'direct' },
  });
  assert.equal(r.status, 0, `virt-v2v -i ${kind} ${file}:\n${r.stdout}${r.stderr}`);
  return parsePrinted(r.stdout);
}

/** The MAC virt-v2v 2.2 can see: it reads only generatedAddress (static MACs are lost) and nothing from vbox:Machine. */
function compareWith(vm: SourceVM, theirs: Printed, ours: Printed, vmxText?: string): void {
  const vbox = vm.hypervisor === 'virtualbox';
  for (const [k, v] of theirs.fields) {
    if (vbox && k === 'hypervisor type') { assert.equal(ours.fields.get(k), 'virtualbox'); continue; } // virt-v2v says vmware for every OVA
    if (vbox && k === 'firmware') { assert.equal(v, 'bios'); continue; } // virt-v2v ignores vbox:Machine/Firmware
    assert.equal(ours.fields.get(k), v, `field '${k}'`);
  }
  assert.deepEqual([...ours.fields.keys()], [...theirs.fields.keys()], 'same fields in the same order');
  assert.deepEqual(ours.disks, theirs.disks, 'disks');

  // Removables: virt-v2v knows only IDE CD-ROMs; ours must contain each of them.
  const ideOurs = ours.removables.filter((r) => / \[ide\] /.test(r));
  if (vm.origin === 'vmx') {
    assert.deepEqual(ideOurs, theirs.removables, 'IDE CD-ROMs');
  } else {
    // OVF: virt-v2v takes AddressOnParent alone as the slot; we add 2 × the IDE controller's address.
    assert.deepEqual(ideOurs.map((r) => r.replace(/ in slot \d+$/, '')), theirs.removables.map((r) => r.replace(/ in slot \d+$/, '')));
  }

  assert.equal(ours.nics.length, theirs.nics.length, 'NIC count');
  ours.nics.forEach((line, i) => {
    const their = theirs.nics[i];
    const strip = (s: string) => s.replace(/ mac: \S+/, '');
    assert.equal(strip(line), strip(their), `NIC ${i} type, network and model`);
    // virt-v2v prints the MAC as the .vmx spells it; we print it lower-cased.
    const theirMac = / mac: (\S+)/.exec(their)?.[1]?.toLowerCase();
    const ourMac = / mac: (\S+)/.exec(line)?.[1];
    const nic = vm.nics[i];
    if (nic.addressType === 'static') {
      // We take ethernetN.address; virt-v2v shows generatedAddress (if any).
      const gen = vmxText ? /ethernet\d+\.generatedAddress = "([^"]+)"/i.exec(vmxText.split('\n').filter((l) => l.toLowerCase().startsWith(`ethernet${nic.index}.`)).join('\n'))?.[1]?.toLowerCase() : undefined;
      assert.equal(theirMac, gen);
      assert.equal(ourMac, nic.mac);
    } else if (vbox) {
      assert.equal(theirMac, undefined);
      assert.ok(ourMac, 'we read the MAC from vbox:Machine');
    } else {
      assert.equal(ourMac, theirMac, `NIC ${i} MAC`);
    }
  });
}

test('--print-source agrees with virt-v2v -i vmx on every field it prints', { skip: !hasV2v && 'virt-v2v is not installed' }, async () => {
  const t = tmpdir();
  try {
    for (const f of ['linux.vmdk', 'win.vmdk', 'win-data.vmdk', 'nv.vmdk', 'sa.vmdk']) makeVmdk(path.join(t.dir, f), '8M');
    // virt-v2v opens disks on controllers whose present = FALSE (we drop them, as VMware does): leave that case out here.
    const linux = linuxEfiVmx(t.dir);
    const text = fs.readFileSync(linux, 'utf8').split('\n').filter((l) => !/^scsi1/.test(l));
    writeVmx(linux, text);
    const files = [linux, windowsBiosVmx(t.dir), nvmeVmx(t.dir)];
    // Plus one with a SATA CD-ROM, floppy, hostonly NIC without networkName, no coresPerSocket, sound es1371.
    const extra = path.join(t.dir, 'extra.vmx');
    writeVmx(extra, [
      'displayName = "extra|7Cpipe"', 'memsize = "512"', 'numvcpus = "2"', 'firmware = "bios"',
      'ide0:0.present = "TRUE"', 'ide0:0.fileName = "linux.vmdk"', 'ide0:0.deviceType = "ata-hardDisk"',
      'ide0:1.present = "TRUE"', 'ide0:1.deviceType = "atapi-cdrom"', 'ide0:1.fileName = "/dev/sr0"',
      'sata0.present = "TRUE"', 'sata0:2.present = "TRUE"', 'sata0:2.deviceType = "cdrom-image"', 'sata0:2.fileName = "x.iso"',
      'floppy0.present = "TRUE"', 'floppy0.fileType = "file"', 'floppy0.fileName = "a.flp"',
      'sound.present = "TRUE"', 'sound.virtualDev = "es1371"',
      'ethernet0.present = "TRUE"', 'ethernet0.connectionType = "hostonly"', 'ethernet0.addressType = "generated"', 'ethernet0.generatedAddress = "00:0c:29:12:34:56"',
      'ethernet1.present = "TRUE"', 'ethernet1.virtualDev = "vlance"', 'ethernet1.connectionType = "bridged"',
    ]);
    files.push(extra);
    for (const f of files) {
      const vm = await loadSource(f);
      compareWith(vm, virtV2v('vmx', f), parsePrinted(printSource(vm)), fs.readFileSync(f, 'utf8'));
    }
  } finally { t.cleanup(); }
});

test('--print-source agrees with virt-v2v -i ova (VMware and VirtualBox OVAs)', { skip: !hasV2v && 'virt-v2v is not installed' }, async () => {
  const t = tmpdir();
  try {
    makeStreamVmdk(path.join(t.dir, 'app-disk1.vmdk'), '8M', 1);
    makeStreamVmdk(path.join(t.dir, 'app-disk2.vmdk'), '4M', 2);
    fs.writeFileSync(path.join(t.dir, 'app.ovf'), vmwareOvf('app', [
      { id: 'vmdisk1', href: 'app-disk1.vmdk', capacity: 8, units: 'byte * 2^20' },
      { id: 'vmdisk2', href: 'app-disk2.vmdk', capacity: 4 << 20 },
    ], { firmware: 'efi', secureBoot: true, memMiB: 6144 }));
    packOva(t.dir, path.join(t.dir, 'app.ova'), 'app.ovf', ['app-disk1.vmdk', 'app-disk2.vmdk']);
    fs.writeFileSync(path.join(t.dir, 'bios.ovf'), vmwareOvf('bios-vm', [{ id: 'd', href: 'app-disk1.vmdk', capacity: 8 << 20 }], { firmware: 'bios' }));
    packOva(t.dir, path.join(t.dir, 'bios.ova'), 'bios.ovf', ['app-disk1.vmdk']);
    fs.writeFileSync(path.join(t.dir, 'deb.ovf'), virtualboxOvf('deb', { id: 'vmdisk1', href: 'app-disk1.vmdk', capacity: 8 << 20 }));
    packOva(t.dir, path.join(t.dir, 'deb.ova'), 'deb.ovf', ['app-disk1.vmdk']);
    for (const f of ['app.ova', 'bios.ova', 'deb.ova']) {
      const file = path.join(t.dir, f);
      const vm = await loadSource(file);
      compareWith(vm, virtV2v('ova', file), parsePrinted(printSource(vm)));
    }
  } finally { t.cleanup(); }
});

test('the comparison itself catches a difference', () => {
  const a = parsePrinted('Source guest information (--print-source option):\n\n    source name: a\n       nr vCPUs: 2\ndisks:\n\t0 [scsi]\nremovable media:\nNICs:\n');
  const b = parsePrinted('Source guest information (--print-source option):\n\n    source name: a\n       nr vCPUs: 4\ndisks:\n\t0 [scsi]\nremovable media:\nNICs:\n');
  const vm = { origin: 'vmx', hypervisor: 'vmware', nics: [] } as unknown as SourceVM;
  assert.throws(() => compareWith(vm, a, b), /nr vCPUs/);
});
