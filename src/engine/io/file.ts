// Files as ByteSource / ByteSink, with positional reads and writes.
import fs from 'node:fs/promises';
import type { ByteSink, ByteSource } from './source.js';
import { ioError } from '../errors.js';

export class FileSource implements ByteSource {
  private constructor(readonly name: string, private fh: fs.FileHandle, public size: number) {}

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
      return new FileSource(name, fh, size);
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

  async close(): Promise<void> { await this.fh.close(); }
}

/** Size of a block device (stat reports 0): the kernel's sector count from sysfs. */
async function blockDeviceSize(fh: fs.FileHandle): Promise<number> {
  const dev = (await fs.realpath(`/proc/self/fd/${fh.fd}`)).split('/').pop()!;
  return Number((await fs.readFile(`/sys/class/block/${dev}/size`, 'utf8')).trim()) * 512;
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
    let done = 0;
    try {
      while (done < buf.length) {
        const { bytesWritten } = await this.fh.write(buf, done, buf.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw ioError(err, this.name, `write at offset ${offset + done}`);
    }
  }

  async truncate(size: number): Promise<void> {
    try { await this.fh.truncate(size); } catch (err) { throw ioError(err, this.name, 'truncate'); }
  }

  async sync(): Promise<void> {
    try { await this.fh.sync(); } catch (err) { throw ioError(err, this.name, 'fsync'); }
  }

  async close(): Promise<void> { await this.fh.close(); }
}
