// Opening a guest: the image (any format, through the engine), its partition table,
// the ext filesystems on it, and which of them is the Linux root.
import type { BlockDevice } from '../engine/block/device.js';
import { openImage } from '../engine/block/open.js';
import { ImgportError, UnsupportedFeature } from '../engine/errors.js';
import { mayHoldLinuxFs, readPartitionTable, SubRangeDevice, type Partition, type PartitionTable } from './partitions.js';
import { mountExt, readExtSuperblock, type ExtFs, type ExtSuperblock } from './fs/ext.js';

export interface FilesystemInfo {
  /** Partition number, or 0 for a whole-disk filesystem. */
  partition: number;
  device: SubRangeDevice;
  /** ext superblock, when the partition holds ext2/3/4. */
  ext: ExtSuperblock | null;
  /** Looks like a Linux root: /etc plus /bin (or /usr/bin) plus /etc/fstab or /etc/os-release. */
  isRoot: boolean;
  /** Why it could not be examined (e.g. needs_recovery is fine for reading, but LUKS is not). */
  note?: string;
}

export interface Guest {
  file: string;
  disk: BlockDevice;
  table: PartitionTable;
  filesystems: FilesystemInfo[];
  root: FilesystemInfo;
  /** The root filesystem, mounted (read-write when the guest was opened writable). */
  fs: ExtFs;
  close(): Promise<void>;
}

export function describePartition(n: number): string {
  return n === 0 ? 'whole disk' : `partition ${n}`;
}

/** A read-only look: is this ext filesystem a Linux root? */
async function looksLikeRoot(dev: SubRangeDevice, file: string, label: string): Promise<boolean> {
  const fs = await mountExt(dev, { writable: false, label, file });
  try {
    if (!(await fs.isDir('/etc'))) return false;
    const hasBin = (await fs.isDir('/bin')) || (await fs.isDir('/usr/bin'));
    const hasConf = (await fs.exists('/etc/fstab')) || (await fs.exists('/etc/os-release')) || (await fs.exists('/usr/lib/os-release'));
    return hasBin && hasConf;
  } finally {
    await fs.close();
  }
}

export async function scanFilesystems(file: string, disk: BlockDevice, table: PartitionTable): Promise<FilesystemInfo[]> {
  const candidates: Array<{ n: number; p?: Partition }> = table.type === 'none'
    ? [{ n: 0 }]
    : table.partitions.map((p) => ({ n: p.number, p }));
  const out: FilesystemInfo[] = [];
  for (const c of candidates) {
    const dev = c.p ? new SubRangeDevice(disk, c.p.offset, c.p.size, `p${c.n}`) : new SubRangeDevice(disk, 0, disk.virtualSize, 'disk');
    const info: FilesystemInfo = { partition: c.n, device: dev, ext: null, isRoot: false };
    out.push(info);
    if (c.p && !mayHoldLinuxFs(c.p)) continue;
    try {
      info.ext = await readExtSuperblock(dev);
      if (info.ext) info.isRoot = await looksLikeRoot(dev, file, describePartition(c.n));
    } catch (err) {
      if (!(err instanceof ImgportError)) throw err;
      info.note = err.message;
    }
  }
  return out;
}

/** The error for "no root found", saying what each partition turned out to be. */
export function noRootError(file: string, filesystems: FilesystemInfo[]): UnsupportedFeature {
  const seen = filesystems.map((f) => `${f.partition === 0 ? 'whole disk' : 'p' + f.partition}: ${f.ext ? f.ext.kind : 'not ext2/3/4'}${f.note ? ` (${f.note})` : ''}`).join('; ');
  return new UnsupportedFeature(`no Linux root filesystem found (ext2/3/4 with /etc); ${seen || 'no partitions'}`, { file });
}

/**
 * Opens `file`, finds the Linux root filesystem and mounts it. With `writable`, the
 * image is opened for writing and the root is mounted read-write (refusing dirty
 * journals); `dryRun` keeps every write in memory.
 */
export async function openGuest(file: string, opts: { writable?: boolean; dryRun?: boolean; format?: string } = {}): Promise<Guest> {
  const writable = !!opts.writable && !opts.dryRun;
  const disk = await openImage(file, { writable, format: opts.format });
  try {
    const table = await readPartitionTable(disk);
    const filesystems = await scanFilesystems(file, disk, table);
    const roots = filesystems.filter((f) => f.isRoot);
    if (roots.length === 0) throw noRootError(file, filesystems);
    if (roots.length > 1) {
      throw new UnsupportedFeature(`several Linux root filesystems found (partitions ${roots.map((r) => r.partition).join(', ')}); multi-boot guests are not supported`, { file });
    }
    const root = roots[0]!;
    if (writable && !disk.write) {
      throw new UnsupportedFeature(`writing ${disk.format} images in place is not supported; convert the image to qcow2 or raw first (or use --dry-run)`, { file });
    }
    const fs = await mountExt(root.device, { writable: writable || !!opts.dryRun, overlay: !!opts.dryRun, label: describePartition(root.partition), file });
    return {
      file, disk, table, filesystems, root, fs,
      async close() {
        try { await fs.close(); } finally { await disk.close(); }
      },
    };
  } catch (err) {
    await disk.close().catch(() => {});
    throw err;
  }
}
