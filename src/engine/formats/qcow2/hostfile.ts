// Writable access to the image file for in-place updates (write, snapshot, resize,
// check repair). ByteSource is read-only by design; a writable qcow2 device is opened
// from a FileSource in r+ mode (openImage with writable), whose file handle we use.

import type { ByteSource } from '../../io/source.js';
import { FileSource } from '../../io/file.js';
import { ioError, UnsupportedFeature } from '../../errors.js';

export interface HostFile {
  readonly name: string;
  readonly size: number;
  read(buf: Uint8Array, offset: number): Promise<number>;
  write(buf: Uint8Array, offset: number): Promise<void>;
  truncate(size: number): Promise<void>;
  sync(): Promise<void>;
}

export function hostFile(src: ByteSource): HostFile {
  if (!(src instanceof FileSource)) throw new UnsupportedFeature('in-place qcow2 updates need a local file', { file: src.name });
  const fh = src.handle;
  return {
    name: src.name,
    get size() { return src.size; },
    read: (buf, off) => src.read(buf, off),
    async write(buf, off) {
      let done = 0;
      try {
        while (done < buf.length) {
          const { bytesWritten } = await fh.write(buf, done, buf.length - done, off + done);
          done += bytesWritten;
        }
      } catch (err) {
        throw ioError(err, src.name, `write at offset ${off + done}`);
      }
      if (off + buf.length > src.size) src.size = off + buf.length;
    },
    async truncate(size) {
      try { await fh.truncate(size); } catch (err) { throw ioError(err, src.name, 'truncate'); }
      src.size = size;
    },
    async sync() {
      try { await fh.sync(); } catch (err) { throw ioError(err, src.name, 'fsync'); }
    },
  };
}
