// OVA (a tar holding an OVF descriptor, disks and a manifest) and bare OVF descriptors.
// The archive is read in place: every member is a slice of the OVA, so the disk (usually
// a streamOptimized VMDK) is read by its own driver straight from the tar. hrefs resolve
// only to tar members; for a bare .ovf they go through the caller's FileAccessPolicy.

import { createHash } from 'node:crypto';
import type { BlockDevice, DeviceInfo, Extent, FormatDriver, OpenContext, ProbeInput } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { FileSource } from '../../io/file.js';
import { detectFormat, probeSource } from '../../block/open.js';
import { type FileAccessPolicy, denyAllReferences, sameDirectoryPolicy } from '../../policy.js';
import { CorruptImage, InvalidArgument, NotFound, UnsupportedFeature } from '../../errors.js';
import { SliceSource, type TarMember, firstMemberName, listTar } from './tar.js';
import { MAX_OVF_BYTES, type ManifestEntry, type OvfEnvelope, parseManifest, parseOvf } from './ovf.js';

export { parseOvf, parseManifest, type OvfEnvelope, type OvfDisk, type OvfFile } from './ovf.js';

export interface OvaDisk {
  id: string;
  /** Bytes, from the OVF (capacity × allocation units). */
  capacity: number;
  populatedSize?: number;
  /** OVF format URI (e.g. ...vmdk.html#streamOptimized). */
  format?: string;
  /** The href of the disk file. */
  file: string;
  /** Opens the disk as a BlockDevice (read-only; nothing it names is followed). */
  open(): Promise<BlockDevice>;
}

export interface ManifestCheck { present: boolean; checked: Array<{ file: string; algo: string }> }

export interface OvaHandle {
  /** The OVA or OVF path. */
  name: string;
  envelope: OvfEnvelope;
  ovfMember: string;
  members: TarMember[];
  disks: OvaDisk[];
  /** Hashes every file the manifest lists; CorruptImage naming the file on a mismatch. */
  verifyManifest(): Promise<ManifestCheck>;
  close(): Promise<void>;
}

type Resolver = (href: string) => Promise<ByteSource>;

/** The parsed package over an already open source (OVA tar or bare OVF). */
async function openPackage(src: ByteSource, openSibling: ((href: string) => Promise<ByteSource>) | null): Promise<Omit<OvaHandle, 'close'> & { isTar: boolean }> {
  const file = src.name;
  const head = new Uint8Array(Math.min(512, src.size));
  await src.read(head, 0);
  let members: TarMember[] = [];
  let ovfBytes: Uint8Array;
  let ovfMember: string;
  let resolve: Resolver;
  const isTar = firstMemberName(head) !== null;
  if (isTar) {
    members = await listTar(src);
    const ovf = members.find((m) => /\.ovf$/i.test(m.name) && m.type === '0');
    if (!ovf) throw new CorruptImage('OVA holds no .ovf descriptor', { file });
    if (ovf.size > MAX_OVF_BYTES) throw new CorruptImage(`OVF descriptor is ${ovf.size} bytes, more than ${MAX_OVF_BYTES}`, { file });
    ovfBytes = new Uint8Array(ovf.size);
    await src.read(ovfBytes, ovf.offset);
    ovfMember = ovf.name;
    resolve = async (href) => {
      // Only members of this tar: never the host file system.
      const want = href.replace(/^\.\//, '');
      const m = members.find((x) => x.name.replace(/^\.\//, '') === want && x.type === '0');
      if (!m) throw new CorruptImage(`OVA has no member '${href}' named by its descriptor`, { file });
      return new SliceSource(`${file}/${m.name}`, src, m.offset, m.size);
    };
  } else {
    if (src.size > MAX_OVF_BYTES) throw new CorruptImage(`OVF descriptor larger than ${MAX_OVF_BYTES} bytes`, { file });
    ovfBytes = new Uint8Array(src.size);
    await src.read(ovfBytes, 0);
    ovfMember = file;
    resolve = async (href) => {
      if (!openSibling) throw new UnsupportedFeature('files next to a bare OVF cannot be opened here', { file });
      return openSibling(href);
    };
  }
  const envelope = parseOvf(ovfBytes, file);
  const disks: OvaDisk[] = envelope.disks.map((d) => {
    const f = envelope.files.find((x) => x.id === d.fileRef);
    if (!f) {
      return { id: d.diskId, capacity: d.capacity, populatedSize: d.populatedSize, format: d.format, file: '', open: () => Promise.reject(new UnsupportedFeature(`OVF disk '${d.diskId}' has no file (an empty disk to be created)`, { file })) };
    }
    return {
      id: d.diskId, capacity: d.capacity, populatedSize: d.populatedSize, format: d.format, file: f.href,
      open: async () => {
        // gzip-compressed members (ovf:compression="gzip") are opened by the registry's gzip driver.
        if (f.compression && f.compression !== 'identity' && f.compression !== 'gzip') {
          throw new UnsupportedFeature(`OVF file '${f.href}' uses ${f.compression} compression`, { file });
        }
        const s = await resolve(f.href);
        return openDisk(s, file, d.diskId, f.href, d.capacity);
      },
    };
  });
  const verifyManifest = async (): Promise<ManifestCheck> => {
    let mfText: string | null = null;
    let mfName = '';
    if (isTar) {
      const mf = members.find((m) => /\.mf$/i.test(m.name) && m.type === '0');
      if (mf) {
        if (mf.size > 1024 * 1024) throw new CorruptImage('OVA manifest is larger than 1 MiB', { file });
        const b = new Uint8Array(mf.size);
        await src.read(b, mf.offset);
        mfText = Buffer.from(b).toString('utf8');
        mfName = mf.name;
      }
    } else if (openSibling) {
      const name = file.replace(/^.*\//, '').replace(/\.ovf$/i, '.mf');
      const s = await openSibling(name).catch((e) => { if (e instanceof NotFound) return null; throw e; });
      if (s) {
        try {
          if (s.size > 1024 * 1024) throw new CorruptImage('OVF manifest is larger than 1 MiB', { file });
          const b = new Uint8Array(s.size);
          await s.read(b, 0);
          mfText = Buffer.from(b).toString('utf8');
          mfName = name;
        } finally { await s.close(); }
      }
    }
    if (mfText === null) return { present: false, checked: [] };
    const entries = parseManifest(mfText, `${file}/${mfName}`);
    const checked: ManifestCheck['checked'] = [];
    for (const e of entries) {
      const s = isTar || e.file !== ovfMember.replace(/^.*\//, '') ? await resolve(e.file).catch((err) => {
        throw err instanceof CorruptImage ? new CorruptImage(`manifest names '${e.file}', which is not in the package`, { file }) : err;
      }) : src;
      try {
        const got = await hashSource(s, e.algo);
        if (got !== e.digest) throw new CorruptImage(`manifest mismatch for '${e.file}': ${e.algo.toUpperCase()} is ${got}, manifest says ${e.digest}`, { file });
      } finally { if (s !== src) await s.close(); }
      checked.push({ file: e.file, algo: e.algo });
    }
    return { present: true, checked };
  };
  return { name: file, envelope, ovfMember, members, disks, verifyManifest, isTar };
}

async function hashSource(s: ByteSource, algo: ManifestEntry['algo']): Promise<string> {
  const h = createHash(algo);
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  for (let off = 0; off < s.size;) {
    const n = await s.read(buf, off);
    if (n === 0) throw new CorruptImage('file ended early while hashing', { file: s.name, offset: off });
    h.update(buf.subarray(0, n));
    off += n;
  }
  return h.digest('hex');
}

async function openDisk(s: ByteSource, pkg: string, diskId: string, href: string, capacity: number): Promise<BlockDevice> {
  try {
    const driver = detectFormat(await probeSource(s));
    if (driver.name === 'ova') throw new CorruptImage(`OVF disk '${href}' is itself an OVA`, { file: pkg });
    const ctx: OpenContext = {
      policy: denyAllReferences,
      writable: false,
      openBacking: true,
      openReference: async (reference, fromImage, _f, kind) => { denyAllReferences.resolve(reference, fromImage, kind); throw new Error('unreachable'); },
      openFile: async (reference, fromImage, kind) => { denyAllReferences.resolve(reference, fromImage, kind); throw new Error('unreachable'); },
    };
    const inner = await driver.open(s, ctx);
    if (inner.virtualSize < capacity) {
      // A disk smaller than its declared capacity would silently lose the tail on import.
      await inner.close();
      throw new CorruptImage(`OVF disk '${diskId}' declares ${capacity} bytes but '${href}' holds ${inner.virtualSize}`, { file: pkg });
    }
    return new PackagedDisk(pkg, inner, href, diskId);
  } catch (err) {
    await s.close().catch(() => {});
    throw err;
  }
}

/** The disk as a device named after the package. */
class PackagedDisk implements BlockDevice {
  readonly format: string;
  readonly virtualSize: number;
  readonly backing = null;
  constructor(readonly name: string, private inner: BlockDevice, private member: string, private diskId: string, private onClose?: () => Promise<void>) {
    this.format = inner.format;
    this.virtualSize = inner.virtualSize;
  }
  read(buf: Uint8Array, offset: number): Promise<void> { return this.inner.read(buf, offset); }
  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    // Host offsets are relative to the member, not the package: drop them.
    for await (const e of this.inner.extents(offset, length)) { const { hostOffset: _h, ...r } = e; yield r; }
  }
  describe(): DeviceInfo {
    const d = this.inner.describe();
    return {
      ...d,
      humanLines: [...(d.humanLines ?? []), `ova member: ${this.member} (disk ${this.diskId})`],
      formatSpecific: d.formatSpecific ? { ...d.formatSpecific, data: { ...d.formatSpecific.data, 'ova-member': this.member } } : undefined,
    };
  }
  async close(): Promise<void> {
    try { await this.inner.close(); } finally { await this.onClose?.(); }
  }
  withOnClose(fn: () => Promise<void>): this { this.onClose = fn; return this; }
}

/** Library API for the migration code: the parsed package and its disks, without opening any yet. */
export async function openOva(path: string, opts: { policy?: FileAccessPolicy } = {}): Promise<OvaHandle> {
  const src = await FileSource.open(path);
  try {
    const policy = opts.policy ?? sameDirectoryPolicy();
    const pkg = await openPackage(src, (href) => FileSource.open(policy.resolve(href, path, 'ovf file')));
    return { ...pkg, close: () => src.close() };
  } catch (err) {
    await src.close().catch(() => {});
    throw err;
  }
}

function probe(input: ProbeInput): number {
  const first = firstMemberName(input.head);
  if (first !== null) return /\.ovf$/i.test(first) ? 100 : 0;
  const text = Buffer.from(input.head.subarray(0, 4096)).toString('latin1');
  return /<(\w+:)?Envelope[\s>]/.test(text) && text.includes('schemas.dmtf.org/ovf/envelope') ? 100 : 0;
}

/** Which disk the ova driver opens: IMGPORT_OVA_DISK (index from 0 or a diskId); default the first. */
function chosenDisk(disks: OvaDisk[], file: string): OvaDisk {
  const want = process.env.IMGPORT_OVA_DISK;
  if (disks.length === 0) throw new CorruptImage('OVF descriptor lists no disks', { file });
  if (want === undefined || want === '') return disks[0]!;
  const byId = disks.find((d) => d.id === want);
  if (byId) return byId;
  const i = Number(want);
  if (Number.isInteger(i) && i >= 0 && i < disks.length) return disks[i]!;
  throw new InvalidArgument(`no disk '${want}' in the OVF (disks: ${disks.map((d) => d.id).join(', ')})`, { file });
}

export const ovaFormat: FormatDriver = {
  name: 'ova',
  description: 'OVA package or OVF descriptor (read-only; opens the first disk, manifest verified)',
  probe,
  async open(source, ctx) {
    if (ctx.writable) throw new UnsupportedFeature('OVA packages are opened read-only', { file: source.name });
    const pkg = await openPackage(source, (href) => ctx.openFile(href, source.name, 'ovf file'));
    // A tampered package is refused before any byte of it is used.
    await pkg.verifyManifest();
    const disk = chosenDisk(pkg.disks, source.name);
    const dev = await disk.open();
    return (dev as PackagedDisk).withOnClose(() => source.close());
  },
};
