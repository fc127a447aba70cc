// From the source VM to the KVM guest we will define: machine type, firmware, buses,
// NIC models, networks, device names, output file names. Every choice is made here once,
// so the libvirt XML and the Glance properties cannot disagree.

import path from 'node:path';
import { existsSync } from 'node:fs';
import { InvalidArgument } from '../engine/errors.js';
import { classifyGuest, type GuestInfo } from './guest.js';
import type { SourceDisk, SourceNic, SourceVM } from './model.js';

export type DiskBus = 'virtio' | 'sata' | 'scsi' | 'ide';
export type NicModel = 'virtio' | 'e1000e' | 'e1000' | 'rtl8139';
export type Graphics = 'vnc' | 'spice' | 'none';
export type MachineType = 'q35' | 'pc';
export type OutputFormat = 'qcow2' | 'raw';

export const DISK_BUSES: DiskBus[] = ['virtio', 'sata', 'scsi', 'ide'];
export const NIC_MODELS: NicModel[] = ['virtio', 'e1000e', 'e1000', 'rtl8139'];

export interface NetTarget { type: 'network' | 'bridge'; name: string }

/** --network / --bridge: `NAME` (every NIC) or `IN:OUT` (NICs on source network IN). */
export interface NetworkMap {
  default?: NetTarget;
  bySource: Map<string, NetTarget>;
}

export interface TargetOptions {
  outputDir: string;
  outputFormat?: OutputFormat;
  diskBus?: DiskBus;
  nicModel?: NicModel;
  machine?: MachineType;
  graphics?: Graphics;
  networks?: NetworkMap;
  /** Name for the new guest (default: the source's, made safe). */
  name?: string;
}

export interface TargetDisk {
  source: SourceDisk;
  /** libvirt target dev: vda, sda, hda. */
  dev: string;
  bus: DiskBus;
  /** Absolute path of the converted image. */
  file: string;
  format: OutputFormat;
  bootOrder?: number;
}

export interface TargetCdrom { dev: string; bus: DiskBus; file?: string; sourceId: string }

export interface TargetNic { source: SourceNic; mac?: string; model: NicModel; net: NetTarget }

export interface TargetPlan {
  vm: SourceVM;
  guest: GuestInfo;
  name: string;
  machine: MachineType;
  arch: 'x86_64' | 'i686';
  firmware: 'bios' | 'uefi';
  secureBoot: boolean;
  memoryKiB: number;
  vcpus: number;
  topology?: { sockets: number; cores: number; threads: number };
  clock: 'utc' | 'localtime';
  diskBus: DiskBus;
  nicModel: NicModel;
  disks: TargetDisk[];
  cdroms: TargetCdrom[];
  nics: TargetNic[];
  graphics: Graphics;
  sound?: string;
  warnings: string[];
}

/** libvirt refuses '/' in names; keep names to what every shell and file system is happy with. */
export function safeName(name: string): string {
  const s = name.normalize('NFC').replace(/[\/\\\0]/g, '_').replace(/[\x00-\x1f\x7f]/g, '').trim();
  return s === '' ? 'guest' : s;
}

/** File-name-safe version of the guest name, for NAME.xml / NAME-sda.qcow2. */
export function fileStem(name: string): string {
  return safeName(name).replace(/[^A-Za-z0-9._+-]+/g, '_').replace(/^[._-]+/, '') || 'guest';
}

/** 0 → a, 25 → z, 26 → aa (the kernel's and libvirt's disk naming). */
export function driveLetters(i: number): string {
  let s = '';
  let n = i + 1;
  while (n > 0) {
    const r = (n - 1) % 26;
    s = String.fromCharCode(97 + r) + s;
    n = Math.floor((n - 1) / 26);
  }
  return s;
}

const PREFIX: Record<DiskBus, string> = { virtio: 'vd', sata: 'sd', scsi: 'sd', ide: 'hd' };

export function planTarget(vm: SourceVM, opts: TargetOptions): TargetPlan {
  const warnings: string[] = [];
  const guest = classifyGuest(vm);
  const firmware: 'bios' | 'uefi' = vm.firmware === 'uefi' ? 'uefi' : 'bios';
  if (vm.firmware === 'unknown') warnings.push('the source does not say BIOS or UEFI; assuming BIOS');

  // EFI needs q35 (OVMF on i440fx is not what distributions ship); very old guests lack AHCI → pc.
  let machine: MachineType = opts.machine ?? (firmware === 'uefi' ? 'q35' : guest.legacy ? 'pc' : 'q35');
  if (firmware === 'uefi' && machine === 'pc') {
    if (opts.machine) throw new InvalidArgument('UEFI guests need the q35 machine type; --machine pc cannot boot them with secure boot and is refused');
    machine = 'q35';
  }

  // Disks: virtio where the guest has the drivers, else the emulated controller the machine has.
  const fallback: DiskBus = machine === 'pc' ? 'ide' : 'sata';
  const diskBus: DiskBus = opts.diskBus ?? (guest.virtio ? 'virtio' : fallback);
  if (diskBus === 'ide' && machine === 'q35') throw new InvalidArgument('q35 machines have no IDE bus; use --disk-bus sata (or --machine pc for a BIOS guest)');
  if (!opts.diskBus && !guest.virtio && guest.family !== 'windows') {
    warnings.push(`guest OS '${guest.label ?? 'unknown'}' is not known to have virtio drivers; disks on ${diskBus}${guest.family === 'other' ? ' (use --disk-bus virtio if it does)' : ''}`);
  }
  const nicModel: NicModel = opts.nicModel ?? (guest.virtio ? 'virtio' : guest.e1000e && machine === 'q35' ? 'e1000e' : 'e1000');

  const format = opts.outputFormat ?? 'qcow2';
  const name = safeName(opts.name ?? vm.name);
  const stem = fileStem(name);
  const outDir = path.resolve(opts.outputDir);

  let n = 0;
  const disks: TargetDisk[] = vm.disks.map((d, i) => {
    const dev = PREFIX[diskBus] + driveLetters(n++);
    return { source: d, dev, bus: diskBus, file: path.join(outDir, `${stem}-${dev}.${format === 'qcow2' ? 'qcow2' : 'raw'}`), format, bootOrder: i === 0 ? 1 : undefined };
  });

  // CD-ROMs ride on the emulated bus (virtio has no CD-ROM); they share sdX/hdX names with disks on that bus.
  const cdBus: DiskBus = machine === 'pc' ? 'ide' : 'sata';
  let cdIndex = cdBus === diskBus || (cdBus === 'sata' && diskBus === 'scsi') ? n : 0;
  const cdroms: TargetCdrom[] = [];
  for (const r of vm.removables) {
    if (r.kind === 'floppy') { warnings.push(`floppy drive ${r.id} is not carried over (q35 has no floppy controller)`); continue; }
    if (cdBus === 'ide' && cdIndex >= 4) { warnings.push(`CD-ROM ${r.id} dropped: the IDE bus has only four slots`); continue; }
    let file = r.fileName && r.deviceType === 'cdrom-image' ? isoPath(r.fileName, vm.sourceFile) : undefined;
    // libvirt refuses to start a guest whose CD image is missing: keep the drive, empty.
    if (file && !existsSync(file)) { warnings.push(`CD-ROM ${r.id}: ${r.fileName} not found; the drive is left empty`); file = undefined; }
    cdroms.push({ dev: PREFIX[cdBus] + driveLetters(cdIndex++), bus: cdBus, file, sourceId: r.id });
  }
  if (diskBus === 'ide' && disks.length > 4) throw new InvalidArgument(`${disks.length} disks do not fit on the IDE bus (four slots); use --disk-bus sata or virtio`);

  const nets: NetworkMap = opts.networks ?? { bySource: new Map() };
  const nics: TargetNic[] = vm.nics.map((nic) => ({
    source: nic,
    mac: nic.mac,
    model: nicModel,
    net: nets.bySource.get(nic.networkName) ?? nets.default ?? { type: 'network', name: 'default' },
  }));
  const seenMacs = new Set<string>();
  for (const nic of nics) {
    if (!nic.mac) continue;
    const first = parseInt(nic.mac.slice(0, 2), 16);
    if (first & 1) { warnings.push(`NIC ethernet${nic.source.index}: ${nic.mac} is a multicast address; a new MAC will be generated`); nic.mac = undefined; continue; }
    if (seenMacs.has(nic.mac)) { warnings.push(`NIC ethernet${nic.source.index}: MAC ${nic.mac} is used twice; a new one will be generated`); nic.mac = undefined; continue; }
    seenMacs.add(nic.mac);
  }

  const memoryKiB = Math.max(1, Math.ceil(vm.memoryBytes / 1024));
  return {
    vm,
    guest,
    name,
    machine,
    arch: guest.arch,
    firmware,
    secureBoot: firmware === 'uefi' && vm.secureBoot,
    memoryKiB,
    vcpus: vm.vcpus,
    topology: vm.topology,
    // Windows keeps its RTC in local time unless told otherwise.
    clock: guest.family === 'windows' ? 'localtime' : 'utc',
    diskBus,
    nicModel,
    disks,
    cdroms,
    nics,
    graphics: opts.graphics ?? 'vnc',
    sound: vm.sound,
    warnings: [...vm.warnings, ...warnings],
  };
}

/** An ISO named relative to the .vmx/.ovf is kept only as an absolute path (the XML is used elsewhere). */
function isoPath(fileName: string, sourceFile: string): string {
  return path.isAbsolute(fileName) ? fileName : path.resolve(path.dirname(sourceFile), fileName);
}

/** Parses --network/--bridge values into the map. */
export function addNetworkMapping(map: NetworkMap, type: 'network' | 'bridge', value: string): void {
  const i = value.lastIndexOf(':');
  if (i > 0) {
    const from = value.slice(0, i);
    const to = value.slice(i + 1);
    if (!to) throw new InvalidArgument(`--${type} ${value}: empty target name`);
    map.bySource.set(from, { type, name: to });
    return;
  }
  if (!value) throw new InvalidArgument(`--${type} needs a name`);
  if (map.default) throw new InvalidArgument(`--${type} ${value}: a default network (--${map.default.type} ${map.default.name}) is already set; use IN:OUT to map single source networks`);
  map.default = { type, name: value };
}
