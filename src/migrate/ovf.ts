// OVF descriptor (1.x and 2.x, as VMware and VirtualBox write them) → SourceVM.
// Reading disks out of an OVA and checking its manifest belong to the OVA container
// code (ova-source.ts / the engine's ova driver); this file only interprets the XML.

import { XMLParser } from 'fast-xml-parser';
import { CorruptImage, InvalidArgument, UnsupportedFeature } from '../engine/errors.js';
import {
  canonicalUuid, normaliseMac,
  type SourceBus, type SourceController, type SourceDisk, type SourceNic, type SourceRemovable, type SourceVM,
} from './model.js';

/** Descriptors are KiBs; refuse anything absurd before parsing it. */
export const MAX_OVF_BYTES = 16 * 1024 * 1024;

type Node = Record<string, unknown>;

const ARRAYS = new Set(['VirtualSystem', 'Item', 'StorageItem', 'EthernetPortItem', 'File', 'Disk', 'Config', 'ExtraConfig', 'Network', 'Adapter', 'AttachedDevice', 'StorageController', 'HardDisk']);

function parseXml(text: string, file: string): Node {
  if (/<!DOCTYPE|<!ENTITY/i.test(text.slice(0, 65536))) {
    throw new InvalidArgument('OVF descriptor has a DOCTYPE/ENTITY declaration, which OVF never needs; refused', { file });
  }
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@',
    removeNSPrefix: true,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    isArray: (name) => ARRAYS.has(name),
  });
  try {
    return parser.parse(text) as Node;
  } catch (err) {
    throw new CorruptImage(`OVF descriptor is not well-formed XML: ${(err as Error).message}`, { file, cause: err });
  }
}

/** Text of an element that may carry attributes ({ '#text': ..., '@required': ... }). */
function text(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return text(v[0]);
  if (typeof v === 'object') return text((v as Node)['#text']);
  return undefined;
}

function num(v: unknown): number | undefined {
  const s = text(v);
  if (s === undefined || s === '' || !/^\s*\d+(\.\d+)?\s*$/.test(s)) return undefined;
  return Number(s);
}

function arr(v: unknown): Node[] {
  if (v === undefined || v === null) return [];
  return (Array.isArray(v) ? v : [v]) as Node[];
}

/**
 * DMTF programmatic units: "byte", "byte * 2^20", "byte * 1024^2", plus the
 * "MegaBytes"/"KiloBytes"/"GigaBytes" words VirtualBox and old VMware write.
 * Returns the multiplier in bytes, or undefined when it cannot be read.
 */
export function allocationUnits(s: string | undefined): number | undefined {
  if (s === undefined || s.trim() === '') return undefined;
  const t = s.trim().toLowerCase().replace(/\s+/g, ' ');
  const words: Record<string, number> = {
    byte: 1, bytes: 1, b: 1,
    kilobytes: 1024, kilobyte: 1024, kb: 1024, kib: 1024,
    megabytes: 1024 ** 2, megabyte: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
    gigabytes: 1024 ** 3, gigabyte: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
    terabytes: 1024 ** 4, terabyte: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
  };
  if (words[t] !== undefined) return words[t];
  const m = /^bytes? ?\* ?(\d+) ?\^ ?(\d+)$/.exec(t);
  if (m) {
    const v = Number(m[1]) ** Number(m[2]);
    return Number.isSafeInteger(v) && v > 0 ? v : undefined;
  }
  const m2 = /^bytes? ?\* ?(\d+)$/.exec(t);
  if (m2) return Number(m2[1]) || undefined;
  return undefined;
}

const RT = { CPU: 3, MEMORY: 4, IDE: 5, SCSI: 6, NIC: 10, FLOPPY: 14, CD: 15, DVD: 16, DISK: 17, OTHER_STORAGE: 20 } as const;

export function parseOvf(xml: string, file: string): SourceVM {
  if (xml.length > MAX_OVF_BYTES) throw new InvalidArgument(`OVF descriptor of ${xml.length} bytes is not plausible`, { file });
  const doc = parseXml(xml, file);
  const env = doc.Envelope as Node | undefined;
  if (!env || typeof env !== 'object') throw new CorruptImage('not an OVF descriptor: no <Envelope> root element', { file });
  const warnings: string[] = [];

  let vs = arr(env.VirtualSystem);
  if (vs.length === 0) {
    const coll = env.VirtualSystemCollection as Node | undefined;
    vs = arr(coll?.VirtualSystem);
  }
  if (vs.length === 0) throw new CorruptImage('OVF descriptor has no VirtualSystem', { file });
  if (vs.length > 1) warnings.push(`${file}: ${vs.length} virtual systems; converting only the first ('${vsName(vs[0])}')`);
  const sys = vs[0];

  // References and DiskSection: diskId → file href.
  const files = new Map<string, { href: string; compression?: string; size?: number }>();
  for (const f of arr((env.References as Node | undefined)?.File)) {
    const id = text(f['@id']);
    const href = text(f['@href']);
    if (id && href) files.set(id, { href, compression: text(f['@compression']), size: num(f['@size']) });
  }
  const diskSection = (env.DiskSection ?? env.VirtualDiskSection) as Node | undefined;
  const diskDefs = new Map<string, { fileRef?: string; capacity?: number; format?: string }>();
  for (const d of arr(diskSection?.Disk)) {
    const id = text(d['@diskId']);
    if (!id) continue;
    const capRaw = num(d['@capacity']);
    const units = text(d['@capacityAllocationUnits']);
    const mult = units ? allocationUnits(units) : 1;
    if (units && mult === undefined) warnings.push(`${file}: disk ${id}: unknown capacityAllocationUnits "${units}"; capacity not used`);
    diskDefs.set(id, { fileRef: text(d['@fileRef']), capacity: capRaw !== undefined && mult !== undefined ? capRaw * mult : undefined, format: text(d['@format']) });
  }

  const hw = arr(sys.VirtualHardwareSection)[0];
  if (!hw) throw new CorruptImage(`virtual system '${vsName(sys)}' has no VirtualHardwareSection`, { file });
  const items = [...arr(hw.Item), ...arr(hw.StorageItem), ...arr(hw.EthernetPortItem)];
  const rt = (it: Node) => num(it.ResourceType);

  const systemType = text((hw.System as Node | undefined)?.VirtualSystemType);
  const vbox = (sys.Machine ?? undefined) as Node | undefined; // vbox:Machine (prefix removed)
  const hypervisor = vbox || /virtualbox/i.test(systemType ?? '') ? 'virtualbox' : 'vmware';

  // CPU and memory.
  let vcpus = 1;
  let topology: SourceVM['topology'];
  const cpu = items.find((it) => rt(it) === RT.CPU);
  if (cpu) {
    vcpus = num(cpu.VirtualQuantity) ?? 1;
    const cps = num(cpu.CoresPerSocket);
    if (cps && cps > 0) {
      if (vcpus % cps === 0) topology = { sockets: vcpus / cps, cores: cps, threads: 1 };
      else warnings.push(`${file}: CoresPerSocket ${cps} does not divide ${vcpus} vCPUs; topology ignored`);
    }
  }
  let memoryBytes = 1024 * 1024 * 1024;
  const mem = items.find((it) => rt(it) === RT.MEMORY);
  if (mem) {
    const q = num(mem.VirtualQuantity);
    const unitsText = text(mem.AllocationUnits);
    let mult = allocationUnits(unitsText);
    if (mult === undefined) {
      if (unitsText) warnings.push(`${file}: memory AllocationUnits "${unitsText}" not understood; assuming MiB`);
      mult = 1024 * 1024;
    }
    if (q !== undefined) memoryBytes = q * mult;
  } else {
    warnings.push(`${file}: no memory item; assuming 1 GiB`);
  }

  // Firmware: VMware's vmw:Config, VirtualBox's vbox:Machine/Hardware/Firmware.
  const configs = new Map<string, string>();
  for (const c of [...arr(hw.Config), ...arr(hw.ExtraConfig)]) {
    const k = text(c['@key']);
    const v = text(c['@value']);
    if (k && v !== undefined) configs.set(k.toLowerCase(), v);
  }
  let firmware: SourceVM['firmware'] = 'unknown';
  const fwCfg = configs.get('firmware')?.toLowerCase();
  if (fwCfg === 'efi') firmware = 'uefi';
  else if (fwCfg === 'bios') firmware = 'bios';
  let secureBoot = /^true$/i.test(configs.get('bootoptions.efisecurebootenabled') ?? configs.get('uefi.secureboot.enabled') ?? '');
  const vboxHw = vbox?.Hardware as Node | undefined;
  if (vboxHw) {
    const fwType = text((vboxHw.Firmware as Node | undefined)?.['@type']);
    firmware = fwType && /^efi/i.test(fwType) ? 'uefi' : 'bios';
    const sb = (vboxHw.SecureBoot ?? (vboxHw.Firmware as Node | undefined)?.SecureBoot) as Node | undefined;
    if (sb && /^true$/i.test(text(sb['@enabled']) ?? '')) secureBoot = true;
  }

  // Controllers by InstanceID.
  const controllers: SourceController[] = [];
  const ctlById = new Map<string, SourceController & { address: number }>();
  const perBus: Record<string, number> = {};
  for (const it of items) {
    const t = rt(it);
    if (t !== RT.IDE && t !== RT.SCSI && t !== RT.OTHER_STORAGE) continue;
    const id = text(it.InstanceID) ?? String(controllers.length);
    const sub = text(it.ResourceSubType);
    let bus: SourceBus = t === RT.IDE ? 'ide' : t === RT.SCSI ? 'scsi' : 'sata';
    if (t === RT.OTHER_STORAGE && sub && /nvme/i.test(sub)) bus = 'nvme';
    else if (t === RT.OTHER_STORAGE && sub && !/sata|ahci/i.test(sub)) warnings.push(`${file}: storage controller ${id} subtype "${sub}" treated as SATA`);
    const index = perBus[bus] ?? 0;
    perBus[bus] = index + 1;
    const address = num(it.Address) ?? index;
    const c = { id, bus, index, model: sub, address };
    ctlById.set(id, c);
    controllers.push({ id, bus, index, model: sub });
  }

  const disks: SourceDisk[] = [];
  const removables: SourceRemovable[] = [];
  for (const it of items) {
    const t = rt(it);
    if (t !== RT.DISK && t !== RT.CD && t !== RT.DVD && t !== RT.FLOPPY) continue;
    const parent = text(it.Parent);
    const ctl = parent !== undefined ? ctlById.get(parent) : undefined;
    const unit = num(it.AddressOnParent) ?? 0;
    const bus: SourceBus = t === RT.FLOPPY ? 'floppy' : ctl?.bus ?? 'unknown';
    if (t === RT.DISK) {
      const hr = text(it.HostResource);
      if (!hr) { warnings.push(`${file}: disk item ${text(it.InstanceID) ?? '?'} has no HostResource; ignored`); continue; }
      const m = /^(?:ovf:)?\/(disk|file)\/(.+)$/.exec(hr);
      if (!m) { warnings.push(`${file}: disk HostResource "${hr}" not understood; ignored`); continue; }
      let fileRef: string | undefined;
      let capacity: number | undefined;
      let format: string | undefined;
      if (m[1] === 'disk') {
        const def = diskDefs.get(m[2]);
        if (!def) throw new CorruptImage(`disk item refers to ${hr}, which DiskSection does not define`, { file });
        fileRef = def.fileRef;
        capacity = def.capacity;
        format = def.format;
      } else {
        fileRef = m[2];
      }
      const f = fileRef !== undefined ? files.get(fileRef) : undefined;
      if (!f) throw new CorruptImage(`disk ${hr} refers to file '${fileRef ?? ''}', which References does not list`, { file });
      if (f.compression && f.compression !== 'identity' && f.compression !== 'gzip') {
        throw new UnsupportedFeature(`disk file ${f.href} uses compression "${f.compression}"; only gzip is defined by OVF`, { file });
      }
      disks.push({
        id: m[2], bus, controller: ctl?.index ?? 0, unit, fileName: f.href, capacity,
        format: diskFormat(format, f.href), ovfHref: f.href, ovfCompression: f.compression === 'identity' ? undefined : f.compression,
      });
    } else {
      const kind = t === RT.FLOPPY ? 'floppy' : 'cdrom';
      // ide slot = controller address * 2 + unit, like the VMX numbering.
      const slotUnit = bus === 'ide' && ctl ? ctl.address * 2 + unit : unit;
      removables.push({
        id: text(it.InstanceID) ?? `${kind}${removables.length}`, kind, bus, controller: ctl?.index ?? 0, unit: slotUnit,
        deviceType: String(t),
        startConnected: /^true$/i.test(text(it.AutomaticAllocation) ?? ''),
      });
    }
  }

  // NICs, with VirtualBox's MACs from vbox:Machine (its Items carry none).
  const vboxMacs: string[] = [];
  for (const ad of arr(arr(vboxHw?.Network)[0]?.Adapter)) {
    if (/^false$/i.test(text(ad['@enabled']) ?? 'true')) continue;
    const mac = normaliseMac(text(ad['@MACAddress']));
    vboxMacs.push(mac ?? '');
  }
  const nics: SourceNic[] = [];
  for (const it of items) {
    if (rt(it) !== RT.NIC) continue;
    const idx = nics.length;
    const conn = text(it.Connection);
    const macRaw = text(it.Address);
    const mac = normaliseMac(macRaw) ?? (vboxMacs[idx] || undefined);
    if (macRaw && !normaliseMac(macRaw)) warnings.push(`${file}: NIC ${idx} address "${macRaw}" is not a MAC; ignored`);
    nics.push({
      index: idx,
      mac,
      // VMware writes VmxNet3/E1000, VirtualBox E1000/PCNet32: compare case-insensitively, print lower case.
      model: text(it.ResourceSubType)?.toLowerCase(),
      networkName: conn && conn !== '' ? conn : `eth${idx}`,
      connection: conn ? 'bridge' : 'network',
    });
  }

  const os = arr(sys.OperatingSystemSection)[0];
  const osCimId = os ? num(os['@id']) : undefined;
  const guestOS = (os ? text(os['@osType']) ?? text(os.OSType) : undefined) ?? text(vbox?.['@OSType']);
  const osDescription = os ? text(os.Description) : undefined;

  const uuid = canonicalUuid(text(vbox?.['@uuid'])) ?? canonicalUuid(configs.get('uuid.bios'));

  return {
    name: vsName(sys),
    origin: 'ovf',
    sourceFile: file,
    hypervisor,
    uuid,
    memoryBytes,
    vcpus,
    topology,
    firmware,
    secureBoot: firmware === 'uefi' && secureBoot,
    guestOS: guestOS?.toLowerCase(),
    osCimId,
    osDescription,
    hardwareVersion: systemType,
    controllers,
    disks,
    removables,
    nics,
    serials: [],
    warnings,
  };
}

function vsName(sys: Node): string {
  return text(sys.Name) ?? text(sys['@id']) ?? 'guest';
}

/** OVF disk format URIs → our format names; VirtualBox can ship VDI/VHD too. */
function diskFormat(uri: string | undefined, href: string): string | undefined {
  const s = (uri ?? '').toLowerCase();
  if (s.includes('vmdk')) return 'vmdk';
  if (s.includes('vdi') || /\.vdi$/i.test(href)) return 'vdi';
  if (s.includes('vhd') || /\.vhd$/i.test(href)) return 'vpc';
  if (s.includes('qcow') || /\.qcow2?$/i.test(href)) return 'qcow2';
  if (/\.vmdk$/i.test(href)) return 'vmdk';
  return undefined;
}
