// Image data: upload (queued → saving → active, back to queued on any failure) and
// download. Upload bytes are coalesced into slots of a per-upload SharedArrayBuffer;
// each full slot goes at once to the md5 worker, the os_hash worker and the store
// (positional write), and is reused when all three are done: a fixed bound on memory
// and in-flight bytes (1 MiB per upload), with both hash threads and the disk busy together.
import type { Readable } from 'node:stream';
import { Conflict, Forbidden, ImgportError, InvalidArgument } from '../../engine/errors.js';
import * as repo from '../db/repo.js';
import type { ImageRecord } from '../db/repo.js';
import type { StoreWriter } from '../stores/store.js';
import type { RequestContext } from './context.js';
import { Gone, LimitExceeded, RangeNotSatisfiable, StorageFull } from './errors.js';
import { load } from './images.js';
import { inspectorFor, type UploadCheck } from './inspection.js';
import { enforce, notFound } from './policy.js';
import { checkUploadStart, remainingBytes } from './quotas.js';
import { now, type Service } from './service.js';

const SLOT = 256 * 1024;
const SLOTS = 4;

export interface UploadResult { size: number; checksum: string; hash: string; virtualSize: number | null }

export async function upload(svc: Service, ctx: RequestContext, id: string, body: AsyncIterable<Uint8Array>, declared: number | null): Promise<void> {
  const { img, member } = await load(svc, ctx, id);
  enforce(ctx, 'upload_image', img, member);
  if (img.status !== 'queued') throw new Conflict(`Image status transition from ${img.status} to saving is not allowed`);
  const missing = (['disk_format', 'container_format'] as const).filter((k) => !img[k]);
  if (missing.length) throw new InvalidArgument(`Propert${missing.length > 1 ? 'ies' : 'y'} ${missing.join(', ')} must be set prior to saving data.`);
  if (declared !== null && declared > svc.cfg.imageSizeCap) throw new LimitExceeded(`The incoming image is too large: ${declared} bytes exceeds the limit of ${svc.cfg.imageSizeCap}`);
  await checkUploadStart(svc, img.owner, declared);
  const room = await remainingBytes(svc, img.owner);
  // The compare-and-set is what makes a second concurrent upload fail with 409.
  if (!(await repo.setStatus(svc.db, id, { status: 'saving', staging_size: declared ?? 0, updated_at: now() }, ['queued']))) {
    const cur = await repo.getImage(svc.db, id);
    if (!cur) throw notFound(id);
    throw new Conflict(`Image status transition from ${cur.status} to saving is not allowed`);
  }
  let writer: StoreWriter | null = null;
  let location: string | null = null;
  try {
    writer = await svc.store.begin(id);
    const check = await inspectorFor(svc.cfg.inspection, img.disk_format, img.container_format);
    const r = await receive(svc, body, writer, check, room, declared);
    location = await writer.commit();
    const ts = now();
    const ok = await repo.setStatus(svc.db, id, {
      status: 'active', size: r.size, checksum: r.checksum, os_hash_algo: svc.cfg.hashAlgo, os_hash_value: r.hash,
      virtual_size: r.virtualSize, location, staging_size: 0, updated_at: ts,
    }, ['saving']);
    if (!ok) {
      await svc.store.delete(location).catch(() => {});
      throw new Gone(`Image ${id} could not be found after upload. The image may have been deleted during the upload, cleaning up the chunks uploaded.`);
    }
  } catch (err) {
    if (writer) await writer.abort().catch(() => {});
    if (!(err instanceof Gone)) {
      await repo.setStatus(svc.db, id, { status: 'queued', size: null, virtual_size: null, staging_size: 0, updated_at: now() }, ['saving']).catch(() => {});
    }
    throw translate(err);
  }
}

function translate(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code ?? ((err as ImgportError)?.cause as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StorageFull(`Image storage media is full: ${(err as Error).message}`, err);
  return err;
}

async function receive(svc: Service, body: AsyncIterable<Uint8Array>, writer: StoreWriter, check: UploadCheck | null, room: number, declared: number | null): Promise<UploadResult> {
  const sab = new SharedArrayBuffer(SLOT * SLOTS);
  const bytes = new Uint8Array(sab);
  const pending = new Int8Array(SLOTS); // outstanding consumers per slot
  const free: number[] = [];
  for (let i = SLOTS - 1; i >= 0; i--) free.push(i);
  let wake: (() => void) | null = null;
  let failure: unknown = null;
  const release = (slot: number) => {
    if (--pending[slot] === 0) { free.push(slot); const w = wake; wake = null; w?.(); }
  };
  const fail = (e: unknown) => { failure ??= e; const w = wake; wake = null; w?.(); };
  const session = svc.hashes.session(sab, release, fail);
  const waitFree = async () => {
    while (free.length === 0 && failure === null) await new Promise<void>((r) => { wake = r; });
    if (failure !== null) throw failure;
    return free.pop()!;
  };
  let slot: number | null = await waitFree();
  let fill = 0;
  let position = 0;
  let writes = 0; // positional writes in flight (must settle before the file is aborted)
  let writesDone: (() => void) | null = null;
  const dispatch = (s: number, len: number) => {
    pending[s] = session.ways + 1;
    session.push(s, s * SLOT, len);
    writes++;
    writer.writeAt(bytes.subarray(s * SLOT, s * SLOT + len), position)
      .then(() => release(s), fail)
      .finally(() => { if (--writes === 0) writesDone?.(); });
    position += len;
  };
  try {
    let total = 0;
    for await (const chunk of body) {
      if (failure !== null) throw failure;
      total += chunk.byteLength;
      if (total > room) {
        throw total > svc.cfg.imageSizeCap
          ? new LimitExceeded(`The incoming image is too large: more than ${svc.cfg.imageSizeCap} bytes`)
          : new LimitExceeded(`Image exceeds the storage quota: The size of the data ${total} will exceed the limit. ${Math.max(0, room)} bytes remaining.`);
      }
      check?.inspector.push(chunk);
      let off = 0;
      while (off < chunk.byteLength) {
        const n = Math.min(SLOT - fill, chunk.byteLength - off);
        bytes.set(chunk.subarray(off, off + n), slot! * SLOT + fill);
        fill += n; off += n;
        if (fill === SLOT) { const s = slot!; slot = null; dispatch(s, fill); fill = 0; slot = await waitFree(); }
      }
    }
    const last = slot!; slot = null;
    if (fill > 0) dispatch(last, fill); else free.push(last);
    while (free.length < SLOTS && failure === null) await new Promise<void>((r) => { wake = r; });
    if (failure !== null) throw failure;
    if (declared !== null && total !== declared) throw new InvalidArgument(`Image size ${total} does not match the declared Content-Length ${declared}`);
    const [checksum, hash] = await session.finish();
    let virtualSize: number | null = null;
    if (check) {
      const v = check.inspector.finish();
      const why = check.judge(v);
      if (why) throw new InvalidArgument(why);
      virtualSize = v.virtualSize;
    }
    return { size: total, checksum, hash, virtualSize };
  } catch (e) {
    session.abort();
    if (writes > 0) await new Promise<void>((r) => { writesDone = r; });
    throw e;
  }
}

export interface Download { stream: Readable; size: number; start: number; end: number; partial: boolean; checksum: string | null }

/** Resolves the data to send, honouring one `Range`; null when the image has no data (204). */
export async function download(svc: Service, ctx: RequestContext, id: string, range: string | undefined): Promise<{ img: ImageRecord; dl: Download | null }> {
  const { img, member } = await load(svc, ctx, id);
  enforce(ctx, 'download_image', img, member);
  if (img.status === 'deactivated' && !ctx.isAdmin) {
    throw new Forbidden('The requested image has been deactivated. Image data download is forbidden.');
  }
  if (!img.location || (img.status !== 'active' && img.status !== 'deactivated')) return { img, dl: null };
  const size = img.size ?? (await svc.store.size(img.location));
  let start = 0, end = size - 1, partial = false;
  if (range !== undefined) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (!m || (m[1] === '' && m[2] === '')) throw new RangeNotSatisfiable('Requested range not satisfiable');
    if (m[1] === '') { const n = Number(m[2]); start = Math.max(0, size - n); }
    else { start = Number(m[1]); if (m[2] !== '') end = Math.min(Number(m[2]), size - 1); }
    if (start > end || start >= size) throw new RangeNotSatisfiable('Requested range not satisfiable');
    partial = true;
  }
  const stream = size === 0 ? null : await svc.store.read(img.location, { start, end });
  const { Readable: R } = await import('node:stream');
  return { img, dl: { stream: stream ?? R.from([]), size, start, end, partial, checksum: img.checksum } };
}
