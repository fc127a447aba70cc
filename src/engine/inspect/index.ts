// The format inspector for untrusted uploads: a verdict from the bytes alone, without
// following any reference named inside the image. Used by the image service while an
// upload streams in (StreamInspector) and by `imgport inspect` (inspectFile).
import { FileSource } from '../io/file.js';
import { InvalidArgument, UnsafeImage } from '../errors.js';
import { analyze, computeNeed } from './detect.js';
import { type Finding, type InspectOptions, type InspectVerdict, type ResolvedOptions, resolveOptions, Report } from './types.js';
import { type ImageView, HEAD_MIN, TAIL_BYTES } from './view.js';

export type { Finding, InspectOptions, InspectVerdict } from './types.js';

/** Glance disk_format names and the engine (qemu) format that reads them. */
export const GLANCE_DISK_FORMATS: Readonly<Record<string, string>> = {
  raw: 'raw', qcow2: 'qcow2', vmdk: 'vmdk', vhd: 'vpc', vhdx: 'vhdx', vdi: 'vdi', iso: 'iso',
  ami: 'raw', ari: 'raw', aki: 'raw', ploop: 'parallels',
};

/** Engine format name for a Glance disk_format ('vhd' → 'vpc', 'ami' → 'raw'); undefined when unknown. */
export function glanceToEngineFormat(diskFormat: string): string | undefined {
  return GLANCE_DISK_FORMATS[diskFormat];
}

/** Glance spelling of an engine format name ('vpc' → 'vhd', 'parallels' → 'ploop'); other names unchanged. */
export function engineToGlanceFormat(format: string): string {
  if (format === 'vpc') return 'vhd';
  if (format === 'parallels') return 'ploop';
  return format;
}

/** Every finding code the inspector emits, with what it means (unsafe unless noted). */
export const FINDING_CODES: Readonly<Record<string, string>> = {
  'backing-file': 'the image has a backing file or parent (qcow2, qcow, QED, VMDK parentFileNameHint), or an allowed one with a dangerous name',
  'data-file': 'qcow2 external data file (incompatible bit 2 or a data-file extension)',
  'vmdk-extent': 'the VMDK names an extent other than its own data (flat/sparse extents of other files, paths, zero-capacity redirect)',
  'vmdk-create-type': 'VMDK createType outside the allow-list, or missing',
  'differencing': 'VHD/VHDX/VDI differencing image or parent locator',
  'virtual-size-too-large': 'virtual size above maxVirtualSize',
  'table-outside-file': 'a table or data block the headers name lies beyond the end of the file',
  'size-mismatch': 'the headers claim more data than the tables or the file can hold',
  'unknown-incompatible-features': 'feature bits, regions or metadata items this inspector does not know and a reader must understand',
  'corrupt': 'qcow2 corrupt bit set',
  'invalid-header': 'a header field outside what any reader accepts',
  'bad-magic': 'a signature the format requires is missing',
  'bad-checksum': 'a header checksum does not match',
  'truncated': 'a structure the format requires at the end of the file is missing',
  'header-cut-short': 'the file ends inside the header',
  'format-mismatch': 'the content is not the declared disk format',
  'gpt-mbr': 'a raw image whose MBR/GPT partition table has absurd fields',
  'polyglot': 'the bytes are valid as more than one format',
  'compressed': 'a compressed stream: its content cannot be judged without decompression',
  'archive': 'a tar/OVA archive: its members must be inspected one by one',
  'unsupported-format': 'a format qemu would open by content that is not accepted (QED, LUKS, bochs, cloop, DMG)',
  'internal-error': 'the inspector failed on this input (a bug); refused to be safe',
  // Informational (unsafe: false):
  'dirty': 'qcow2 dirty bit (refcounts may need repair)',
  'encrypted': 'the image is encrypted',
  'unknown-extension': 'an unknown qcow2 header extension (ignored, as qemu does)',
  'backing-format': 'a backing format recorded without a backing file',
  'log-replay': 'the VHDX log needs replaying',
  'iso-short': 'the ISO volume descriptor claims more blocks than the file holds',
  'no-extents': 'a VMDK descriptor without extents',
  'vhd-fixed-as-raw': 'a fixed VHD declared as raw',
};

/** Throws UnsafeImage naming the unsafe findings of a verdict; returns it when safe. */
export function assertSafe(verdict: InspectVerdict, file?: string): InspectVerdict {
  if (verdict.safe) return verdict;
  const reasons = verdict.findings.filter((f) => f.unsafe).map((f) => `${f.code}: ${f.message}`);
  throw new UnsafeImage(`refused (${verdict.format}): ${reasons.join('; ')}`, { file });
}

/** Formats the inspector may report besides the Glance ones. */
const OTHER_FORMATS = ['qcow', 'gzip', 'xz', 'bzip2', 'zstd', 'ova', 'qed', 'luks', 'bochs', 'cloop', 'dmg'];

function checkOptions(o: InspectOptions): ResolvedOptions {
  const r = resolveOptions(o);
  if (!(r.maxVirtualSize >= 0)) throw new InvalidArgument(`maxVirtualSize must be a non-negative number`);
  if (r.expectedFormat !== undefined && !(r.expectedFormat in GLANCE_DISK_FORMATS) && !OTHER_FORMATS.includes(r.expectedFormat)) {
    throw new InvalidArgument(`unknown disk format '${r.expectedFormat}' (known: ${Object.keys(GLANCE_DISK_FORMATS).join(', ')})`);
  }
  return r;
}

function verdict(v: ImageView, opts: ResolvedOptions): InspectVerdict {
  const r: Report = analyze(v, opts);
  const exp = opts.expectedFormat;
  if (exp !== undefined) {
    const rawLike = exp === 'raw' || exp === 'ami' || exp === 'ari' || exp === 'aki';
    if (rawLike && r.format === 'vhd' && r.subformat === 'fixed') {
      r.info('vhd-fixed-as-raw', 'a fixed VHD read as raw: the guest sees its 512-byte footer as the last sector');
    } else if (!(rawLike ? r.format === 'raw' : r.format === exp)) {
      r.unsafe('format-mismatch', `the content is ${r.format}${r.subformat ? ` (${r.subformat})` : ''}, not the declared ${exp}`);
    }
  }
  const findings: Finding[] = r.findings.map((f) => ({ ...f }));
  // Keys in the contract's order, optional ones only when known.
  const out = { safe: !findings.some((f) => f.unsafe), format: r.format } as InspectVerdict;
  if (r.subformat !== undefined) out.subformat = r.subformat;
  out.virtualSize = r.virtualSize;
  out.actualSize = v.size;
  if (r.clusterSize !== undefined) out.clusterSize = r.clusterSize;
  if (r.backingFile !== undefined) out.backingFile = r.backingFile;
  if (r.dataFile !== undefined) out.dataFile = r.dataFile;
  out.findings = findings;
  return out;
}

/**
 * Inspects an upload as it arrives. push() keeps only the head the headers need (at
 * most 16 MiB) and the last 4 KiB; everything else passes through untouched.
 */
export class StreamInspector {
  private readonly opts: ResolvedOptions;
  private head = new Uint8Array(HEAD_MIN);
  private headLen = 0;
  private need: number;
  private readonly ring = new Uint8Array(TAIL_BYTES);
  private ringPos = 0;
  private total = 0;
  private done = false;

  constructor(opts: InspectOptions = {}) {
    this.opts = checkOptions(opts);
    this.need = computeNeed(new Uint8Array(0));
  }

  push(chunk: Uint8Array): void {
    if (this.done) throw new InvalidArgument('StreamInspector.push after finish');
    const n = chunk.length;
    if (n === 0) return;
    // Head: bytes [0, need) as long as the stream is still inside them.
    let pos = 0;
    while (this.headLen === this.total + pos && this.headLen < this.need && pos < n) {
      const take = Math.min(this.need - this.headLen, n - pos);
      if (this.head.length < this.need) {
        const grown = new Uint8Array(this.need);
        grown.set(this.head.subarray(0, this.headLen));
        this.head = grown;
      }
      this.head.set(chunk.subarray(pos, pos + take), this.headLen);
      this.headLen += take;
      pos += take;
      if (this.headLen === this.need) this.need = Math.max(this.need, computeNeed(this.head.subarray(0, this.headLen)));
    }
    // Tail ring: the last TAIL_BYTES bytes.
    if (n >= TAIL_BYTES) {
      this.ring.set(chunk.subarray(n - TAIL_BYTES));
      this.ringPos = 0;
    } else {
      const first = Math.min(n, TAIL_BYTES - this.ringPos);
      this.ring.set(chunk.subarray(0, first), this.ringPos);
      if (first < n) this.ring.set(chunk.subarray(first), 0);
      this.ringPos = (this.ringPos + n) % TAIL_BYTES;
    }
    this.total += n;
  }

  /** Bytes held for the verdict (head + tail ring): bounded by HEAD_CAP + TAIL_BYTES whatever the input. */
  get retainedBytes(): number { return this.head.length + this.ring.length; }

  finish(): InspectVerdict {
    this.done = true;
    const tlen = Math.min(this.total, TAIL_BYTES);
    const tail = new Uint8Array(tlen);
    // Oldest byte of the last tlen bytes sits at ringPos - tlen (mod TAIL_BYTES).
    const start = (this.ringPos - tlen + TAIL_BYTES) % TAIL_BYTES;
    const first = Math.min(tlen, TAIL_BYTES - start);
    tail.set(this.ring.subarray(start, start + first));
    tail.set(this.ring.subarray(0, tlen - first), first);
    return verdict({ head: this.head.subarray(0, this.headLen), tail, size: this.total }, this.opts);
  }
}

/** Inspects a file: reads its head (as far as the headers need) and its last 4 KiB, nothing else, and opens nothing else. */
export async function inspectFile(path: string, opts: InspectOptions = {}): Promise<InspectVerdict> {
  const o = checkOptions(opts);
  const src = await FileSource.open(path);
  try {
    const size = src.size;
    let head = new Uint8Array(0);
    let need = computeNeed(head);
    while (head.length < Math.min(need, size)) {
      const want = Math.min(need, size);
      const grown = new Uint8Array(want);
      grown.set(head);
      const got = await src.read(grown.subarray(head.length), head.length);
      head = grown.subarray(0, head.length + got);
      if (got === 0) break;
      need = Math.max(need, computeNeed(head));
    }
    const tail = new Uint8Array(Math.min(size, TAIL_BYTES));
    if (tail.length > 0) await src.read(tail, size - tail.length);
    return verdict({ head, tail, size }, o);
  } finally {
    await src.close().catch(() => {});
  }
}
