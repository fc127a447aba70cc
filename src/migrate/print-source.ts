// --print-source: the source VM in virt-v2v's layout and field names (so the two can be
// compared line by line), followed by what imgport reads beyond virt-v2v.

import type { SourceBus, SourceVM } from './model.js';

function slot(bus: SourceBus, controller: number, unit: number): number {
  if (bus === 'ide') return controller * 2 + unit;
  if (bus === 'scsi') return controller * 16 + unit;
  if (bus === 'sata') return controller * 30 + unit;
  return unit;
}

export function printSource(vm: SourceVM): string {
  const L: string[] = [];
  L.push('Source guest information (--print-source option):', '');
  L.push(`    source name: ${vm.name}`);
  L.push(`hypervisor type: ${vm.hypervisor}`);
  L.push(`       VM genid: ${vm.genid ?? ''}`);
  L.push(`         memory: ${vm.memoryBytes} (bytes)`);
  L.push(`       nr vCPUs: ${vm.vcpus}`);
  L.push(`     CPU vendor: `);
  L.push(`      CPU model: `);
  L.push(`   CPU topology: ${vm.topology ? `sockets: ${vm.topology.sockets} cores/socket: ${vm.topology.cores} threads/core: ${vm.topology.threads}` : ''}`);
  L.push(`   CPU features: `);
  L.push(`       firmware: ${vm.firmware}`);
  L.push(`        display: `);
  L.push(`          sound: ${vm.sound ?? ''}`);
  L.push('disks:');
  vm.disks.forEach((d, i) => L.push(`\t${i} [${d.bus}]`));
  L.push('removable media:');
  for (const r of vm.removables) {
    const what = r.kind === 'cdrom' ? 'CD-ROM' : 'Floppy';
    L.push(`\t${what}${r.bus !== 'floppy' && r.bus !== 'unknown' ? ` [${r.bus}]` : ''} in slot ${vm.origin === 'vmx' ? slot(r.bus, r.controller, r.unit) : r.unit}`);
  }
  L.push('NICs:');
  for (const n of vm.nics) {
    L.push(`\t${n.connection === 'bridge' ? 'Bridge' : 'Network'} "${n.networkName}"${n.mac ? ` mac: ${n.mac}` : ''}${n.model ? ` [${n.model}]` : ''}`);
  }
  L.push('');
  L.push('imgport details:');
  L.push(`         origin: ${vm.origin} ${vm.sourceFile}`);
  L.push(`           uuid: ${vm.uuid ?? ''}`);
  L.push(`    secure boot: ${vm.secureBoot ? 'yes' : 'no'}`);
  L.push(`       guest OS: ${vm.guestOS ?? ''}${vm.osDescription ? ` (${vm.osDescription})` : ''}${vm.osCimId !== undefined ? ` [CIM ${vm.osCimId}]` : ''}`);
  L.push(`    hw version: ${vm.hardwareVersion ?? ''}`);
  L.push('controllers:');
  for (const c of vm.controllers) L.push(`\t${c.id} [${c.bus}]${c.model ? ` ${c.model}` : ''}`);
  L.push('disk files:');
  vm.disks.forEach((d, i) => {
    const parts = [`\t${i} ${d.id} ${d.fileName}`];
    if (d.capacity !== undefined) parts.push(`capacity ${d.capacity}`);
    if (d.format) parts.push(`format ${d.format}`);
    if (d.ovfCompression) parts.push(`compression ${d.ovfCompression}`);
    if (d.mode) parts.push(`mode ${d.mode}`);
    if (d.chain && d.chain.length > 1) parts.push(`snapshot chain ${d.chain.length} files`);
    L.push(parts.join(' '));
  });
  L.push('removable files:');
  for (const r of vm.removables) L.push(`\t${r.id} ${r.deviceType ?? ''} ${r.fileName ?? '(empty)'}`);
  L.push('NIC details:');
  for (const n of vm.nics) L.push(`\t${n.index} address type ${n.addressType ?? ''} connection ${n.connectionType ?? n.connection}`);
  if (vm.warnings.length) {
    L.push('warnings:');
    for (const w of vm.warnings) L.push(`\t${w}`);
  }
  return L.join('\n') + '\n';
}
