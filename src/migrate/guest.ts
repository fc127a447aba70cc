// What the source's guest-OS label tells us about the guest, without opening its disks:
// family, OpenStack os_distro, architecture, and whether it can be expected to boot on
// virtio and on q35 (AHCI). Inputs: VMware guestOS ids (ubuntu-64, windows2019srv-64),
// VirtualBox OSType (Ubuntu_64), OVF description text, CIM OS codes.

import type { SourceVM } from './model.js';

export type OsFamily = 'linux' | 'windows' | 'bsd' | 'solaris' | 'other';

export interface GuestInfo {
  family: OsFamily;
  /** OpenStack os_distro value (from the "Useful image properties" list) when known. */
  distro?: string;
  /** A version when the label carries one (rhel8 → "8", windows2019srv → "2019"). */
  version?: string;
  arch: 'x86_64' | 'i686';
  /** The guest ships virtio-blk/virtio-net drivers out of the box (modern Linux, FreeBSD ≥ 10). */
  virtio: boolean;
  /** Old enough that it has no AHCI/PCIe support: give it an i440fx machine and IDE. */
  legacy: boolean;
  /** Windows from 8/2012 on has an inbox e1000e driver; older ones only e1000. */
  e1000e: boolean;
  /** What the label was, for messages. */
  label?: string;
}

// Linux labels (VMware guestOS / VirtualBox OSType, lower-cased) → os_distro.
const LINUX_DISTROS: Array<[RegExp, string]> = [
  [/^(rhel|redhat)/, 'rhel'],
  [/^centos/, 'centos'],
  [/^(ubuntu)/, 'ubuntu'],
  [/^debian/, 'debian'],
  [/^fedora/, 'fedora'],
  [/^(sles|sled)/, 'sled'],
  [/^(opensuse|suse)/, 'opensuse'],
  [/^(archlinux|arch)/, 'arch'],
  [/^gentoo/, 'gentoo'],
  [/^mandrake/, 'mandrake'],
  [/^mandriva/, 'mandriva'],
];
const LINUX_NO_DISTRO = /^(other\d*x?linux|linux|oraclelinux|oracle|almalinux|rockylinux|vmware-photon|coreos|amazonlinux|asianux|turbolinux|miraclelinux|crxpod|xandros|turbolinux|linux2[246])/;
// Labels of Linux guests too old for virtio or for q35's AHCI.
const OLD_LINUX = /^(rhel[234]([-_]|$)|redhat$|sles(9)?([-_]|$)|sles-64$|suse$|debian4|other24xlinux|other26xlinux|linux2[24]|mandrake|turbolinux|asianux[23])/;

const WINDOWS_LEGACY = /^(win31|win95|win98|winme|winnt|win2000|winxp|winnet|windows2003|windowsxp|windows2000|windowsnt|windows9[58]|windowsme|windows3)/;

export function classifyGuest(vm: Pick<SourceVM, 'guestOS' | 'osCimId' | 'osDescription'>): GuestInfo {
  // vSphere API names end in "Guest" (rhel8_64Guest, ubuntu64Guest); the .vmx ids do not.
  const label = vm.guestOS?.toLowerCase().trim().replace(/guest$/, '');
  if (label) {
    const g = fromLabel(label);
    if (g) return g;
  }
  const desc = vm.osDescription?.toLowerCase();
  if (desc) {
    const g = fromDescription(desc);
    if (g) return g;
  }
  if (vm.osCimId !== undefined) {
    const g = fromCim(vm.osCimId);
    if (g) return g;
  }
  return { family: 'other', arch: 'x86_64', virtio: false, legacy: false, e1000e: false, label: vm.guestOS ?? vm.osDescription };
}

function is64(label: string): boolean {
  return /[-_a-z]64$|64-?bit|x64|amd64|x86_64/.test(label);
}

function versionOf(label: string): string | undefined {
  const m = /^[a-z-]*?(\d+)/.exec(label.replace(/[-_]?64$/, ''));
  return m ? m[1] : undefined;
}

function fromLabel(label: string): GuestInfo | undefined {
  const arch = is64(label) ? 'x86_64' : 'i686';
  if (/^(win|windows)/.test(label)) {
    const legacy = WINDOWS_LEGACY.test(label);
    // windows7*/longhorn/vista: AHCI yes, e1000e no; windows8+ and server 2012+: both.
    const older = legacy || /^(longhorn|winvista|windowsvista|windows7|windows2008|win2008)/.test(label);
    const v = /windows(\d{4})/.exec(label)?.[1] ?? /^windows(\d+)/.exec(label)?.[1];
    return { family: 'windows', distro: 'windows', version: v, arch, virtio: false, legacy, e1000e: !older, label };
  }
  if (/^longhorn/.test(label)) return { family: 'windows', distro: 'windows', version: '2008', arch, virtio: false, legacy: false, e1000e: false, label };
  for (const [re, distro] of LINUX_DISTROS) {
    if (re.test(label)) {
      const legacy = OLD_LINUX.test(label);
      return { family: 'linux', distro, version: versionOf(label), arch, virtio: !legacy, legacy, e1000e: true, label };
    }
  }
  if (LINUX_NO_DISTRO.test(label)) {
    const legacy = OLD_LINUX.test(label);
    return { family: 'linux', arch, virtio: !legacy, legacy, e1000e: true, label };
  }
  const bsd = /^(freebsd|netbsd|openbsd)/.exec(label);
  if (bsd) {
    const v = Number(versionOf(label) ?? '0');
    // FreeBSD has had virtio in GENERIC since 10, NetBSD/OpenBSD since 6; an unnumbered label is older.
    const virtio = bsd[1] === 'freebsd' ? v >= 10 : v >= 6;
    return { family: 'bsd', distro: bsd[1], version: v ? String(v) : undefined, arch, virtio, legacy: false, e1000e: false, label };
  }
  if (/^solaris|^opensolaris/.test(label)) {
    return { family: 'solaris', distro: 'opensolaris', arch, virtio: false, legacy: false, e1000e: false, label };
  }
  if (/^(dos|msdos)/.test(label)) return { family: 'other', distro: 'msdos', arch: 'i686', virtio: false, legacy: true, e1000e: false, label };
  if (/^netware/.test(label)) return { family: 'other', distro: 'netware', arch: 'i686', virtio: false, legacy: true, e1000e: false, label };
  return undefined;
}

/** OVF OperatingSystemSection descriptions: "Microsoft Windows Server 2019 (64-bit)", "Ubuntu Linux (64-bit)". */
function fromDescription(desc: string): GuestInfo | undefined {
  const arch = /64-?bit|x64|amd64|x86_64/.test(desc) ? 'x86_64' : 'i686';
  if (/windows/.test(desc)) {
    const legacy = /(xp|2000|2003|nt |95|98|\bme\b)/.test(desc);
    const older = legacy || /(vista|windows 7|2008)/.test(desc);
    const v = /(\d{4}|\b1[01]\b|\b[78]\b)/.exec(desc)?.[1];
    return { family: 'windows', distro: 'windows', version: v, arch, virtio: false, legacy, e1000e: !older, label: desc };
  }
  const table: Array<[RegExp, string]> = [
    [/red ?hat|rhel/, 'rhel'], [/centos/, 'centos'], [/ubuntu/, 'ubuntu'], [/debian/, 'debian'], [/fedora/, 'fedora'],
    [/suse linux enterprise|sles|sled/, 'sled'], [/opensuse/, 'opensuse'], [/arch ?linux/, 'arch'], [/gentoo/, 'gentoo'],
  ];
  for (const [re, distro] of table) {
    if (re.test(desc)) {
      const legacy = /(red ?hat enterprise linux [234]\b|2\.4\.x)/.test(desc);
      return { family: 'linux', distro, version: /(\d+)/.exec(desc.replace(/64-?bit/, ''))?.[1], arch, virtio: !legacy, legacy, e1000e: true, label: desc };
    }
  }
  if (/linux/.test(desc)) return { family: 'linux', arch, virtio: true, legacy: /2\.4/.test(desc), e1000e: true, label: desc };
  if (/freebsd/.test(desc)) return { family: 'bsd', distro: 'freebsd', arch, virtio: true, legacy: false, e1000e: false, label: desc };
  return undefined;
}

// DMTF CIM_OperatingSystem.OSType codes seen in VMware/VirtualBox OVFs.
const CIM: Record<number, [OsFamily, string | undefined, 'x86_64' | 'i686']> = {
  36: ['linux', undefined, 'i686'], 101: ['linux', undefined, 'x86_64'],
  79: ['linux', 'rhel', 'i686'], 80: ['linux', 'rhel', 'x86_64'],
  82: ['linux', 'sled', 'i686'], 83: ['linux', 'sled', 'x86_64'],
  84: ['linux', 'sled', 'i686'], 85: ['linux', 'sled', 'x86_64'],
  93: ['linux', 'ubuntu', 'i686'], 94: ['linux', 'ubuntu', 'x86_64'],
  95: ['linux', 'debian', 'i686'], 96: ['linux', 'debian', 'x86_64'],
  106: ['linux', 'centos', 'i686'], 107: ['linux', 'centos', 'x86_64'],
  42: ['bsd', 'freebsd', 'i686'], 78: ['bsd', 'freebsd', 'x86_64'],
};

function fromCim(id: number): GuestInfo | undefined {
  const e = CIM[id];
  if (!e) return undefined;
  const [family, distro, arch] = e;
  return { family, distro, arch, virtio: true, legacy: false, e1000e: family === 'linux', label: `CIM OS type ${id}` };
}
