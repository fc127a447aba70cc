// ext2/3/4 read-write inside any image format: libext2fs compiled to WASM (npm
// `ext2fs`) driven through our BlockDevice, so a qcow2/vmdk/vhd is edited in place,
// without converting it first.
//
// Before mounting we read the superblock ourselves: libext2fs does not replay a
// journal, so a filesystem with an unreplayed journal (needs_recovery) or an orphan
// list in progress is refused instead of being written to (and corrupted).

import ext2fs from 'ext2fs';
import type { Ext2Disk, Ext2Fs, Ext2Promises, Ext2Stats } from 'ext2fs';
import path from 'node:path/posix';
import type { BlockDevice } from '../../engine/block/device.js';
import { CorruptImage, ImgportError, InvalidArgument, IoError, NotFound, UnsupportedFeature } from '../../engine/errors.js';
import { OverlayDevice } from './overlay.js';

const O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 64, O_TRUNC = 512, O_NOFOLLOW = 131072;
const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000, S_IFLNK = 0o120000;

export interface ExtSuperblock {
  blockSize: number;
  blocksCount: number;
  inodesCount: number;
  uuid: string;
  label: string;
  lastMounted: string;
  /** s_state: 1 = cleanly unmounted, 2 = errors detected. */
  state: number;
  compat: number;
  incompat: number;
  roCompat: number;
  features: string[];
  /** ext2 / ext3 / ext4, from the features in use (as blkid names it). */
  kind: 'ext2' | 'ext3' | 'ext4';
}

const COMPAT: Record<number, string> = { 0x1: 'dir_prealloc', 0x4: 'has_journal', 0x8: 'ext_attr', 0x10: 'resize_inode', 0x20: 'dir_index', 0x200: 'sparse_super2', 0x400: 'fast_commit', 0x1000: 'orphan_file' };
const INCOMPAT: Record<number, string> = { 0x1: 'compression', 0x2: 'filetype', 0x4: 'needs_recovery', 0x8: 'journal_dev', 0x10: 'meta_bg', 0x40: 'extent', 0x80: '64bit', 0x100: 'mmp', 0x200: 'flex_bg', 0x400: 'ea_inode', 0x1000: 'dirdata', 0x2000: 'metadata_csum_seed', 0x4000: 'large_dir', 0x8000: 'inline_data', 0x10000: 'encrypt', 0x20000: 'casefold' };
const RO_COMPAT: Record<number, string> = { 0x1: 'sparse_super', 0x2: 'large_file', 0x8: 'huge_file', 0x10: 'uninit_bg', 0x20: 'dir_nlink', 0x40: 'extra_isize', 0x100: 'quota', 0x200: 'bigalloc', 0x400: 'metadata_csum', 0x1000: 'read-only', 0x2000: 'project', 0x4000: 'shared_blocks', 0x8000: 'verity', 0x10000: 'orphan_present' };

/** libext2fs error codes are EXT2_ET_BASE + index in e2fsprogs' (stable) error table. */
const EXT2_ET_BASE = 2133571328;
const EXT2_ERRORS: Record<number, string> = {
  19: 'bad magic number in super-block', 22: "can't read group descriptors",
  24: 'corrupt group descriptor: bad block for block bitmap', 25: 'corrupt group descriptor: bad block for inode bitmap',
  26: 'corrupt group descriptor: bad block for inode table', 28: "can't read an inode bitmap", 30: "can't read a block bitmap",
  32: "can't read an inode table", 35: 'directory corrupted', 59: 'a block group is missing an inode table',
  60: 'the superblock is corrupt', 67: 'the filesystem has unsupported features', 68: 'the filesystem has unsupported read-only features',
  84: 'journal superblock not found', 86: 'unsupported journal version', 88: 'journal not found', 94: 'resize inode is corrupt',
  119: 'corrupt extent header', 120: 'corrupt extent index', 121: 'corrupt extent', 145: 'block group descriptor size incorrect',
  146: 'inode checksum does not match inode', 147: 'inode bitmap checksum does not match bitmap',
  148: 'extent block checksum does not match', 150: 'directory block checksum does not match',
  151: 'extended attribute block checksum does not match', 152: 'superblock checksum does not match superblock',
  153: 'unknown checksum algorithm', 156: 'block bitmap checksum does not match bitmap', 174: 'file system is corrupted',
  176: 'the journal superblock is corrupt', 177: 'inode is corrupted',
};

/** A libext2fs failure as our error type: unsupported features vs. corruption vs. other. */
function ext2fsError(err: unknown, label: string, file: string, what: string): ImgportError {
  const errno = (err as { errno?: number }).errno ?? 0;
  const idx = errno - EXT2_ET_BASE;
  const text = EXT2_ERRORS[idx];
  if (text && (idx === 67 || idx === 68 || idx === 86 || idx === 153)) {
    return new UnsupportedFeature(`${label}: ${what}: ${text}`, { file, cause: err });
  }
  if (text) return new CorruptImage(`${label}: ${what}: ${text} (run e2fsck on it)`, { file, cause: err });
  const code = (err as { code?: string }).code;
  return new IoError(`${label}: ${what}: ${code && code !== 'UNKNOWN' ? code : `libext2fs error ${errno}`}`, { file, cause: err });
}

const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_JOURNAL_DEV = 0x8;
const RO_COMPAT_ORPHAN_PRESENT = 0x10000;
const RO_COMPAT_READONLY = 0x1000;

function flagNames(v: number, table: Record<number, string>): string[] {
  const out: string[] = [];
  for (let bit = 0; bit < 32; bit++) {
    const m = (2 ** bit);
    if (v & m) out.push(table[m] ?? `unknown(0x${m.toString(16)})`);
  }
  return out;
}

function cstr(b: Uint8Array): string {
  const z = b.indexOf(0);
  return new TextDecoder().decode(z >= 0 ? b.subarray(0, z) : b);
}

/** Reads the ext superblock of a partition; null when there is no ext filesystem. */
export async function readExtSuperblock(dev: BlockDevice): Promise<ExtSuperblock | null> {
  if (dev.virtualSize < 2048) return null;
  const b = new Uint8Array(1024);
  await dev.read(b, 1024);
  const dv = new DataView(b.buffer);
  if (dv.getUint16(56, true) !== 0xef53) return null;
  const logBlock = dv.getUint32(24, true);
  if (logBlock > 6) throw new CorruptImage(`ext superblock has an invalid block size (log ${logBlock})`, { file: dev.name, offset: 1024 + 24 });
  const compat = dv.getUint32(92, true), incompat = dv.getUint32(96, true), roCompat = dv.getUint32(100, true);
  const hex = [...b.subarray(104, 120)].map((x) => x.toString(16).padStart(2, '0')).join('');
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  const kind = (incompat & ~(0x2 | 0x4 | 0x10)) !== 0 || (roCompat & ~0x3) !== 0 ? 'ext4' : compat & 0x4 ? 'ext3' : 'ext2';
  return {
    blockSize: 1024 << logBlock,
    blocksCount: dv.getUint32(4, true) + (incompat & 0x80 ? dv.getUint32(0x150, true) * 2 ** 32 : 0),
    inodesCount: dv.getUint32(0, true),
    uuid, label: cstr(b.subarray(120, 136)), lastMounted: cstr(b.subarray(136, 200)),
    state: dv.getUint16(58, true),
    compat, incompat, roCompat,
    features: [...flagNames(compat, COMPAT), ...flagNames(incompat, INCOMPAT), ...flagNames(roCompat, RO_COMPAT)],
    kind,
  };
}

export interface GuestStat {
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Permission bits (07777). */
  perm: number;
  uid: number;
  gid: number;
  size: number;
}

function toStat(s: Ext2Stats): GuestStat {
  const fmt = s.mode & S_IFMT;
  return {
    type: fmt === S_IFREG ? 'file' : fmt === S_IFDIR ? 'dir' : fmt === S_IFLNK ? 'symlink' : 'other',
    perm: s.mode & 0o7777, uid: s.uid, gid: s.gid, size: s.size,
  };
}

const CHUNK = 256 * 1024;
const CACHE_CHUNKS = 64;

/**
 * Adapts a BlockDevice to the disk object libext2fs calls back into. libext2fs asks
 * for one filesystem block (often 1-4 KiB) at a time; a small read cache of aligned
 * chunks turns that into large reads of the image. Writes go straight to the device
 * and update cached chunks, so the cache never holds stale bytes.
 */
class BlockDisk implements Ext2Disk {
  /** libext2fs turns our exceptions into EIO; keep the real one to report it. */
  lastError: unknown = null;
  private cache = new Map<number, Uint8Array>();
  constructor(private dev: BlockDevice) {}

  private async chunk(index: number): Promise<Uint8Array> {
    const hit = this.cache.get(index);
    if (hit) {
      // Refresh its LRU position.
      this.cache.delete(index);
      this.cache.set(index, hit);
      return hit;
    }
    const start = index * CHUNK;
    const data = new Uint8Array(Math.min(CHUNK, this.dev.virtualSize - start));
    await this.dev.read(data, start);
    this.cache.set(index, data);
    if (this.cache.size > CACHE_CHUNKS) this.cache.delete(this.cache.keys().next().value!);
    return data;
  }

  async read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number) {
    try {
      const view = buffer.subarray(bufferOffset, bufferOffset + length);
      const end = Math.min(fileOffset + length, this.dev.virtualSize);
      let pos = fileOffset;
      while (pos < end) {
        const idx = Math.floor(pos / CHUNK);
        const c = await this.chunk(idx);
        const from = pos - idx * CHUNK;
        const n = Math.min(c.length - from, end - pos);
        view.set(c.subarray(from, from + n), pos - fileOffset);
        pos += n;
      }
      // Past the end of the partition reads as zeros, like a short block device read.
      if (end - fileOffset < length) view.fill(0, Math.max(0, end - fileOffset));
      return { bytesRead: length, buffer };
    } catch (err) { this.lastError = err; throw err; }
  }

  async write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number) {
    try {
      if (!this.dev.write) throw new UnsupportedFeature('the image is opened read-only', { file: this.dev.name });
      // Copy out of the WASM heap: the buffer is a view that libext2fs reuses.
      const data = Uint8Array.prototype.slice.call(buffer, bufferOffset, bufferOffset + length);
      await this.dev.write(data, fileOffset);
      for (let idx = Math.floor(fileOffset / CHUNK); idx * CHUNK < fileOffset + length; idx++) {
        const c = this.cache.get(idx);
        if (!c) continue;
        const s = Math.max(fileOffset, idx * CHUNK);
        const e = Math.min(fileOffset + length, idx * CHUNK + c.length);
        if (e > s) c.set(data.subarray(s - fileOffset, e - fileOffset), s - idx * CHUNK);
      }
      return { bytesWritten: length, buffer };
    } catch (err) { this.lastError = err; throw err; }
  }

  async flush() {
    try { await this.dev.flush?.(); } catch (err) { this.lastError = err; throw err; }
  }

  async discard() { /* leave freed blocks allocated in the image; harmless */ }
}

export interface MountOptions {
  /** Write to the device. When false, writes (if any) go to a throw-away overlay. */
  writable: boolean;
  /** Where in the image, for messages: "partition 1". */
  label: string;
  /** The image file, for messages. */
  file: string;
  /** Keep writes in memory (dry runs); the write-safety checks still apply when `writable`. */
  overlay?: boolean;
}

/** Opens the ext filesystem on `dev` (a partition device). */
export async function mountExt(dev: BlockDevice, opts: MountOptions): Promise<ExtFs> {
  const sb = await readExtSuperblock(dev);
  if (!sb) throw new UnsupportedFeature(`${opts.label}: not an ext2/3/4 filesystem`, { file: opts.file });
  if (sb.incompat & INCOMPAT_JOURNAL_DEV) throw new UnsupportedFeature(`${opts.label}: is an external ext journal device, not a filesystem`, { file: opts.file });
  if (opts.writable) {
    if (sb.incompat & INCOMPAT_RECOVER) {
      throw new UnsupportedFeature(`${opts.label}: the ext4 filesystem has an unreplayed journal (needs_recovery: the guest was not shut down cleanly); boot and shut down the guest cleanly, or run e2fsck on it, before preparing it`, { file: opts.file });
    }
    if (sb.roCompat & RO_COMPAT_ORPHAN_PRESENT) {
      throw new UnsupportedFeature(`${opts.label}: the filesystem has orphan inodes pending cleanup (orphan_present); run e2fsck on it first`, { file: opts.file });
    }
    if (sb.state & 2) throw new UnsupportedFeature(`${opts.label}: the filesystem is marked as having errors; run e2fsck on it first`, { file: opts.file });
    if (sb.roCompat & RO_COMPAT_READONLY) throw new UnsupportedFeature(`${opts.label}: the filesystem is flagged read-only`, { file: opts.file });
    if (!dev.write && !opts.overlay) throw new InvalidArgument(`${opts.label}: the image is opened read-only`, { file: opts.file });
  }
  const target = opts.writable && !opts.overlay ? dev : new OverlayDevice(dev);
  const disk = new BlockDisk(target);
  let fs: Ext2Fs;
  try {
    fs = await ext2fs.mount(disk, 0);
  } catch (err) {
    if (disk.lastError instanceof ImgportError) throw disk.lastError;
    throw ext2fsError(err, opts.label, opts.file, `cannot open the ${sb.kind} filesystem`);
  }
  return new ExtFs(fs, disk, sb, opts.label, opts.file, target instanceof OverlayDevice ? target : null);
}

/**
 * A mounted ext filesystem with the file operations the guest tools need. Paths are
 * absolute guest paths; symlinks resolve inside the guest filesystem (libext2fs
 * resolves absolute links from the filesystem root, never the host's).
 */
export class ExtFs {
  private p: Ext2Promises;
  private closed = false;

  constructor(private fs: Ext2Fs, private disk: BlockDisk, readonly superblock: ExtSuperblock,
    readonly label: string, private file: string, private overlay: OverlayDevice | null) {
    this.p = fs.promises;
  }

  /** Bytes written to the throw-away overlay (read-only mounts). */
  get overlayBytes(): number { return this.overlay?.dirtyBytes ?? 0; }

  private fail(err: unknown, what: string, p: string): never {
    if (err instanceof ImgportError) throw err;
    if (this.disk.lastError instanceof ImgportError) throw this.disk.lastError;
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT') throw new NotFound(`${this.label}: ${what} ${p}: no such file or directory`, { file: this.file, cause: err });
    throw ext2fsError(err, this.label, this.file, `${what} ${p}`);
  }

  private static norm(p: string): string {
    if (!p.startsWith('/')) throw new InvalidArgument(`guest path must be absolute: ${p}`);
    return path.normalize(p);
  }

  /** lstat; null when the path does not exist (or a parent is not a directory). */
  async lstat(p: string): Promise<GuestStat | null> {
    p = ExtFs.norm(p);
    if (p === '/') return this.stat(p);
    try { return toStat(await this.p.lstat(p)); } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      this.fail(err, 'lstat', p);
    }
  }

  /** stat following symlinks; null when missing or dangling. */
  async stat(p: string): Promise<GuestStat | null> {
    p = ExtFs.norm(p);
    try { return toStat(await this.p.stat(p)); } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return null;
      this.fail(err, 'stat', p);
    }
  }

  async exists(p: string): Promise<boolean> { return (await this.lstat(p)) !== null; }
  async isFile(p: string): Promise<boolean> { return (await this.lstat(p))?.type === 'file'; }
  async isDir(p: string): Promise<boolean> { return (await this.stat(p))?.type === 'dir'; }

  /** Reads a whole file (up to `max` bytes). */
  async readFile(p: string, max = 256 * 1024 * 1024): Promise<Buffer> {
    p = ExtFs.norm(p);
    let fd = -1;
    try {
      fd = (await this.p.open(p, O_RDONLY)).fd;
      const st = await this.p.fstat(fd);
      if ((st.mode & S_IFMT) !== S_IFREG) throw new InvalidArgument(`${this.label}: ${p} is not a regular file`, { file: this.file });
      const size = Math.min(st.size, max);
      const buf = Buffer.alloc(size);
      let done = 0;
      while (done < size) {
        const chunk = Math.min(size - done, 4 * 1024 * 1024);
        const { bytesRead } = await this.p.read(fd, buf, done, chunk, done);
        if (bytesRead <= 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    } catch (err) {
      throw this.fail(err, 'read', p);
    } finally {
      if (fd >= 0) await this.p.close(fd).catch(() => {});
    }
  }

  /** Reads a range of a file. */
  async readRange(p: string, offset: number, length: number): Promise<Buffer> {
    p = ExtFs.norm(p);
    let fd = -1;
    try {
      fd = (await this.p.open(p, O_RDONLY)).fd;
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await this.p.read(fd, buf, done, length - done, offset + done);
        if (bytesRead <= 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    } catch (err) {
      throw this.fail(err, 'read', p);
    } finally {
      if (fd >= 0) await this.p.close(fd).catch(() => {});
    }
  }

  /** The file's text, or null when it does not exist. */
  async readText(p: string): Promise<string | null> {
    const st = await this.stat(p);
    if (!st || st.type !== 'file') return null;
    return (await this.readFile(p)).toString('utf8');
  }

  /**
   * Writes a file. An existing file keeps its mode and owner unless given; a new one
   * gets `mode` (default 0644) and `uid`/`gid` (default root).
   */
  async writeFile(p: string, data: string | Uint8Array, opts: { mode?: number; uid?: number; gid?: number } = {}): Promise<void> {
    p = ExtFs.norm(p);
    const existing = await this.stat(p);
    if (existing && existing.type !== 'file') throw new InvalidArgument(`${this.label}: cannot write ${p}: not a regular file`, { file: this.file });
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let fd = -1;
    try {
      fd = (await this.p.open(p, O_WRONLY | O_CREAT | O_TRUNC, opts.mode ?? 0o644)).fd;
      let done = 0;
      while (done < buf.length) {
        const { bytesWritten } = await this.p.write(fd, buf, done, buf.length - done, done);
        if (bytesWritten <= 0) throw new IoError(`${this.label}: short write to ${p}`, { file: this.file });
        done += bytesWritten;
      }
      const mode = opts.mode ?? (existing ? undefined : 0o644);
      if (mode !== undefined) await this.p.fchmod(fd, mode);
      const uid = opts.uid ?? (existing ? undefined : 0);
      const gid = opts.gid ?? (existing ? undefined : 0);
      if (uid !== undefined || gid !== undefined) await this.p.fchown(fd, uid ?? existing?.uid ?? 0, gid ?? existing?.gid ?? 0);
    } catch (err) {
      this.fail(err, 'write', p);
    } finally {
      if (fd >= 0) await this.p.close(fd).catch(() => {});
    }
  }

  /** Cuts a regular file to zero length, keeping it (and its mode/owner). */
  async truncate(p: string): Promise<void> {
    await this.writeFile(p, '');
  }

  async unlink(p: string): Promise<void> {
    p = ExtFs.norm(p);
    try { await this.p.unlink(p); } catch (err) { this.fail(err, 'unlink', p); }
  }

  async rmdir(p: string): Promise<void> {
    p = ExtFs.norm(p);
    try { await this.p.rmdir(p); } catch (err) { this.fail(err, 'rmdir', p); }
  }

  /** Removes a file, symlink or whole directory tree (never following symlinks). */
  async remove(p: string): Promise<void> {
    const st = await this.lstat(p);
    if (!st) return;
    if (st.type === 'dir') {
      for (const e of await this.readdir(p)) await this.remove(path.join(p, e));
      await this.rmdir(p);
    } else {
      await this.unlink(p);
    }
  }

  /** Directory entries without "." and "..". */
  async readdir(p: string): Promise<string[]> {
    p = ExtFs.norm(p);
    try {
      return (await this.p.readdir(p)).filter((e) => e !== '.' && e !== '..').sort();
    } catch (err) { this.fail(err, 'readdir', p); }
  }

  async readlink(p: string): Promise<string> {
    p = ExtFs.norm(p);
    try { return await this.p.readlink(p); } catch (err) { this.fail(err, 'readlink', p); }
  }

  async mkdir(p: string, opts: { mode?: number; uid?: number; gid?: number } = {}): Promise<void> {
    p = ExtFs.norm(p);
    try {
      await this.p.mkdir(p, opts.mode ?? 0o755);
      await this.p.chmod(p, opts.mode ?? 0o755);
      if (opts.uid !== undefined || opts.gid !== undefined) await this.p.chown(p, opts.uid ?? 0, opts.gid ?? 0);
    } catch (err) { this.fail(err, 'mkdir', p); }
  }

  /** mkdir -p; new directories get `mode` (0755) and root ownership. */
  async mkdirp(p: string, mode = 0o755): Promise<void> {
    p = ExtFs.norm(p);
    const st = await this.stat(p);
    if (st?.type === 'dir') return;
    if (st) throw new InvalidArgument(`${this.label}: ${p} exists and is not a directory`, { file: this.file });
    await this.mkdirp(path.dirname(p), mode);
    await this.mkdir(p, { mode });
  }

  async symlink(target: string, p: string): Promise<void> {
    p = ExtFs.norm(p);
    try { await this.p.symlink(target, p); } catch (err) { this.fail(err, 'symlink', p); }
  }

  async chmod(p: string, mode: number): Promise<void> {
    p = ExtFs.norm(p);
    try { await this.p.chmod(p, mode); } catch (err) { this.fail(err, 'chmod', p); }
  }

  async chown(p: string, uid: number, gid: number): Promise<void> {
    p = ExtFs.norm(p);
    try { await this.p.chown(p, uid, gid); } catch (err) { this.fail(err, 'chown', p); }
  }

  /**
   * Canonical guest path: every component's symlinks resolved (relative or absolute
   * targets, inside the guest), up to 40 links. Missing trailing parts are kept as is.
   */
  async realpath(p: string): Promise<string> {
    const parts = ExtFs.norm(p).split('/').filter(Boolean);
    let cur = '/';
    let hops = 0;
    while (parts.length) {
      const next = path.join(cur, parts.shift()!);
      const st = await this.lstat(next);
      if (st?.type !== 'symlink') { cur = next; continue; }
      if (++hops > 40) throw new UnsupportedFeature(`${this.label}: too many levels of symbolic links at ${p}`, { file: this.file });
      const t = await this.readlink(next);
      parts.unshift(...t.split('/').filter(Boolean));
      if (t.startsWith('/')) cur = '/';
    }
    return cur;
  }

  /** Unmounts: flushes libext2fs's caches and the device. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await ext2fs.umount(this.fs);
    } catch (err) {
      if (this.disk.lastError instanceof ImgportError) throw this.disk.lastError;
      throw ext2fsError(err, this.label, this.file, 'unmounting failed');
    } finally {
      await this.overlay?.close();
    }
  }
}
