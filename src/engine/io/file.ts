// Files as ByteSource / ByteSink, with positional reads and writes.
import fs from 'node:fs/promises';
import type { ByteSink, ByteSource } from './source.js';
import { UnsupportedFeature, ioError } from '../errors.js';
import { nativeAddon, seekDataRuns } from './native.js';

export class FileSource implements ByteSource {
  private constructor(readonly name: string, private fh: fs.FileHandle, public size: number, readonly writable: boolean) {}

  static async open(name: string, writable = false): Promise<FileSource> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(name, writable ? 'r+' : 'r');
      const st = await fh.stat();
      if (st.isDirectory()) {
        await fh.close();
        throw new Error('is a directory');
      }
      let size = st.size;
      if (st.isBlockDevice()) size = await blockDeviceSize(fh);
      return new FileSource(name, fh, size, writable);
    } catch (err) {
      throw ioError(err, name, 'cannot open');
    }
  }

  get handle(): fs.FileHandle { return this.fh; }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    let done = 0;
    const want = Math.min(buf.length, Math.max(0, this.size - offset));
    try {
      while (done < want) {
        const { bytesRead } = await this.fh.read(buf, done, want - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw ioError(err, this.name, `read at offset ${offset + done}`);
    }
    return done;
  }

  /** SEEK_DATA/SEEK_HOLE through the native addon; null when unknown. */
  async dataRuns(offset: number, length: number): Promise<Array<{ offset: number; length: number }> | null> {
    return seekDataRuns(this.fh.fd, offset, Math.min(length, Math.max(0, this.size - offset)));
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (!this.writable) throw new UnsupportedFeature('opened read-only', { file: this.name });
    await writeAll(this.fh, this.name, buf, offset);
    if (offset + buf.length > this.size) this.size = offset + buf.length;
  }

  async truncate(size: number): Promise<void> {
    if (!this.writable) throw new UnsupportedFeature('opened read-only', { file: this.name });
    try { await this.fh.truncate(size); } catch (err) { throw ioError(err, this.name, 'truncate'); }
    this.size = size;
  }

  async sync(): Promise<void> {
    try { await this.fh.sync(); } catch (err) { throw ioError(err, this.name, 'fsync'); }
  }

  async close(): Promise<void> { await this.fh.close(); }
}

/** Size of a block device (stat reports 0): the kernel's sector count from sysfs. */
async function blockDeviceSize(fh: fs.FileHandle): Promise<number> {
  const dev = (await fs.realpath(`/proc/self/fd/${fh.fd}`)).split('/').pop()!;
  return Number((await fs.readFile(`/sys/class/block/${dev}/size`, 'utf8')).trim()) * 512;
}

async function writeAll(fh: fs.FileHandle, name: string, buf: Uint8Array, offset: number): Promise<void> {
  let done = 0;
  try {
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, offset + done);
      done += bytesWritten;
    }
  } catch (err) {
    throw ioError(err, name, `write at offset ${offset + done}`);
  }
}

export class FileSink implements ByteSink {
  readonly seekable = true;
  private constructor(readonly name: string, private fh: fs.FileHandle) {}

  /** Creates (or truncates) a file for writing. */
  static async create(name: string): Promise<FileSink> {
    try {
      return new FileSink(name, await fs.open(name, 'w+'));
    } catch (err) {
      throw ioError(err, name, 'cannot create');
    }
  }

  /** Opens an existing file for in-place writes. */
  static async openExisting(name: string): Promise<FileSink> {
    try {
      return new FileSink(name, await fs.open(name, 'r+'));
    } catch (err) {
      throw ioError(err, name, 'cannot open for writing');
    }
  }

  get handle(): fs.FileHandle { return this.fh; }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    await writeAll(this.fh, this.name, buf, offset);
  }

  async truncate(size: number): Promise<void> {
    try { await this.fh.truncate(size); } catch (err) { throw ioError(err, this.name, 'truncate'); }
  }

  /** Punches a hole (native addon); without it, writes nothing and leaves the data. */
  async discard(offset: number, length: number): Promise<void> {
    const addon = nativeAddon();
    if (!addon || length <= 0) return;
    try { addon.fallocate(this.fh.fd, 1, offset, length); } catch { /* best effort by contract */ }
  }

  async allocate(offset: number, length: number): Promise<void> {
    const addon = nativeAddon();
    if (!addon) throw new UnsupportedFeature('preallocation=falloc needs the native addon (run npm install)', { file: this.name });
    if (length <= 0) return;
    try { addon.fallocate(this.fh.fd, 0, offset, length); } catch (err) { throw ioError(err, this.name, 'fallocate'); }
  }

  async sync(): Promise<void> {
    try { await this.fh.sync(); } catch (err) { throw ioError(err, this.name, 'fsync'); }
  }

  async close(): Promise<void> { await this.fh.close(); }
}
