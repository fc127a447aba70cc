// The one place the service talks to the engine's stream inspector
// (src/engine/inspect/index.ts: StreamInspector/InspectVerdict). Until that module is
// available this falls back to a small header sniffer with the same shape, so the
// upload path and its tests do not change when the engine lands.
import type { ServiceConfig } from '../config.js';

export interface InspectOptions { maxVirtualSize?: number; allowBackingFile?: boolean; allowDataFile?: boolean; allowedVmdkCreateTypes?: string[]; expectedFormat?: string }
export interface Finding { code: string; message: string; unsafe: boolean; offset?: number }
export interface InspectVerdict { safe: boolean; format: string; subformat?: string; virtualSize: number | null; actualSize: number; clusterSize?: number; backingFile?: string; dataFile?: string; findings: Finding[] }
export interface Inspector { push(chunk: Uint8Array): void; finish(): InspectVerdict }
type InspectorCtor = new (opts?: InspectOptions) => Inspector;

/** Disk formats Glance inspects (others, and non-bare containers, are stored as-is). */
const INSPECTED = new Set(['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi', 'iso']);

let engineCtor: InspectorCtor | null | undefined;

async function loadEngine(): Promise<InspectorCtor | null> {
  if (engineCtor !== undefined) return engineCtor;
  const mod = '../../engine/inspect/index.js';
  try {
    const m = (await import(mod)) as { StreamInspector?: InspectorCtor };
    engineCtor = typeof m.StreamInspector === 'function' ? m.StreamInspector : null;
  } catch {
    engineCtor = null;
  }
  return engineCtor;
}

export interface UploadCheck {
  inspector: Inspector;
  /** Throws nothing: returns the reason to refuse the upload, or null to accept it. */
  judge(verdict: InspectVerdict): string | null;
}

/** An inspector for an upload of `diskFormat`/`containerFormat`, or null when not inspected. */
export async function inspectorFor(cfg: ServiceConfig['inspection'], diskFormat: string | null, containerFormat: string | null): Promise<UploadCheck | null> {
  if (!cfg.enabled || !diskFormat || !INSPECTED.has(diskFormat) || containerFormat !== 'bare') return null;
  const opts: InspectOptions = {
    maxVirtualSize: cfg.maxVirtualSize, allowBackingFile: cfg.allowBackingFile, allowDataFile: cfg.allowDataFile, expectedFormat: diskFormat,
  };
  const Ctor = (await loadEngine()) ?? SniffInspector;
  const inspector = new Ctor(opts);
  return {
    inspector,
    judge(v) {
      const rawLike = ['raw', 'ami', 'ari', 'aki'].includes(diskFormat);
      const mismatch = v.findings.some((f) => f.code === 'format-mismatch') || (rawLike ? v.format !== 'raw' && !(v.format === 'vhd' && v.subformat === 'fixed') : v.format !== diskFormat);
      if (mismatch && cfg.requireFormatMatch) return `Image format ${v.format} does not match disk_format ${diskFormat}`;
      if (!v.safe) {
        const why = v.findings.filter((f) => f.unsafe && f.code !== 'format-mismatch').map((f) => f.message).join('; ') || 'refused by the image inspector';
        return `Image is not safe: ${why}`;
      }
      return null;
    },
  };
}

// ---- fallback: header sniffing ------------------------------------------------------

const HEAD = 64 * 1024 + 8; // enough for ISO's volume descriptor at 32769 and VDI/VHDX headers

export class SniffInspector implements Inspector {
  private head = new Uint8Array(HEAD);
  private headLen = 0;
  private tail = new Uint8Array(512);
  private total = 0;
  constructor(private readonly opts: InspectOptions = {}) {}

  push(chunk: Uint8Array): void {
    if (this.headLen < HEAD) {
      const n = Math.min(HEAD - this.headLen, chunk.byteLength);
      this.head.set(chunk.subarray(0, n), this.headLen);
      this.headLen += n;
    }
    // Keep the last 512 bytes (VHD's footer).
    if (chunk.byteLength >= 512) this.tail.set(chunk.subarray(chunk.byteLength - 512));
    else { this.tail.copyWithin(0, chunk.byteLength); this.tail.set(chunk, 512 - chunk.byteLength); }
    this.total += chunk.byteLength;
  }

  finish(): InspectVerdict {
    const h = this.head.subarray(0, this.headLen);
    const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    const ascii = (off: number, s: string) => h.byteLength >= off + s.length && String.fromCharCode(...h.subarray(off, off + s.length)) === s;
    const findings: Finding[] = [];
    let format = 'raw';
    let virtualSize: number | null = this.total;
    let backingFile: string | undefined;
    if (h.byteLength >= 72 && dv.getUint32(0) === 0x514649fb) {
      format = 'qcow2';
      virtualSize = Number(dv.getBigUint64(24));
      const boff = Number(dv.getBigUint64(8)), blen = dv.getUint32(16);
      if (boff !== 0 && blen !== 0) {
        backingFile = boff + blen <= h.byteLength ? new TextDecoder().decode(h.subarray(boff, boff + blen)) : '(unreadable)';
        if (!this.opts.allowBackingFile) findings.push({ code: 'BACKING_FILE', message: 'qcow2 image has a backing file', unsafe: true, offset: 8 });
      }
    } else if (ascii(0, 'KDMV')) {
      format = 'vmdk';
      virtualSize = Number(dv.getBigUint64(12, true)) * 512;
    } else if (ascii(0, '# Disk DescriptorFile')) {
      format = 'vmdk'; virtualSize = null;
    } else if (ascii(0, 'vhdxfile')) {
      format = 'vhdx'; virtualSize = null;
    } else if (h.byteLength >= 0x48 && dv.getUint32(0x40, true) === 0xbeda107f) {
      format = 'vdi';
      virtualSize = h.byteLength >= 0x178 ? Number(dv.getBigUint64(0x170, true)) : null;
    } else if (ascii(0x8001, 'CD001')) {
      format = 'iso';
    } else if (this.total >= 512 && String.fromCharCode(...this.tail.subarray(0, 8)) === 'conectix') {
      format = 'vhd';
      virtualSize = Number(new DataView(this.tail.buffer).getBigUint64(48));
    }
    if (this.opts.maxVirtualSize !== undefined && virtualSize !== null && virtualSize > this.opts.maxVirtualSize) {
      findings.push({ code: 'VIRTUAL_SIZE', message: `virtual size ${virtualSize} exceeds the limit ${this.opts.maxVirtualSize}`, unsafe: true });
    }
    return { safe: !findings.some((f) => f.unsafe), format, virtualSize, actualSize: this.total, backingFile, findings };
  }
}
