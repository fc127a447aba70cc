// TargetPlan → libvirt domain XML (checked against libvirt's RNG with virt-xml-validate
// and loaded by `virsh -c test:///default define` in the tests).

import type { TargetPlan } from './target.js';

export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const a = (v: string | number) => `'${xmlEscape(String(v))}'`;

export function domainXml(p: TargetPlan): string {
  const L: string[] = [];
  const out = (indent: number, s: string) => L.push('  '.repeat(indent) + s);

  out(0, `<domain type='kvm'>`);
  out(1, `<name>${xmlEscape(p.name)}</name>`);
  if (p.vm.uuid) out(1, `<uuid>${p.vm.uuid}</uuid>`);
  if (p.vm.genid) out(1, `<genid>${p.vm.genid}</genid>`);
  const desc = `Converted by imgport v2v from ${p.vm.origin.toUpperCase()} ${p.vm.sourceFile}` + (p.vm.guestOS ? ` (guest OS ${p.vm.guestOS})` : '');
  out(1, `<description>${xmlEscape(desc)}</description>`);
  out(1, `<memory unit='KiB'>${p.memoryKiB}</memory>`);
  out(1, `<currentMemory unit='KiB'>${p.memoryKiB}</currentMemory>`);
  out(1, `<vcpu placement='static'>${p.vcpus}</vcpu>`);
  if (p.topology) {
    out(1, `<cpu mode='host-model'>`);
    out(2, `<topology sockets=${a(p.topology.sockets)} cores=${a(p.topology.cores)} threads=${a(p.topology.threads)}/>`);
    out(1, `</cpu>`);
  } else {
    out(1, `<cpu mode='host-model'/>`);
  }

  out(1, p.firmware === 'uefi' ? `<os firmware='efi'>` : `<os>`);
  out(2, `<type arch=${a(p.arch)} machine=${a(p.machine)}>hvm</type>`);
  if (p.firmware === 'uefi') {
    // Firmware auto-selection picks an OVMF build with (or without) secure boot and MS keys.
    out(2, `<firmware>`);
    out(3, `<feature enabled=${a(p.secureBoot ? 'yes' : 'no')} name='secure-boot'/>`);
    if (p.secureBoot) out(3, `<feature enabled='yes' name='enrolled-keys'/>`);
    out(2, `</firmware>`);
  }
  out(1, `</os>`);

  out(1, `<features>`);
  out(2, `<acpi/>`);
  out(2, `<apic/>`);
  if (p.arch === 'i686') out(2, `<pae/>`);
  // Secure boot firmware only runs with SMM on.
  if (p.secureBoot) out(2, `<smm state='on'/>`);
  out(1, `</features>`);
  out(1, `<clock offset=${a(p.clock)}/>`);
  out(1, `<on_poweroff>destroy</on_poweroff>`);
  out(1, `<on_reboot>restart</on_reboot>`);
  out(1, `<on_crash>restart</on_crash>`);

  out(1, `<devices>`);
  if (p.diskBus === 'scsi') out(2, `<controller type='scsi' index='0' model='virtio-scsi'/>`);
  for (const d of p.disks) {
    out(2, `<disk type='file' device='disk'>`);
    out(3, `<driver name='qemu' type=${a(d.format)}/>`);
    out(3, `<source file=${a(d.file)}/>`);
    out(3, `<target dev=${a(d.dev)} bus=${a(d.bus)}/>`);
    if (d.bootOrder) out(3, `<boot order=${a(d.bootOrder)}/>`);
    out(2, `</disk>`);
  }
  for (const c of p.cdroms) {
    out(2, `<disk type='file' device='cdrom'>`);
    out(3, `<driver name='qemu' type='raw'/>`);
    if (c.file) out(3, `<source file=${a(c.file)}/>`);
    out(3, `<target dev=${a(c.dev)} bus=${a(c.bus)}/>`);
    out(3, `<readonly/>`);
    out(2, `</disk>`);
  }
  for (const n of p.nics) {
    out(2, `<interface type=${a(n.net.type)}>`);
    if (n.mac) out(3, `<mac address=${a(n.mac)}/>`);
    out(3, n.net.type === 'bridge' ? `<source bridge=${a(n.net.name)}/>` : `<source network=${a(n.net.name)}/>`);
    out(3, `<model type=${a(n.model)}/>`);
    out(2, `</interface>`);
  }
  out(2, `<serial type='pty'>`);
  out(3, `<target port='0'/>`);
  out(2, `</serial>`);
  out(2, `<console type='pty'>`);
  out(3, `<target type='serial' port='0'/>`);
  out(2, `</console>`);
  if (p.guest.family === 'linux') {
    out(2, `<channel type='unix'>`);
    out(3, `<target type='virtio' name='org.qemu.guest_agent.0'/>`);
    out(2, `</channel>`);
  }
  out(2, `<input type='tablet' bus='usb'/>`);
  if (p.graphics !== 'none') {
    out(2, `<graphics type=${a(p.graphics)} autoport='yes'>`);
    out(3, `<listen type='address' address='127.0.0.1'/>`);
    out(2, `</graphics>`);
    out(2, `<video>`);
    out(3, p.graphics === 'spice' ? `<model type='qxl' heads='1'/>` : `<model type='vga' vram='16384' heads='1'/>`);
    out(2, `</video>`);
  }
  if (p.sound) out(2, `<sound model=${a(p.sound)}/>`);
  if (p.guest.virtio) {
    out(2, `<memballoon model='virtio'/>`);
    out(2, `<rng model='virtio'>`);
    out(3, `<backend model='random'>/dev/urandom</backend>`);
    out(2, `</rng>`);
  } else {
    out(2, `<memballoon model='none'/>`);
  }
  out(1, `</devices>`);
  out(0, `</domain>`);
  return L.join('\n') + '\n';
}
