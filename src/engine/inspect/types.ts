// Shared shapes of the inspector: options, findings, the verdict, and what a format
// checker implements.
import type { ImageView } from './view.js';

export interface InspectOptions {
  /** Default 4 TiB; larger → unsafe 'virtual-size-too-large'. */
  maxVirtualSize?: number;
  /** Default false. */
  allowBackingFile?: boolean;
  /** Default false. */
  allowDataFile?: boolean;
  /** Default ['monolithicSparse', 'streamOptimized']. */
  allowedVmdkCreateTypes?: string[];
  /** Glance disk_format name; a mismatch → unsafe 'format-mismatch'. */
  expectedFormat?: string;
}

export interface Finding { code: string; message: string; unsafe: boolean; offset?: number }

export interface InspectVerdict {
  safe: boolean;
  /** Glance disk_format spelling ('raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi', 'iso', 'qcow', 'gzip', ...). */
  format: string;
  subformat?: string;
  virtualSize: number | null;
  actualSize: number;
  clusterSize?: number;
  backingFile?: string;
  dataFile?: string;
  findings: Finding[];
}

export interface ResolvedOptions {
  maxVirtualSize: number;
  allowBackingFile: boolean;
  allowDataFile: boolean;
  allowedVmdkCreateTypes: string[];
  expectedFormat?: string;
}

export const TiB = 1024 ** 4;

export function resolveOptions(o: InspectOptions = {}): ResolvedOptions {
  return {
    maxVirtualSize: o.maxVirtualSize ?? 4 * TiB,
    allowBackingFile: o.allowBackingFile ?? false,
    allowDataFile: o.allowDataFile ?? false,
    allowedVmdkCreateTypes: o.allowedVmdkCreateTypes ?? ['monolithicSparse', 'streamOptimized'],
    expectedFormat: o.expectedFormat,
  };
}

/** The verdict under construction, handed to one format checker. */
export class Report {
  format = 'raw';
  subformat?: string;
  virtualSize: number | null = null;
  clusterSize?: number;
  backingFile?: string;
  dataFile?: string;
  readonly findings: Finding[] = [];

  constructor(readonly opts: ResolvedOptions) {}

  add(code: string, message: string, unsafe: boolean, offset?: number): void {
    // One finding per code and message is enough; fuzzed tables could otherwise repeat one a million times.
    if (this.findings.length >= 64) return;
    if (this.findings.some((f) => f.code === code && f.message === message)) return;
    this.findings.push(offset === undefined ? { code, message, unsafe } : { code, message, unsafe, offset });
  }
  unsafe(code: string, message: string, offset?: number): void { this.add(code, message, true, offset); }
  info(code: string, message: string, offset?: number): void { this.add(code, message, false, offset); }

  /** Records the virtual size and applies the size cap. */
  setVirtualSize(n: number): void {
    this.virtualSize = n;
    if (n > this.opts.maxVirtualSize) {
      this.unsafe('virtual-size-too-large', `virtual size ${n >= Number.MAX_SAFE_INTEGER ? '>= 2^53' : n} bytes exceeds the limit of ${this.opts.maxVirtualSize}`);
    }
  }
  /** A structure [off, off+len) the format needs must lie inside the file. */
  within(v: ImageView, what: string, off: number, len: number): boolean {
    if (off + len > v.size || off >= Number.MAX_SAFE_INTEGER || len >= Number.MAX_SAFE_INTEGER) {
      this.unsafe('table-outside-file', `${what} at offset ${off >= Number.MAX_SAFE_INTEGER ? '>= 2^53' : off}, ${len} bytes, lies beyond the end of the ${v.size}-byte file`, off < Number.MAX_SAFE_INTEGER ? off : undefined);
      return false;
    }
    return true;
  }
}

/** One format's detector and checker. */
export interface FormatChecker {
  /** Glance-style format name reported when this checker wins. */
  readonly name: string;
  /** Cheap content test (magic bytes) on the view. */
  match(v: ImageView): boolean;
  /** How many leading bytes this format's checks want, judged from `head` alone (see need.ts). */
  need?(head: Uint8Array): number;
  /** Fills the report: subformat, sizes, names, findings. */
  inspect(v: ImageView, r: Report): void;
}
