// The source VM as read from a .vmx or an OVF descriptor: what the source hypervisor
// had, before any decision about the KVM target (that is target.ts). Both parsers fill
// this one shape so the libvirt/Glance writers and --print-source are written once.

export type Firmware = 'bios' | 'uefi' | 'unknown';

/** The kind of bus a disk or removable sat on in the source VM. */
export type SourceBus = 'scsi' | 'sata' | 'ide' | 'nvme' | 'virtio' | 'floppy' | 'unknown';

export interface SourceController {
  /** 'scsi0', 'sata1', 'ide0', 'nvme0' for VMX; the OVF InstanceID for OVF. */
  id: string;
  bus: SourceBus;
  /** Controller model: lsilogic, lsisas1068, pvscsi, buslogic, ahci, PIIX4, ... */
  model?: string;
  /** Controller number on its bus (scsi0 → 0). */
  index: number;
}

export interface SourceDisk {
  /** Stable id for messages: 'scsi0:1', or the OVF diskId. */
  id: string;
  bus: SourceBus;
  controller: number;
  unit: number;
  /** The file as named by the descriptor (relative or absolute), for messages and --print-source. */
  fileName: string;
  /** Absolute path after the file-access policy, for local files; undefined for files inside an OVA. */
  path?: string;
  /**
   * For VMDK snapshot chains: the files from the one the VM uses down to the base
   * (absolute paths, already allowed by the policy). Length 1 when there is no parent.
   */
  chain?: string[];
  /** Virtual size in bytes, when the descriptor says (OVF capacity) or once the image is opened. */
  capacity?: number;
  /** Image format when known ('vmdk' for VMware, 'vdi'/'vmdk' for VirtualBox OVF). */
  format?: string;
  /** OVF: the href inside the package, and its compression ('gzip'). */
  ovfHref?: string;
  ovfCompression?: string;
  /** VMX scsiN:M.mode (persistent, independent-nonpersistent, ...). */
  mode?: string;
}

export type RemovableKind = 'cdrom' | 'floppy';

export interface SourceRemovable {
  id: string;
  kind: RemovableKind;
  bus: SourceBus;
  controller: number;
  unit: number;
  /** ISO image or host device as named; undefined when the drive is empty. */
  fileName?: string;
  /** VMX deviceType (cdrom-image, atapi-cdrom, cdrom-raw) or the OVF ResourceType. */
  deviceType?: string;
  startConnected?: boolean;
}

export interface SourceNic {
  /** ethernetN index, or position in the OVF. */
  index: number;
  /** MAC as aa:bb:cc:dd:ee:ff (lower case), when the source has one. */
  mac?: string;
  /** VMX addressType: generated, static, vpx. */
  addressType?: string;
  /** Source model as written: e1000, e1000e, vmxnet3, vlance, VmxNet3, E1000, ... */
  model?: string;
  /** Network or port group the NIC was attached to (VMX networkName, OVF Connection). */
  networkName: string;
  /** bridged → 'bridge'; nat/hostonly/custom/absent → 'network'. */
  connection: 'bridge' | 'network';
  /** VMX connectionType as written, for --print-source. */
  connectionType?: string;
}

export interface SourceSerial {
  index: number;
  /** device, file, pipe, network, thinprint */
  fileType?: string;
  fileName?: string;
}

export interface SourceVM {
  name: string;
  /** What we read it from. */
  origin: 'vmx' | 'ovf' | 'ova';
  sourceFile: string;
  /** Who made it: 'vmware' or 'virtualbox' (OVF), for --print-source's "hypervisor type". */
  hypervisor: string;
  /** Canonical 8-4-4-4-12 lower-case UUID (from uuid.bios / OVF vbox:Machine uuid). */
  uuid?: string;
  /** VM Generation ID as a canonical UUID. */
  genid?: string;
  memoryBytes: number;
  vcpus: number;
  topology?: { sockets: number; cores: number; threads: number };
  firmware: Firmware;
  secureBoot: boolean;
  /** VMware guestOS id (ubuntu-64, windows2019srv-64, ...) or the VirtualBox OSType. */
  guestOS?: string;
  /** OVF OperatingSystemSection CIM id and description. */
  osCimId?: number;
  osDescription?: string;
  /** Sound device model in libvirt terms (ich6, es1370, sb16, ac97), when recognised. */
  sound?: string;
  /** The source's hardware version (virtualHW.version, vmx-13, virtualbox-2.2). */
  hardwareVersion?: string;
  controllers: SourceController[];
  disks: SourceDisk[];
  removables: SourceRemovable[];
  nics: SourceNic[];
  serials: SourceSerial[];
  /** Things we read but could not use, or guessed; shown to the user. */
  warnings: string[];
}

/** Normalises a MAC written with ':' or '-' to lower-case colon form; undefined if not a MAC. */
export function normaliseMac(s: string | undefined): string | undefined {
  if (!s) return undefined;
  const hex = s.trim().replace(/[:\-.]/g, '');
  if (!/^[0-9a-fA-F]{12}$/.test(hex)) return undefined;
  return hex.toLowerCase().match(/../g)!.join(':');
}

/** Any 32-hex-digit UUID spelling (VMware's "56 4d ...-..." included) → canonical form. */
export function canonicalUuid(s: string | undefined): string | undefined {
  if (!s) return undefined;
  const hex = s.replace(/[\s\-{}]/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return undefined;
  const h = hex.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
