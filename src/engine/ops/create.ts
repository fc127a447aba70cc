// `create`: a new empty image (optionally on top of a backing file).
import fs from 'node:fs/promises';
import type { FileAccessPolicy } from '../policy.js';
import { formatByName, openImage } from '../block/open.js';
import path from 'node:path';
import { FileSink } from '../io/file.js';
import { InvalidArgument } from '../errors.js';

export interface CreateOptions {
  file: string;
  format: string;
  /** Bytes; may be omitted with a backing file (its size is used). */
  size?: number;
  options?: Record<string, string>;
  backingFile?: string;
  backingFormat?: string;
  policy?: FileAccessPolicy;
}

/** Checks -o keys against the driver's createOptions before anything is written. */
export function validateCreateOptions(format: string, options: Record<string, string>, file?: string): void {
  const driver = formatByName(format, file);
  const known = new Set((driver.createOptions ?? []).map((o) => o.name));
  for (const [k, v] of Object.entries(options)) {
    if (!known.has(k)) {
      throw new InvalidArgument(`format '${format}' has no option '${k}'${known.size ? ` (options: ${[...known].join(', ')})` : ''}`, { file });
    }
    const spec = driver.createOptions!.find((o) => o.name === k)!;
    if (spec.type === 'enum' && spec.values && !spec.values.includes(v)) {
      throw new InvalidArgument(`invalid value '${v}' for option '${k}' (one of: ${spec.values.join(', ')})`, { file });
    }
  }
}

export async function createImage(o: CreateOptions): Promise<{ size: number }> {
  const driver = formatByName(o.format, o.file);
  if (!driver.create) throw new InvalidArgument(`format '${o.format}' cannot be created`, { file: o.file });
  const options = o.options ?? {};
  validateCreateOptions(o.format, options, o.file);
  let size = o.size;
  let backingFormat = o.backingFormat;
  if (o.backingFile !== undefined) {
    // Named relative to the new image, like qemu-img. It comes from the caller, not from an
    // untrusted image, so any path is fine; it is opened only when its size or format is needed.
    if (size === undefined || backingFormat === undefined) {
      const resolved = path.isAbsolute(o.backingFile) ? o.backingFile : path.join(path.dirname(o.file), o.backingFile);
      const back = await openImage(resolved, { format: backingFormat, openBacking: false, policy: o.policy });
      size ??= back.virtualSize;
      backingFormat ??= back.format;
      await back.close();
    }
  } else if (o.backingFormat !== undefined) {
    throw new InvalidArgument('a backing format (-F) needs a backing file (-b)', { file: o.file });
  }
  if (size === undefined) throw new InvalidArgument('image size is missing', { file: o.file });
  if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgument(`invalid image size ${size}`, { file: o.file });
  const sink = await FileSink.create(o.file);
  try {
    const w = await driver.create({ sink, virtualSize: size, options, backingFile: o.backingFile, backingFormat });
    try {
      await w.finish();
    } catch (err) {
      await w.abort().catch(() => {});
      throw err;
    }
    await sink.close();
  } catch (err) {
    await sink.close().catch(() => {});
    await fs.unlink(o.file).catch(() => {});
    throw err;
  }
  return { size };
}
