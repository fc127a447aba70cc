// Opening an image: probe the format, open it, and open what it refers to through the
// caller's policy, with loop and depth limits on backing chains.

import fs from 'node:fs/promises';
import path from 'node:path';
import type { BlockDevice, FormatDriver, OpenContext, ProbeInput } from './device.js';
import type { ByteSource } from '../io/source.js';
import { FileSource } from '../io/file.js';
import { formats, findFormat } from '../formats/registry.js';
import { type FileAccessPolicy, sameDirectoryPolicy } from '../policy.js';
import { InvalidArgument, UnsafeImage, ioError } from '../errors.js';

/** qemu allows 16 levels of backing files by default; deeper chains are almost surely loops or attacks. */
export const MAX_CHAIN_DEPTH = 16;

export interface OpenOptions {
  /** Format name; probed when absent. */
  format?: string;
  writable?: boolean;
  /** Open the backing chain (default true). */
  openBacking?: boolean;
  /** Which references may be followed; default: files next to the image only. */
  policy?: FileAccessPolicy;
}

export async function probeSource(src: ByteSource): Promise<ProbeInput> {
  const head = new Uint8Array(Math.min(src.size, 64 * 1024));
  await src.read(head, 0);
  const tail = new Uint8Array(Math.min(src.size, 1024));
  await src.read(tail, src.size - tail.length);
  return { name: src.name, size: src.size, head, tail };
}

/** Picks the format with the highest probe score (raw scores 1 as the fallback). */
export function detectFormat(input: ProbeInput): FormatDriver {
  let best: FormatDriver | undefined;
  let bestScore = 0;
  for (const f of formats) {
    const s = f.probe(input);
    if (s > bestScore) { best = f; bestScore = s; }
  }
  if (!best) throw new InvalidArgument(`cannot detect the image format`, { file: input.name });
  return best;
}

export function formatByName(name: string, file?: string): FormatDriver {
  const f = findFormat(name);
  if (!f) throw new InvalidArgument(`unknown format '${name}' (known: ${formats.map((x) => x.name).join(', ')})`, { file });
  return f;
}

export async function openImage(file: string, opts: OpenOptions = {}): Promise<BlockDevice> {
  return openInChain(file, opts, []);
}

async function openInChain(file: string, opts: OpenOptions, chain: string[]): Promise<BlockDevice> {
  const real = await fs.realpath(file).catch((err) => { throw ioError(err, file, 'cannot open'); });
  if (chain.includes(real)) {
    throw new UnsafeImage(`backing chain loops back to ${file} (${[...chain, real].map((p) => path.basename(p)).join(' -> ')})`, { file });
  }
  if (chain.length >= MAX_CHAIN_DEPTH) {
    throw new UnsafeImage(`backing chain deeper than ${MAX_CHAIN_DEPTH} images`, { file });
  }
  const policy = opts.policy ?? sameDirectoryPolicy();
  const writable = opts.writable ?? false;
  const src = await FileSource.open(file, writable);
  try {
    const driver = opts.format ? formatByName(opts.format, file) : detectFormat(await probeSource(src));
    const nextChain = [...chain, real];
    const ctx: OpenContext = {
      policy,
      writable,
      openBacking: opts.openBacking ?? true,
      // Backing files are opened read-only, like qemu does for convert/info.
      openReference: (reference, fromImage, format, kind) =>
        openInChain(policy.resolve(reference, fromImage, kind), { format, policy, writable: false, openBacking: true }, nextChain),
      openFile: async (reference, fromImage, kind) => FileSource.open(policy.resolve(reference, fromImage, kind), writable),
    };
    return await driver.open(src, ctx);
  } catch (err) {
    await src.close().catch(() => {});
    throw err;
  }
}
