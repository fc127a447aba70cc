// --import URL: create one Glance v2 image per converted disk with the v2v properties,
// then upload its data (POST /v2/images, PUT /v2/images/{id}/file). Plain fetch; the
// token, when given, goes in X-Auth-Token as Glance expects.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { Readable } from 'node:stream';
import { IoError, InvalidArgument, ioError } from '../engine/errors.js';
import type { GlanceDiskImage, GlanceDocument } from './glance-properties.js';

export interface ImportOptions {
  token?: string;
  /** Called before each upload: (image name, bytes). */
  onImage?: (name: string, bytes: number) => void;
}

export interface ImportedImage { id: string; name: string; file: string; bytes: number }

/** Accepts http://host:9292, http://host:9292/, http://host:9292/v2 → base ending in /v2. */
export function glanceBase(url: string): string {
  let u: URL;
  try { u = new URL(url); } catch { throw new InvalidArgument(`--import: '${url}' is not a URL`); }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgument(`--import: only http and https URLs are supported, not ${u.protocol}`);
  const p = u.pathname.replace(/\/+$/, '');
  u.pathname = /\/v2$/.test(p) ? p : `${p}/v2`;
  return u.toString().replace(/\/+$/, '');
}

/** The body of POST /v2/images: the core fields plus the properties, all top-level as Glance v2 wants. */
export function createBody(img: GlanceDiskImage): Record<string, unknown> {
  return {
    name: img.name,
    disk_format: img.disk_format,
    container_format: img.container_format,
    min_disk: img.min_disk,
    min_ram: img.min_ram,
    ...img.properties,
  };
}

async function failure(res: Response, what: string, url: string): Promise<IoError> {
  const body = (await res.text().catch(() => '')).slice(0, 300).replace(/\s+/g, ' ');
  return new IoError(`${what}: HTTP ${res.status} ${res.statusText}${body ? ` — ${body}` : ''}`, { file: url });
}

export async function importToGlance(url: string, doc: GlanceDocument, opts: ImportOptions = {}): Promise<ImportedImage[]> {
  const base = glanceBase(url);
  const auth: Record<string, string> = opts.token ? { 'X-Auth-Token': opts.token } : {};
  const done: ImportedImage[] = [];
  for (const img of doc.images) {
    let bytes: number;
    try { bytes = (await fsp.stat(img.file)).size; } catch (err) { throw ioError(err, img.file, 'cannot upload'); }
    let res: Response;
    try {
      res = await fetch(`${base}/images`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(createBody(img)),
      });
    } catch (err) {
      throw new IoError(`cannot reach the image service: ${(err as Error).message}`, { file: `${base}/images`, cause: err });
    }
    if (res.status !== 201 && res.status !== 200) throw await failure(res, `creating image ${img.name}`, `${base}/images`);
    const created = (await res.json().catch(() => ({}))) as { id?: string };
    if (!created.id) throw new IoError(`creating image ${img.name}: the response has no image id`, { file: `${base}/images` });
    opts.onImage?.(img.name, bytes);
    const fileUrl = `${base}/images/${encodeURIComponent(created.id)}/file`;
    let up: Response;
    try {
      up = await fetch(fileUrl, {
        method: 'PUT',
        headers: { ...auth, 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes) },
        body: Readable.toWeb(fs.createReadStream(img.file)) as unknown as BodyInit,
        duplex: 'half',
      } as RequestInit & { duplex: 'half' });
    } catch (err) {
      await deleteQuietly(`${base}/images/${encodeURIComponent(created.id)}`, auth);
      throw new IoError(`uploading ${img.file}: ${(err as Error).message}`, { file: fileUrl, cause: err });
    }
    if (up.status !== 204 && up.status !== 200 && up.status !== 201) {
      const e = await failure(up, `uploading ${img.file}`, fileUrl);
      // Do not leave an empty "queued" image behind.
      await deleteQuietly(`${base}/images/${encodeURIComponent(created.id)}`, auth);
      throw e;
    }
    done.push({ id: created.id, name: img.name, file: img.file, bytes });
  }
  return done;
}

async function deleteQuietly(url: string, auth: Record<string, string>): Promise<void> {
  try { await fetch(url, { method: 'DELETE', headers: auth }); } catch { /* best effort */ }
}
