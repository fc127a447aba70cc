// Filesystem store: one file per image under `dir`. Uploads go to `.tmp-<id>-<rand>`,
// are fsynced, then renamed to `<id>` and the directory fsynced, so a crash leaves
// either the complete file or a temporary that init() removes.
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Store, StoreWriter } from './store.js';
import { ioError, NotFound } from '../../engine/errors.js';

const TMP_PREFIX = '.tmp-';
const SCHEME = 'file://';
/** Bytes written between background fdatasync calls. */
const SYNC_EVERY = 64 * 1024 * 1024;

export class FileStore implements Store {
  readonly scheme = 'file';
  readonly dir: string;
  constructor(dir: string, private readonly fsync = true) { this.dir = path.resolve(dir); }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) {
      if (name.startsWith(TMP_PREFIX)) await rm(path.join(this.dir, name), { force: true });
    }
  }

  private pathOf(location: string): string {
    if (!location.startsWith(SCHEME)) throw new NotFound(`unknown location ${location}`);
    const p = location.slice(SCHEME.length);
    // Locations are only ever written by this store; refuse anything outside its dir.
    if (path.dirname(p) !== path.resolve(this.dir)) throw new NotFound(`location outside the store: ${location}`);
    return p;
  }

  async begin(imageId: string): Promise<StoreWriter> {
    const tmp = path.join(this.dir, `${TMP_PREFIX}${imageId}-${randomBytes(6).toString('hex')}`);
    const final = path.resolve(this.dir, imageId);
    let fh: FileHandle | null;
    try { fh = await open(tmp, 'wx'); } catch (e) { throw ioError(e, tmp, 'cannot create image file'); }
    let done = false;
    let unsynced = 0;
    let syncing: Promise<void> | null = null;
    const dir = this.dir;
    const doSync = this.fsync;
    const abort = async () => {
      if (done) return;
      done = true;
      const h = fh; fh = null;
      if (syncing) await syncing;
      if (h) await h.close().catch(() => {});
      await rm(tmp, { force: true });
    };
    return {
      async writeAt(data, position) {
        if (!fh) throw new Error('store writer is closed');
        const h = fh;
        let off = 0;
        while (off < data.byteLength) {
          const { bytesWritten } = await h.write(data, off, data.byteLength - off, position + off);
          off += bytesWritten;
        }
        // Flush as we go so dirty pages stay bounded and commit's fsync is short.
        unsynced += data.byteLength;
        if (doSync && unsynced >= SYNC_EVERY && !syncing) {
          unsynced = 0;
          syncing = h.datasync().catch(() => {}).finally(() => { syncing = null; });
        }
      },
      async commit() {
        if (!fh || done) throw new Error('store writer is closed');
        try {
          if (syncing) await syncing;
          if (doSync) await fh.sync();
          await fh.close();
          fh = null;
          await rename(tmp, final);
          if (doSync) await syncDir(dir);
        } catch (e) {
          await abort();
          throw ioError(e, tmp, 'cannot store image file');
        }
        done = true;
        return SCHEME + final;
      },
      abort,
    };
  }

  async read(location: string, range?: { start: number; end: number }): Promise<Readable> {
    const p = this.pathOf(location);
    try { await stat(p); } catch (e) { throw ioError(e, p, 'image data'); }
    return createReadStream(p, { start: range?.start, end: range?.end, highWaterMark: 1024 * 1024 });
  }

  async size(location: string): Promise<number> {
    const p = this.pathOf(location);
    try { return (await stat(p)).size; } catch (e) { throw ioError(e, p, 'image data'); }
  }

  async delete(location: string): Promise<void> {
    await rm(this.pathOf(location), { force: true });
  }

  async sweep(keep: Set<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(this.dir)) {
      const loc = SCHEME + path.resolve(this.dir, name);
      if (!keep.has(loc)) { await rm(path.join(this.dir, name), { force: true, recursive: true }); removed.push(name); }
    }
    return removed;
  }
}

async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try { await h.sync(); } finally { await h.close(); }
}
