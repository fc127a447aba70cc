// Reading an OVA (a tar: the .ovf, an optional .mf manifest, the disks) for v2v.
//
// Interim path: the engine's OVA driver (src/engine/formats/ova, openOva) will own
// reading disks out of the tar and verifying the manifest. Until it lands, this file
// streams the tar with tar-stream: `readOvaDescriptor` finds the .ovf member only, and
// `extractOvaDisks` is the ONE function v2v calls to get the disks as files (extracted
// to a scratch folder, manifest digests checked on the way). Switching to openOva means
// replacing that function's body.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import { CorruptImage, InvalidArgument, ioError } from '../engine/errors.js';
import { MAX_OVF_BYTES } from './ovf.js';

interface TarHeader { name: string; size: number; type: string }
interface TarEntry extends AsyncIterable<Buffer> { header: TarHeader; resume(): void }
interface TarExtract extends NodeJS.WritableStream, AsyncIterable<TarEntry> {}
const tarStream = createRequire(import.meta.url)('tar-stream') as { extract(): TarExtract };

/** Names that are never real members (AppleDouble "._x", directories). */
function ignorable(h: TarHeader): boolean {
  return h.type !== 'file' || path.basename(h.name).startsWith('._');
}

async function* entries(ova: string): AsyncGenerator<TarEntry> {
  let input: fs.ReadStream;
  try {
    await fsp.access(ova, fs.constants.R_OK);
    input = fs.createReadStream(ova);
  } catch (err) {
    throw ioError(err, ova, 'cannot open OVA');
  }
  const ex = tarStream.extract();
  const feeding = pipeline(input, ex).catch((err) => { throw new CorruptImage(`not a readable tar archive: ${(err as Error).message}`, { file: ova, cause: err }); });
  try {
    for await (const e of ex) yield e;
  } catch (err) {
    throw new CorruptImage(`not a readable tar archive: ${(err as Error).message}`, { file: ova, cause: err });
  } finally {
    input.destroy();
    await feeding.catch(() => {});
  }
}

async function drain(e: TarEntry): Promise<void> { for await (const _ of e) { /* skip */ } }

async function readAll(e: TarEntry, max: number, ova: string): Promise<string> {
  if (e.header.size > max) throw new InvalidArgument(`${e.header.name} in the OVA is ${e.header.size} bytes, too large for a descriptor`, { file: ova });
  const chunks: Buffer[] = [];
  for await (const c of e) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

export interface OvaDescriptor { ovfName: string; ovf: string; manifest?: string; manifestName?: string }

/** Finds the one .ovf (and the .mf) inside the tar. */
export async function readOvaDescriptor(ova: string): Promise<OvaDescriptor> {
  const found: Array<{ name: string; text: string }> = [];
  let manifest: { name: string; text: string } | undefined;
  let members = 0;
  for await (const e of entries(ova)) {
    members++;
    const h = e.header;
    if (!ignorable(h) && /\.ovf$/i.test(h.name)) found.push({ name: h.name, text: await readAll(e, MAX_OVF_BYTES, ova) });
    else if (!ignorable(h) && /\.mf$/i.test(h.name)) manifest = { name: h.name, text: await readAll(e, 1024 * 1024, ova) };
    else await drain(e);
  }
  if (members === 0) throw new CorruptImage('not an OVA: the tar archive is empty or not a tar archive', { file: ova });
  if (found.length === 0) throw new CorruptImage('OVA contains no .ovf descriptor', { file: ova });
  if (found.length > 1) throw new CorruptImage(`OVA contains ${found.length} .ovf descriptors (${found.map((f) => f.name).join(', ')}); expected one`, { file: ova });
  return { ovfName: found[0].name, ovf: found[0].text, manifest: manifest?.text, manifestName: manifest?.name };
}

/** `SHA256(name)= hex` / `SHA1(name)= hex` lines → name → { algorithm, hex }. */
export function parseManifest(text: string): Map<string, { algorithm: 'sha1' | 'sha256' | 'sha512'; hex: string }> {
  const out = new Map<string, { algorithm: 'sha1' | 'sha256' | 'sha512'; hex: string }>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^(SHA1|SHA256|SHA512)\s*\((.*)\)\s*=\s*([0-9a-fA-F]+)\s*$/.exec(line.trim());
    if (m) out.set(m[2], { algorithm: m[1].toLowerCase() as 'sha1' | 'sha256' | 'sha512', hex: m[3].toLowerCase() });
  }
  return out;
}

export interface ExtractRequest {
  /** href (as in References) → destination file. */
  files: Map<string, { dest: string; gzip?: boolean }>;
  /** Check digests against the manifest when the OVA has one (default true). */
  verifyManifest?: boolean;
}

/**
 * Writes the named disk members to files, decompressing gzip ones, and checks each
 * member's digest (and the .ovf's) against the manifest. Missing members are an error.
 */
export async function extractOvaDisks(ova: string, req: ExtractRequest): Promise<void> {
  const { manifest, manifestName, ovf, ovfName } = await readOvaDescriptor(ova);
  const sums = manifest && req.verifyManifest !== false ? parseManifest(manifest) : new Map();
  const dirOf = (n: string) => path.posix.dirname(n) === '.' ? '' : path.posix.dirname(n) + '/';
  // Manifest paths are relative to the manifest's own folder.
  const mfDir = manifestName ? dirOf(manifestName) : '';
  const check = (member: string, digestOf: (alg: string) => string) => {
    const rel = member.startsWith(mfDir) ? member.slice(mfDir.length) : member;
    const want = sums.get(rel);
    if (!want) return;
    const got = digestOf(want.algorithm);
    if (got !== want.hex) throw new CorruptImage(`checksum of ${rel} does not match the manifest (${want.algorithm.toUpperCase()} ${got}, manifest says ${want.hex})`, { file: ova });
  };
  check(ovfName, (alg) => crypto.createHash(alg).update(ovf).digest('hex'));

  const ovfDir = dirOf(ovfName);
  const done = new Set<string>();
  for await (const e of entries(ova)) {
    const h = e.header;
    const href = h.name.startsWith(ovfDir) ? h.name.slice(ovfDir.length) : h.name;
    const want = ignorable(h) ? undefined : req.files.get(href);
    if (!want) { await drain(e); continue; }
    const rel = h.name.startsWith(mfDir) ? h.name.slice(mfDir.length) : h.name;
    const alg = sums.get(rel)?.algorithm;
    const hash = alg ? crypto.createHash(alg) : undefined;
    const tap = new Transform({ transform(chunk, _enc, cb) { hash?.update(chunk); cb(null, chunk); } });
    const out = fs.createWriteStream(want.dest);
    try {
      // The digest is of the member as stored (compressed), like the manifest's.
      if (want.gzip) await pipeline(Readable.from(e), tap, zlib.createGunzip(), out);
      else await pipeline(Readable.from(e), tap, out);
    } catch (err) {
      throw new CorruptImage(`cannot extract ${h.name} from the OVA: ${(err as Error).message}`, { file: ova, cause: err });
    }
    if (hash) check(h.name, () => hash.digest('hex'));
    done.add(href);
  }
  for (const href of req.files.keys()) {
    if (!done.has(href)) throw new CorruptImage(`disk file ${href} named by the OVF is not in the OVA`, { file: ova });
  }
}
