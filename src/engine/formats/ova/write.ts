// Writing an OVA from any BlockDevice: descriptor, streamOptimized VMDK and manifest in a
// ustar archive, in that order, in one pass into the target file. The VMDK is streamed
// straight into its tar member; its header's size field is patched once the disk is
// done, and the descriptor's size attributes are filled in place (the descriptor was
// written with room for the largest numbers, the rest is trailing whitespace).

import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs/promises';
import type { BlockDevice } from '../../block/device.js';
import type { ByteSink } from '../../io/source.js';
import { FileSink } from '../../io/file.js';
import { InvalidArgument, IoError } from '../../errors.js';
import { tarHeader } from './tar.js';
import { buildEnvelope, type EnvelopeSpec } from './ovf.js';

export interface WriteOvaOptions {
  source: BlockDevice;
  /** Target .ova path. */
  target: string;
  /** VirtualSystem name; also the base of member names. */
  name: string;
  hash?: 'sha1' | 'sha256';
  /** A complete <VirtualHardwareSection> element to use instead of the default one. */
  virtualHardwareXml?: string;
  osId?: number;
  cpus?: number;
  memoryMiB?: number;
  /** Extra VMDK options (adapter_type, hwversion, compression_level). */
  vmdkOptions?: Record<string, string>;
  onProgress?: (done: number, total: number) => void;
}

export interface WriteOvaResult { ovf: string; disk: string; manifest: string; diskSize: number; size: number }

const BLOCK = 512;
const pad = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/** A sink at a fixed offset of the target file that hashes what goes through it, in order. */
class MemberSink implements ByteSink {
  readonly seekable = false;
  written = 0;
  constructor(readonly name: string, private file: FileSink, private base: number, private hash: Hash) {}
  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (offset !== this.written) throw new IoError(`OVA member written out of order (${offset}, expected ${this.written})`, { file: this.name });
    await this.file.write(buf, this.base + offset);
    this.hash.update(buf);
    this.written += buf.length;
  }
  async sync(): Promise<void> {}
  async close(): Promise<void> {}
}

export async function writeOva(o: WriteOvaOptions): Promise<WriteOvaResult> {
  const algo = o.hash ?? 'sha256';
  if (algo !== 'sha1' && algo !== 'sha256') throw new InvalidArgument(`OVA manifest hash must be sha1 or sha256, not '${String(algo)}'`);
  // Member names stay short enough for a plain ustar name field.
  const base = o.name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '').slice(0, 80) || 'vm';
  const ovfName = `${base}.ovf`;
  const diskName = `${base}-disk1.vmdk`;
  const mfName = `${base}.mf`;
  // Room for the largest sizes; the final text is padded back to this length.
  const spec: EnvelopeSpec = {
    name: o.name, diskFile: diskName, fileSize: '9'.repeat(16), populatedSize: '9'.repeat(16), capacity: o.source.virtualSize,
    virtualHardwareXml: o.virtualHardwareXml, osId: o.osId, cpus: o.cpus, memoryMiB: o.memoryMiB,
  };
  const ovfLen = Buffer.byteLength(buildEnvelope(spec));
  const file = await FileSink.create(o.target);
  try {
    // 1. descriptor member, placeholder text (rewritten below, same length)
    await file.write(tarHeader(ovfName, ovfLen), 0);
    const diskHeaderAt = BLOCK + pad(ovfLen);
    // 2. the VMDK streamed into its member
    const diskHash = createHash(algo);
    const sink = new MemberSink(`${o.target}/${diskName}`, file, diskHeaderAt + BLOCK, diskHash);
    const { convertDevice } = await import('../../convert/index.js');
    const { dataBytes } = await convertDevice(o.source, sink, {
      format: 'vmdk', options: { ...(o.vmdkOptions ?? {}), subformat: 'streamOptimized' }, onProgress: o.onProgress,
    });
    const diskSize = sink.written;
    await file.write(tarHeader(diskName, diskSize), diskHeaderAt);
    const diskEnd = diskHeaderAt + BLOCK + diskSize;
    const diskPad = pad(diskSize) - diskSize;
    if (diskPad > 0) await file.write(new Uint8Array(diskPad), diskEnd);
    // 3. the real descriptor, padded with whitespace after the root element
    const ovfText = buildEnvelope({ ...spec, fileSize: String(diskSize), populatedSize: String(dataBytes) });
    const ovfBytes = Buffer.alloc(ovfLen, 0x20);
    ovfBytes.write(ovfText);
    ovfBytes[ovfLen - 1] = 0x0a;
    await file.write(ovfBytes, BLOCK);
    // 4. manifest, then the end-of-archive blocks
    const tag = algo.toUpperCase();
    const mf = Buffer.from(`${tag}(${ovfName})= ${createHash(algo).update(ovfBytes).digest('hex')}\n${tag}(${diskName})= ${diskHash.digest('hex')}\n`);
    let at = diskEnd + diskPad;
    await file.write(tarHeader(mfName, mf.length), at);
    at += BLOCK;
    const mfBlock = new Uint8Array(pad(mf.length));
    mfBlock.set(mf);
    await file.write(mfBlock, at);
    at += mfBlock.length;
    await file.write(new Uint8Array(2 * BLOCK), at);
    at += 2 * BLOCK;
    await file.truncate(at);
    await file.sync();
    await file.close();
    return { ovf: ovfName, disk: diskName, manifest: mfName, diskSize, size: at };
  } catch (err) {
    await file.close().catch(() => {});
    await fs.unlink(o.target).catch(() => {});
    throw err;
  }
}

