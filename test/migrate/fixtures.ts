// Test fixtures for the migration tests, generated at run time: .vmx files for several
// guests, VMDK disks made by qemu-img (with data written by qemu-io so conversions have
// something to compare), VMware- and VirtualBox-style OVF descriptors, OVAs packed with tar.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';

export function tmpdir(prefix = 'imgport-migrate-'): { dir: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** A VMDK of `size` with a few recognisable patterns written at offsets. */
export function makeVmdk(file: string, size: string, writes: Array<[pattern: number, offset: string, len: string]> = [], extra: string[] = []): void {
  execFileSync('qemu-img', ['create', '-q', '-f', 'vmdk', ...extra, file, size]);
  for (const [p, off, len] of writes) execFileSync('qemu-io', ['-f', 'vmdk', '-c', `write -P ${p} ${off} ${len}`, file], { stdio: 'ignore' });
}

/** A streamOptimized VMDK with data (what OVAs carry). */
export function makeStreamVmdk(file: string, size: string, pattern: number): void {
  const raw = file + '.src.raw';
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', raw, size]);
  execFileSync('qemu-io', ['-f', 'raw', '-c', `write -P ${pattern} 1M 512k`, raw], { stdio: 'ignore' });
  execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, file]);
  fs.unlinkSync(raw);
}

export function writeVmx(file: string, lines: string[]): void {
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

/** Linux EFI + secure boot, pvscsi, vmxnet3 (bridged, generated MAC), escapes and disabled devices. */
export function linuxEfiVmx(dir: string, disk = 'linux.vmdk'): string {
  const f = path.join(dir, 'linux.vmx');
  writeVmx(f, [
    '#!/usr/bin/vmware',
    '.encoding = "UTF-8"',
    'config.version = "8"',
    'virtualHW.version = "19"',
    '# a comment',
    'displayName = "web|20server|22prod|22"',
    'guestOS = "rhel9-64"',
    'memsize = "4096"',
    'NumVCPUs = "4"',
    'cpuid.coresPerSocket = "2"',
    'firmware = "efi"',
    'uefi.secureBoot.enabled = "TRUE"',
    'uuid.bios = "42 1a 2b 3c 4d 5e 6f 70-81 92 a3 b4 c5 d6 e7 f8"',
    'vm.genid = "-8536691797830587195"',
    'vm.genidX = "-1723453263670062919"',
    'scsi0.present = "TRUE"',
    'scsi0.virtualDev = "pvscsi"',
    'scsi0:0.present = "TRUE"',
    `scsi0:0.fileName = "${disk}"`,
    'scsi0:0.deviceType = "scsi-hardDisk"',
    'scsi1.present = "FALSE"',
    'scsi1.virtualDev = "lsilogic"',
    'scsi1:0.present = "TRUE"',
    'scsi1:0.fileName = "ghost.vmdk"',
    'ethernet0.present = "TRUE"',
    'ethernet0.virtualDev = "vmxnet3"',
    'ethernet0.networkName = "VM Network"',
    'ethernet0.connectionType = "bridged"',
    'ethernet0.addressType = "generated"',
    'ethernet0.generatedAddress = "00:0C:29:AA:BB:CC"',
    'ethernet1.present = "FALSE"',
    'ethernet1.virtualDev = "e1000"',
    'ethernet1.generatedAddress = "00:0c:29:00:00:01"',
    'sound.present = "TRUE"',
    'sound.virtualDev = "hdaudio"',
    'displayName = "duplicate ignored"',
  ]);
  return f;
}

/** Windows BIOS, lsilogic, e1000e with a static MAC, IDE CD-ROM, SATA data disk. */
export function windowsBiosVmx(dir: string, disks = { boot: 'win.vmdk', data: 'win-data.vmdk' }): string {
  const f = path.join(dir, 'win.vmx');
  writeVmx(f, [
    'config.version = "8"',
    'virtualHW.version = "14"',
    'displayName = "Win2019"',
    'guestOS = "windows2019srv-64"',
    'memSize = "8192"',
    'numvcpus = "2"',
    'firmware = "bios"',
    'uuid.bios = "56 4d 11 22 33 44 55 66-77 88 99 aa bb cc dd ee"',
    'scsi0.present = "TRUE"',
    'scsi0.virtualDev = "lsilogic"',
    'scsi0:0.present = "TRUE"',
    `scsi0:0.fileName = "${disks.boot}"`,
    'sata0.present = "TRUE"',
    'sata0:1.present = "TRUE"',
    `sata0:1.fileName = "${disks.data}"`,
    'ide1:0.present = "TRUE"',
    'ide1:0.deviceType = "cdrom-image"',
    'ide1:0.fileName = "missing.iso"',
    'ide1:0.startConnected = "FALSE"',
    'ethernet0.present = "TRUE"',
    'ethernet0.virtualDev = "e1000e"',
    'ethernet0.addressType = "static"',
    'ethernet0.address = "00:50:56:01:02:03"',
    'ethernet0.generatedAddress = "00:0c:29:ff:ff:ff"',
    'ethernet0.networkName = "Prod"',
    'ethernet0.connectionType = "custom"',
  ]);
  return f;
}

/** Linux BIOS with NVMe + SATA disks, a SATA CD-ROM, a vpx MAC, lower/upper-case key mix. */
export function nvmeVmx(dir: string, disks = { nvme: 'nv.vmdk', sata: 'sa.vmdk' }): string {
  const f = path.join(dir, 'nvme.vmx');
  writeVmx(f, [
    'DISPLAYNAME = "ubuntu-nvme"',
    'GUESTOS = "ubuntu-64"',
    'MEMSIZE = "1024"',
    'nvme0.present = "TRUE"',
    'nvme0:0.present = "TRUE"',
    `nvme0:0.fileName = "${disks.nvme}"`,
    'sata0.present = "TRUE"',
    'sata0:0.present = "TRUE"',
    `sata0:0.fileName = "${disks.sata}"`,
    'sata0:1.present = "TRUE"',
    'sata0:1.deviceType = "cdrom-raw"',
    'sata0:1.fileName = "auto detect"',
    'ethernet0.present = "TRUE"',
    'ethernet0.virtualDev = "vmxnet3"',
    'ethernet0.addressType = "vpx"',
    'ethernet0.generatedAddress = "00:50:56:80:12:34"',
    'ethernet0.connectionType = "nat"',
  ]);
  return f;
}

export interface OvfDisk { id: string; href: string; capacity: number; units?: string }

/** VMware-style OVF 1.0 (vmw:Config firmware, CoresPerSocket, AllocationUnits byte * 2^20). */
export function vmwareOvf(name: string, disks: OvfDisk[], opts: { firmware?: 'efi' | 'bios'; secureBoot?: boolean; osType?: string; osId?: number; memMiB?: number } = {}): string {
  const files = disks.map((d, i) => `    <File ovf:href="${d.href}" ovf:id="file${i + 1}"/>`).join('\n');
  const diskEls = disks.map((d, i) => `    <Disk ovf:capacity="${d.capacity}" ovf:capacityAllocationUnits="${d.units ?? 'byte'}" ovf:diskId="${d.id}" ovf:fileRef="file${i + 1}" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>`).join('\n');
  const diskItems = disks.map((d, i) => `      <Item>
        <rasd:AddressOnParent>${i}</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk ${i + 1}</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/${d.id}</rasd:HostResource>
        <rasd:InstanceID>${10 + i}</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>`).join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-123" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
${files}
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
${diskEls}
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="${name}">
    <Info>A virtual machine</Info>
    <Name>${name}</Name>
    <OperatingSystemSection ovf:id="${opts.osId ?? 80}" vmw:osType="${opts.osType ?? 'rhel8_64Guest'}">
      <Info>The kind of installed guest operating system</Info>
      <Description>Red Hat Enterprise Linux 8 (64-bit)</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>${name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-19</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>4 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>4</rasd:VirtualQuantity>
        <vmw:CoresPerSocket ovf:required="false">2</vmw:CoresPerSocket>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>${opts.memMiB ?? 2048}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>${opts.memMiB ?? 2048}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>1</rasd:Address>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>VirtualIDEController 1</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item ovf:required="false">
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:ElementName>CD/DVD drive 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:Parent>4</rasd:Parent>
        <rasd:ResourceSubType>vmware.cdrom.atapi</rasd:ResourceSubType>
        <rasd:ResourceType>15</rasd:ResourceType>
      </Item>
${diskItems}
      <Item>
        <rasd:Address>00:50:56:ab:cd:ef</rasd:Address>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on &quot;VM Network&quot;</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>20</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
${opts.firmware ? `      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="${opts.firmware}"/>` : ''}
${opts.secureBoot ? `      <vmw:Config ovf:required="false" vmw:key="bootOptions.efiSecureBootEnabled" vmw:value="true"/>` : ''}
      <vmw:Config ovf:required="false" vmw:key="tools.syncTimeWithHost" vmw:value="false"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}

/** VirtualBox-style OVF (vbox:Machine with EFI firmware, MACs, OSType; PIIX4 IDE, AHCI SATA). */
export function virtualboxOvf(name: string, disk: OvfDisk): string {
  return `<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="${disk.href}"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="${disk.capacity}" ovf:diskId="${disk.id}" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="0b8c3a5e-1111-2222-3333-444455556666"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="${name}">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="96">
      <Info>The kind of installed guest operating system</Info>
      <Description>Debian_64</Description>
      <vbox:OSType ovf:required="false">Debian_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>${name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>2 virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>2 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>1536 MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>1536 MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>1536</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>ideController0</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>sataController0</rasd:Caption>
        <rasd:Description>SATA Controller</rasd:Description>
        <rasd:ElementName>sataController0</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/${disk.id}</rasd:HostResource>
        <rasd:InstanceID>7</rasd:InstanceID>
        <rasd:Parent>5</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>1</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>cdrom1</rasd:Caption>
        <rasd:Description>CD-ROM Drive</rasd:Description>
        <rasd:ElementName>cdrom1</rasd:ElementName>
        <rasd:InstanceID>8</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>15</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>
        <rasd:InstanceID>9</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
    <vbox:Machine ovf:required="false" version="1.16-linux" uuid="{7f1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}" name="${name}" OSType="Debian_64">
      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>
      <Hardware>
        <CPU count="2"/>
        <Memory RAMSize="1536"/>
        <Firmware type="EFI"/>
        <Network>
          <Adapter slot="0" enabled="true" MACAddress="080027AABBCC" type="82540EM">
            <NAT/>
          </Adapter>
          <Adapter slot="1" enabled="false" MACAddress="080027000001" type="82540EM"/>
        </Network>
      </Hardware>
    </vbox:Machine>
  </VirtualSystem>
</Envelope>
`;
}

/** Packs `files` (names in `dir`) into an OVA with a SHA256 manifest (ovf first, as the spec wants). */
export function packOva(dir: string, ova: string, ovfName: string, members: string[], opts: { corrupt?: string; sha1?: boolean } = {}): void {
  const alg = opts.sha1 ? 'sha1' : 'sha256';
  const lines = [ovfName, ...members].map((m) => {
    let hex = crypto.createHash(alg).update(fs.readFileSync(path.join(dir, m))).digest('hex');
    if (m === opts.corrupt) hex = hex.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    return `${alg.toUpperCase()}(${m})= ${hex}`;
  });
  const mf = ovfName.replace(/\.ovf$/, '.mf');
  fs.writeFileSync(path.join(dir, mf), lines.join('\n') + '\n');
  execFileSync('tar', ['-cf', ova, '-C', dir, ovfName, mf, ...members]);
}
