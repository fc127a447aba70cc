// .vmx → SourceVM: the keys VMware Workstation / ESXi write for the hardware a KVM guest
// needs (see shared notes v2v.md §2 for the key list and defaults).

import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ioError, InvalidArgument } from '../engine/errors.js';
import type { FileAccessPolicy } from '../engine/policy.js';
import { sameDirectoryPolicy } from '../engine/policy.js';
import { parseVmxText, type VmxFile } from './vmx-file.js';
import { vmdkChain } from './vmdk-chain.js';
import {
  canonicalUuid, normaliseMac,
  type SourceBus, type SourceController, type SourceDisk, type SourceNic, type SourceRemovable, type SourceSerial, type SourceVM,
} from './model.js';

/** A .vmx is a few KiB; anything huge is not one. */
const MAX_VMX_BYTES = 4 * 1024 * 1024;

export interface ReadVmxOptions {
  /** Which disk files (and snapshot parents) may be opened; default: the .vmx's directory. */
  policy?: FileAccessPolicy;
  /** Read the disks' VMDK descriptors (capacity, snapshot chain). Default true. */
  readDisks?: boolean;
}

export async function readVmx(file: string, opts: ReadVmxOptions = {}): Promise<SourceVM> {
  let text: string;
  try {
    const st = await fs.stat(file);
    if (st.size > MAX_VMX_BYTES) throw new InvalidArgument(`a .vmx file of ${st.size} bytes is not plausible`, { file });
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw ioError(err, file, 'cannot read .vmx');
  }
  const vm = vmxToModel(parseVmxText(text, file), file);
  if (opts.readDisks !== false) {
    const policy = opts.policy ?? sameDirectoryPolicy();
    for (const d of vm.disks) {
      // Disk names in a .vmx are references inside the VM description: same policy as any image reference.
      d.path = resolveDiskFile(d.fileName, file, policy, vm.warnings);
      const chain = await vmdkChain(d.path, policy);
      d.chain = chain.map((l) => l.path);
      d.capacity = chain[0].capacity;
      d.format = 'vmdk';
    }
  }
  return vm;
}

/**
 * ESXi writes datastore paths (/vmfs/volumes/...). When the policy refuses an absolute
 * name but a file of that base name sits next to the .vmx (a copied VM folder), use it.
 */
function resolveDiskFile(fileName: string, vmxFile: string, policy: FileAccessPolicy, warnings: string[]): string {
  try {
    return policy.resolve(fileName, vmxFile, 'extent');
  } catch (err) {
    if (!path.isAbsolute(fileName)) throw err;
    const local = policy.resolve(path.basename(fileName), vmxFile, 'extent');
    if (!existsSync(local)) throw err;
    warnings.push(`${vmxFile}: disk ${fileName} is an absolute path; using ${path.basename(fileName)} next to the .vmx`);
    return local;
  }
}

// VMware's device slots: (bus, max controllers, max units per controller).
const DISK_BUSES: Array<{ prefix: string; bus: SourceBus; controllers: number; units: number }> = [
  // Disk order is SCSI, NVMe, SATA, IDE (virt-v2v's, so disk numbers agree with it).
  // pvscsi on hardware version 14+ takes targets up to 64; the others stop at 15.
  { prefix: 'scsi', bus: 'scsi', controllers: 4, units: 65 },
  { prefix: 'nvme', bus: 'nvme', controllers: 4, units: 64 },
  { prefix: 'sata', bus: 'sata', controllers: 4, units: 30 },
  { prefix: 'ide', bus: 'ide', controllers: 2, units: 2 },
];

const HARD_DISK_TYPES = new Set(['disk', 'plaindisk', 'rawdisk', 'scsi-harddisk', 'ata-harddisk']);
const CDROM_TYPES = new Set(['cdrom-image', 'atapi-cdrom', 'cdrom-raw', 'scsi-cdrom', 'scsi-passthru']);

export function vmxToModel(vmx: VmxFile, file: string): SourceVM {
  const warnings = vmx.warnings;
  let name = vmx.get('displayName');
  if (!name || name.trim() === '') {
    name = path.basename(file).replace(/\.vmx$/i, '');
    warnings.push(`${file}: no displayName; using '${name}'`);
  }

  let memMiB = vmx.int('memSize');
  if (memMiB === undefined || memMiB <= 0) memMiB = 32; // VMware's and virt-v2v's default
  let vcpus = vmx.int('numvcpus');
  if (vcpus === undefined || vcpus <= 0) vcpus = 1;
  let topology: SourceVM['topology'];
  const cores = vmx.int('cpuid.coresPerSocket');
  if (cores !== undefined && cores > 0) {
    const sockets = Math.floor(vcpus / cores);
    if (sockets <= 0 || sockets * cores !== vcpus) {
      warnings.push(`${file}: cpuid.coresPerSocket=${cores} does not divide numvcpus=${vcpus}; topology ignored`);
    } else {
      topology = { sockets, cores, threads: 1 };
    }
  }

  const fw = vmx.get('firmware')?.toLowerCase();
  let firmware: SourceVM['firmware'] = 'bios';
  if (fw === 'efi') firmware = 'uefi';
  else if (fw !== undefined && fw !== 'bios') warnings.push(`${file}: unknown firmware "${fw}"; assuming BIOS`);
  const secureBoot = firmware === 'uefi' && vmx.bool('uefi.secureBoot.enabled') === true;

  const controllers: SourceController[] = [];
  const disks: SourceDisk[] = [];
  const removables: SourceRemovable[] = [];
  for (const b of DISK_BUSES) {
    for (let c = 0; c < b.controllers; c++) {
      const ctl = `${b.prefix}${c}`;
      const ctlPresent = vmx.bool(`${ctl}.present`);
      const hasUnits = [...vmx.values.keys()].some((k) => k.startsWith(`${ctl}:`));
      // IDE controllers are built in; the others exist when present = TRUE or something sits on them.
      if (ctlPresent || hasUnits) {
        const model = vmx.get(`${ctl}.virtualDev`)?.toLowerCase();
        controllers.push({ id: ctl, bus: b.bus, index: c, model: model ?? (b.bus === 'sata' ? 'ahci' : undefined) });
      }
      for (let u = 0; u < b.units; u++) {
        const ns = `${ctl}:${u}`;
        if (!vmx.has(ns)) continue;
        if (b.bus === 'scsi' && u === 7) { warnings.push(`${file}: ${ns} is the SCSI HBA's own id; ignored`); continue; }
        const devType = vmx.get(`${ns}.deviceType`)?.toLowerCase();
        const fileName = vmx.get(`${ns}.fileName`);
        if (devType && CDROM_TYPES.has(devType)) {
          removables.push({
            id: ns, kind: 'cdrom', bus: b.bus, controller: c, unit: u, deviceType: devType,
            // A raw CD-ROM names a host device ("auto detect", /dev/sr0) that will not exist on the new host.
            fileName: devType === 'cdrom-image' && fileName ? fileName : undefined,
            startConnected: vmx.bool(`${ns}.startConnected`),
          });
          continue;
        }
        const isDisk = devType ? HARD_DISK_TYPES.has(devType) : fileName !== undefined && /\.vmdk$/i.test(fileName);
        if (!isDisk) {
          if (devType || fileName) warnings.push(`${file}: ${ns} (deviceType "${devType ?? ''}", fileName "${fileName ?? ''}") is neither a disk nor a CD-ROM; ignored`);
          continue;
        }
        if (!fileName) { warnings.push(`${file}: disk ${ns} has no fileName; ignored`); continue; }
        if (devType === 'rawdisk') warnings.push(`${file}: ${ns} is a raw (RDM/physical) disk; its descriptor will be read like any VMDK`);
        disks.push({ id: ns, bus: b.bus, controller: c, unit: u, fileName, mode: vmx.get(`${ns}.mode`) });
      }
    }
  }
  // IDE CD-ROMs first: the boot CD of old VMs, and virt-v2v's order.
  const rank: Record<string, number> = { ide: 0, sata: 1, scsi: 2, nvme: 3, floppy: 4 };
  removables.sort((x, y) => (rank[x.bus] ?? 5) - (rank[y.bus] ?? 5));
  // floppies
  for (let f = 0; f < 2; f++) {
    const ns = `floppy${f}`;
    if (!vmx.has(ns)) continue;
    const fileType = vmx.get(`${ns}.fileType`)?.toLowerCase();
    const fileName = vmx.get(`${ns}.fileName`);
    removables.push({ id: ns, kind: 'floppy', bus: 'floppy', controller: 0, unit: f, deviceType: fileType, fileName: fileType === 'file' ? fileName : undefined, startConnected: vmx.bool(`${ns}.startConnected`) });
  }

  const nics: SourceNic[] = [];
  const nicIdx = new Set<number>();
  for (const k of vmx.values.keys()) {
    const m = /^ethernet(\d+)\./.exec(k);
    if (m) nicIdx.add(Number(m[1]));
  }
  for (const i of [...nicIdx].sort((a, b) => a - b)) {
    const ns = `ethernet${i}`;
    const addressType = vmx.get(`${ns}.addressType`)?.toLowerCase();
    // static MACs live in .address; generated and vCenter-assigned ones in .generatedAddress.
    const macRaw = addressType === 'static' ? vmx.get(`${ns}.address`) ?? vmx.get(`${ns}.generatedAddress`) : vmx.get(`${ns}.generatedAddress`) ?? vmx.get(`${ns}.address`);
    const mac = normaliseMac(macRaw);
    if (macRaw && !mac) warnings.push(`${file}: ${ns} MAC "${macRaw}" is not a MAC address; a new one will be generated`);
    const connectionType = vmx.get(`${ns}.connectionType`)?.toLowerCase();
    nics.push({
      index: i,
      mac,
      addressType,
      model: vmx.get(`${ns}.virtualDev`)?.toLowerCase(),
      networkName: vmx.get(`${ns}.networkName`) ?? ns,
      connection: connectionType === 'bridged' ? 'bridge' : 'network',
      connectionType,
    });
  }

  const serials: SourceSerial[] = [];
  for (let s = 0; s < 4; s++) {
    const ns = `serial${s}`;
    if (!vmx.has(ns)) continue;
    serials.push({ index: s, fileType: vmx.get(`${ns}.fileType`)?.toLowerCase(), fileName: vmx.get(`${ns}.fileName`) });
  }

  let sound: string | undefined;
  const snd = vmx.has('sound') ? vmx.get('sound.virtualDev')?.toLowerCase() : undefined;
  if (snd) {
    const map: Record<string, string> = { sb16: 'sb16', es1371: 'es1370', hdaudio: 'ich6' };
    sound = map[snd];
    if (!sound) warnings.push(`${file}: sound device "${snd}" has no KVM equivalent; dropped`);
  }

  const uuidRaw = vmx.get('uuid.bios');
  const uuid = canonicalUuid(uuidRaw);
  if (uuidRaw && !uuid) warnings.push(`${file}: uuid.bios "${uuidRaw}" is not a UUID; ignored`);

  return {
    name,
    origin: 'vmx',
    sourceFile: file,
    hypervisor: 'vmware',
    uuid,
    genid: genidFromVmx(vmx.get('vm.genid'), vmx.get('vm.genidX')),
    memoryBytes: memMiB * 1024 * 1024,
    vcpus,
    topology,
    firmware,
    secureBoot,
    guestOS: vmx.get('guestOS')?.toLowerCase(),
    sound,
    hardwareVersion: vmx.get('virtualHW.version'),
    controllers,
    disks,
    removables,
    nics,
    serials,
    warnings,
  };
}

/**
 * VMware stores the 128-bit generation id as two signed 64-bit decimals. The GUID libvirt
 * should get is laid out so that, after QEMU's own byte order for the vmgenid device, the
 * guest sees the two numbers VMware showed it: low word as little-endian fields
 * (32/16/16 bits), high word as eight bytes least significant first.
 */
export function genidFromVmx(lo: string | undefined, hi: string | undefined): string | undefined {
  if (!lo || !hi || !/^-?\d+$/.test(lo.trim()) || !/^-?\d+$/.test(hi.trim())) return undefined;
  const mask = (1n << 64n) - 1n;
  const a = BigInt(lo.trim()) & mask;
  const b = BigInt(hi.trim()) & mask;
  const hex = (v: bigint, digits: number) => v.toString(16).padStart(digits, '0');
  const f1 = hex(a & 0xffffffffn, 8);
  const f2 = hex((a >> 32n) & 0xffffn, 4);
  const f3 = hex((a >> 48n) & 0xffffn, 4);
  let le = '';
  for (let i = 0n; i < 8n; i++) le += hex((b >> (8n * i)) & 0xffn, 2);
  return `${f1}-${f2}-${f3}-${le.slice(0, 4)}-${le.slice(4)}`;
}
