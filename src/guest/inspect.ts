// inspect-guest: what operating system an image holds, read offline (never written:
// the root is mounted over a throw-away overlay).
import { openImage } from '../engine/block/open.js';
import { UnsupportedFeature } from '../engine/errors.js';
import { readPartitionTable } from './partitions.js';
import { describePartition, noRootError, scanFilesystems } from './guest.js';
import { mountExt, type ExtFs } from './fs/ext.js';
import { listInitramfs, modulesIn } from './initramfs.js';
import { parseEnvFile } from './sysprep/util.js';
import { cloudInitReport, type CloudInitReport } from './sysprep/ops/services.js';

export interface FstabEntry { spec: string; file: string; vfstype: string; options: string; freq: number; passno: number }

export type VirtioState = 'builtin' | 'initramfs' | 'module-not-in-initramfs' | 'absent';
export const VIRTIO_DRIVERS = ['virtio_blk', 'virtio_net', 'virtio_scsi', 'virtio_pci'] as const;
const VIRTIO_CONFIG: Record<(typeof VIRTIO_DRIVERS)[number], string> = {
  virtio_blk: 'CONFIG_VIRTIO_BLK', virtio_net: 'CONFIG_VIRTIO_NET', virtio_scsi: 'CONFIG_SCSI_VIRTIO', virtio_pci: 'CONFIG_VIRTIO_PCI',
};

export interface KernelInfo {
  version: string;
  vmlinuz: string;
  initramfs: string | null;
  config: string | null;
  /** Per driver: built into the kernel (config =y), in the initramfs, a module left out of it, or absent. */
  virtio: Record<(typeof VIRTIO_DRIVERS)[number], VirtioState>;
  /** The guest can boot from a virtio disk: virtio_blk (or virtio_scsi) and virtio_pci available before root is mounted. */
  virtioBootable: boolean;
  initramfsCompression?: string[];
  warnings: string[];
}

export interface GuestInspection {
  file: string;
  format: string;
  virtualSize: number;
  partitionTable: string;
  filesystems: Array<{ partition: number; partitionType?: string; offset: number; size: number; type: string | null; uuid?: string; label?: string; root: boolean; note?: string }>;
  root: string;
  os: 'linux';
  distro: string;
  version: string;
  productName: string;
  osRelease: Record<string, string>;
  arch: string | null;
  hostname: string | null;
  fstab: FstabEntry[];
  packageFormat: string | null;
  packages: number | null;
  kernels: KernelInfo[];
  cloudInit: CloudInitReport;
  warnings: string[];
}

const ELF_MACHINES: Record<number, string> = {
  3: 'i386', 8: 'mips', 20: 'ppc', 21: 'ppc64', 22: 's390x', 40: 'arm', 43: 'sparc64', 50: 'ia64', 62: 'x86_64', 183: 'aarch64', 243: 'riscv', 258: 'loongarch64',
};

/** Architecture from an ELF header, in the spelling uname -m / libguestfs use. */
export function elfArch(h: Uint8Array): string | null {
  if (h.length < 20 || h[0] !== 0x7f || h[1] !== 0x45 || h[2] !== 0x4c || h[3] !== 0x46) return null;
  const is64 = h[4] === 2;
  const le = h[5] === 1;
  const machine = le ? h[18]! | (h[19]! << 8) : (h[18]! << 8) | h[19]!;
  const name = ELF_MACHINES[machine];
  if (!name) return `elf-machine-${machine}`;
  if (name === 'ppc64' && le) return 'ppc64le';
  if (name === 'riscv') return is64 ? 'riscv64' : 'riscv32';
  if (name === 'mips') return is64 ? (le ? 'mips64el' : 'mips64') : (le ? 'mipsel' : 'mips');
  if (name === 'arm') return 'armv7l';
  return name;
}

export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const f = t.split(/\s+/);
    if (f.length < 2) continue;
    // fstab escapes spaces as \040.
    const un = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.push({ spec: un(f[0]!), file: un(f[1]!), vfstype: f[2] ?? 'auto', options: f[3] ?? 'defaults', freq: Number(f[4] ?? 0) || 0, passno: Number(f[5] ?? 0) || 0 });
  }
  return out;
}

/** Parses a kernel .config into NAME -> value ("y", "m", ...). */
export function parseKernelConfig(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const r = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

async function guestArch(fs: ExtFs): Promise<string | null> {
  for (const p of ['/bin/sh', '/usr/bin/ls', '/bin/bash', '/bin/ls', '/usr/bin/bash', '/bin/busybox']) {
    const real = await fs.realpath(p).catch(() => null);
    if (!real || !(await fs.isFile(real))) continue;
    const arch = elfArch(await fs.readRange(real, 0, 64));
    if (arch) return arch;
  }
  return null;
}

async function guestHostname(fs: ExtFs): Promise<string | null> {
  for (const p of ['/etc/hostname', '/etc/HOSTNAME']) {
    const t = await fs.readText(p);
    const line = t?.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#'));
    if (line) return line;
  }
  const net = await fs.readText('/etc/sysconfig/network');
  return (net && parseEnvFile(net).HOSTNAME) || null;
}

async function distroInfo(fs: ExtFs): Promise<{ distro: string; version: string; product: string; osRelease: Record<string, string> }> {
  const text = (await fs.readText('/etc/os-release')) ?? (await fs.readText('/usr/lib/os-release'));
  if (text) {
    const r = parseEnvFile(text);
    return { distro: r.ID ?? 'unknown', version: r.VERSION_ID ?? '', product: r.PRETTY_NAME ?? r.NAME ?? '', osRelease: r };
  }
  // Older guests without os-release.
  const deb = await fs.readText('/etc/debian_version');
  if (deb) return { distro: 'debian', version: deb.trim(), product: `Debian ${deb.trim()}`, osRelease: {} };
  const rh = await fs.readText('/etc/redhat-release');
  if (rh) {
    const v = /release\s+([\d.]+)/.exec(rh)?.[1] ?? '';
    const d = /CentOS/i.test(rh) ? 'centos' : /Fedora/i.test(rh) ? 'fedora' : 'rhel';
    return { distro: d, version: v, product: rh.trim(), osRelease: {} };
  }
  const alpine = await fs.readText('/etc/alpine-release');
  if (alpine) return { distro: 'alpine', version: alpine.trim(), product: `Alpine Linux ${alpine.trim()}`, osRelease: {} };
  return { distro: 'unknown', version: '', product: '', osRelease: {} };
}

async function kernels(fs: ExtFs): Promise<KernelInfo[]> {
  if (!(await fs.isDir('/boot'))) return [];
  const names = await fs.readdir('/boot');
  const out: KernelInfo[] = [];
  for (const n of names.filter((x) => /^vmlinuz-./.test(x)).sort()) {
    const version = n.slice('vmlinuz-'.length);
    const warnings: string[] = [];
    const initramfs = [`initrd.img-${version}`, `initramfs-${version}.img`, `initrd-${version}`, `initrd-${version}.img`].find((x) => names.includes(x)) ?? null;
    const config = names.includes(`config-${version}`) ? `config-${version}` : null;
    const cfg = config ? parseKernelConfig((await fs.readFile(`/boot/${config}`, 16 * 1024 * 1024)).toString('utf8')) : null;
    let mods = new Map<string, string>();
    let compression: string[] | undefined;
    if (initramfs) {
      try {
        const data = await fs.readFile(`/boot/${initramfs}`, 512 * 1024 * 1024);
        const listing = await listInitramfs(data, `/boot/${initramfs}`);
        mods = modulesIn(listing.entries);
        compression = listing.segments.map((s) => s.compression);
        warnings.push(...listing.warnings);
      } catch (err) {
        warnings.push(`cannot list /boot/${initramfs}: ${(err as Error).message}`);
      }
    }
    const virtio = {} as KernelInfo['virtio'];
    for (const d of VIRTIO_DRIVERS) {
      const c = cfg?.get(VIRTIO_CONFIG[d]);
      virtio[d] = c === 'y' ? 'builtin' : mods.has(d) ? 'initramfs' : c === 'm' ? 'module-not-in-initramfs' : 'absent';
    }
    const ok = (s: VirtioState) => s === 'builtin' || s === 'initramfs';
    // Without a config we cannot know virtio_pci is built in; the initramfs tells.
    const pciOk = ok(virtio.virtio_pci) || (!cfg && mods.size > 0 && (mods.has('virtio_pci') || ok(virtio.virtio_blk)));
    out.push({
      version, vmlinuz: `/boot/${n}`, initramfs: initramfs && `/boot/${initramfs}`, config: config && `/boot/${config}`,
      virtio, virtioBootable: (ok(virtio.virtio_blk) || ok(virtio.virtio_scsi)) && pciOk,
      ...(compression ? { initramfsCompression: compression } : {}), warnings,
    });
  }
  return out;
}

async function packageInfo(fs: ExtFs): Promise<{ format: string | null; count: number | null }> {
  const dpkg = await fs.stat('/var/lib/dpkg/status');
  if (dpkg?.type === 'file') {
    const text = (await fs.readFile('/var/lib/dpkg/status', 64 * 1024 * 1024)).toString('utf8');
    // Count installed packages only.
    const count = text.split(/\n\n+/).filter((stanza) => /^Status: install ok installed$/m.test(stanza)).length;
    return { format: 'deb', count };
  }
  if (await fs.exists('/var/lib/rpm') || await fs.exists('/usr/lib/sysimage/rpm')) return { format: 'rpm', count: null };
  if (await fs.isFile('/lib/apk/db/installed')) {
    const text = (await fs.readFile('/lib/apk/db/installed')).toString('utf8');
    return { format: 'apk', count: (text.match(/^P:/gm) ?? []).length };
  }
  return { format: null, count: null };
}

export async function inspectGuest(file: string, opts: { format?: string } = {}): Promise<GuestInspection> {
  const disk = await openImage(file, { format: opts.format });
  try {
    const table = await readPartitionTable(disk);
    const fss = await scanFilesystems(file, disk, table);
    const roots = fss.filter((f) => f.isRoot);
    if (roots.length === 0) throw noRootError(file, fss);
    const root = roots[0]!;
    const warnings = [...table.warnings];
    if (roots.length > 1) warnings.push(`several root filesystems (partitions ${roots.map((r) => r.partition).join(', ')}); inspected the first`);
    const fs = await mountExt(root.device, { writable: false, label: describePartition(root.partition), file });
    try {
      const d = await distroInfo(fs);
      const fstabText = await fs.readText('/etc/fstab');
      const pk = await packageInfo(fs);
      return {
        file, format: disk.format, virtualSize: disk.virtualSize, partitionTable: table.type,
        filesystems: fss.map((f) => ({
          partition: f.partition,
          ...(f.partition ? { partitionType: table.partitions.find((p) => p.number === f.partition)!.typeName } : {}),
          offset: f.device.start, size: f.device.virtualSize, type: f.ext?.kind ?? null,
          ...(f.ext ? { uuid: f.ext.uuid, label: f.ext.label } : {}), root: f.isRoot, ...(f.note ? { note: f.note } : {}),
        })),
        root: describePartition(root.partition),
        os: 'linux', distro: d.distro, version: d.version, productName: d.product, osRelease: d.osRelease,
        arch: await guestArch(fs),
        hostname: await guestHostname(fs),
        fstab: fstabText ? parseFstab(fstabText) : [],
        packageFormat: pk.format, packages: pk.count,
        kernels: await kernels(fs),
        cloudInit: await cloudInitReport(fs),
        warnings,
      };
    } finally {
      await fs.close();
    }
  } finally {
    await disk.close();
  }
}

export function inspectionHuman(g: GuestInspection): string {
  const lines = [
    `image:          ${g.file} (${g.format}, ${g.virtualSize} bytes, ${g.partitionTable} partition table)`,
    `root:           ${g.root}`,
    `os:             ${g.os}`,
    `distro:         ${g.distro} ${g.version}${g.productName ? ` (${g.productName})` : ''}`,
    `arch:           ${g.arch ?? 'unknown'}`,
    `hostname:       ${g.hostname ?? '(none)'}`,
    `packages:       ${g.packageFormat ? `${g.packageFormat}${g.packages !== null ? `, ${g.packages} installed` : ''}` : 'unknown'}`,
    `cloud-init:     ${g.cloudInit.installed ? `installed${g.cloudInit.disabled ? ' (disabled)' : ''}, datasources: ${g.cloudInit.datasources?.join(', ') ?? 'default'}` : 'not installed'}`,
    'filesystems:',
    ...g.filesystems.map((f) => `  ${f.partition === 0 ? 'disk' : 'p' + f.partition}${f.partitionType ? ` (${f.partitionType})` : ''}  ${f.type ?? '-'}  offset ${f.offset}  size ${f.size}${f.uuid ? `  UUID=${f.uuid}` : ''}${f.label ? `  LABEL=${f.label}` : ''}${f.root ? '  (root)' : ''}${f.note ? `  ${f.note}` : ''}`),
    'fstab:',
    ...g.fstab.map((e) => `  ${e.spec}  ${e.file}  ${e.vfstype}  ${e.options}`),
    'kernels:',
    ...g.kernels.flatMap((k) => [
      `  ${k.version}  initramfs: ${k.initramfs ?? '(none)'}${k.initramfsCompression ? ` [${k.initramfsCompression.join('+')}]` : ''}`,
      `    virtio: ${VIRTIO_DRIVERS.map((d) => `${d}=${k.virtio[d]}`).join(' ')}  => ${k.virtioBootable ? 'can boot from virtio' : 'NOT bootable from virtio'}`,
      ...k.warnings.map((w) => `    warning: ${w}`),
    ]),
    ...g.warnings.map((w) => `warning: ${w}`),
  ];
  return lines.join('\n') + '\n';
}

