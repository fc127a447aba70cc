// The one block interface every format implements, and the descriptor a format
// folder exports to the registry. Every verb (info, convert, check, compare, map,
// measure, ...) is written once against these types.

import type { ByteSink, ByteSource } from '../io/source.js';
import type { FileAccessPolicy } from '../policy.js';

/**
 * How a guest range is stored in one layer:
 * - data: the layer holds bytes for it (may still be zeros),
 * - zero: the layer says "reads as zeros" (qcow2 zero cluster, hole in a raw file, ...),
 * - unallocated: the layer says nothing; reads fall through to the backing device
 *   (or read zeros when there is none).
 */
export type ExtentKind = 'data' | 'zero' | 'unallocated';

export interface Extent {
  /** Guest offset. */
  offset: number;
  length: number;
  kind: ExtentKind;
  /** Where the data starts in the host file when it is stored there plainly and contiguously (qemu-img map's "offset"). */
  hostOffset?: number;
  /** Data stored compressed (qemu-img map shows no host offset for it). */
  compressed?: boolean;
}

export interface SnapshotInfo {
  id: string;
  name: string;
  vmStateSize: number;
  /** Seconds + nanoseconds since the epoch. */
  dateSec: number;
  dateNsec: number;
  /** Guest clock in nanoseconds. */
  vmClockNsec: number;
  icount?: number;
  virtualSize?: number;
}

/** What `info` reports beyond size and format; keys follow qemu-img's JSON. */
export interface DeviceInfo {
  clusterSize?: number;
  dirty?: boolean;
  encrypted?: boolean;
  backingFilename?: string;
  backingFormat?: string;
  dataFile?: string;
  /** qemu-img's "format-specific": { type, data }. */
  formatSpecific?: { type: string; data: Record<string, unknown> };
  snapshots?: SnapshotInfo[];
  /** Extra lines for the human `info` output, after the common ones. */
  humanLines?: string[];
}

export interface BlockDevice {
  /** Registry name of the format (qemu-img's spelling: raw, qcow2, vmdk, vpc, vhdx, vdi, qcow, iso). */
  readonly format: string;
  /** File name (as given by the user) for messages and reports. */
  readonly name: string;
  readonly virtualSize: number;
  /** The opened backing device, or null when there is none or it was not opened. */
  readonly backing: BlockDevice | null;
  /**
   * Reads guest-visible bytes: this layer's data, the backing device for unallocated
   * ranges, zeros past the backing device's end. offset + buf.length <= virtualSize.
   */
  read(buf: Uint8Array, offset: number): Promise<void>;
  /**
   * This layer's allocation for [offset, offset+length): contiguous, non-overlapping
   * runs in increasing order that exactly cover the range. Adjacent runs of the same
   * kind should be merged (with the same contiguity of hostOffset).
   */
  extents(offset: number, length: number): AsyncIterable<Extent>;
  /** Guest writes, for devices opened writable by formats that support it. */
  write?(buf: Uint8Array, offset: number): Promise<void>;
  describe(): DeviceInfo;
  /** Flushes metadata and data; the device stays open. */
  flush?(): Promise<void>;
  /** Closes this device and its backing chain. */
  close(): Promise<void>;

  // Optional verbs a format may support; ops/ calls them when present.
  resize?(newSize: number, opts: { shrink: boolean; preallocation?: string }): Promise<void>;
  check?(opts: { repair?: 'leaks' | 'all' }): Promise<CheckReport>;
  snapshots?: SnapshotOps;
}

export interface SnapshotOps {
  list(): SnapshotInfo[];
  create(name: string): Promise<void>;
  apply(nameOrId: string): Promise<void>;
  delete(nameOrId: string): Promise<void>;
  /** Opens a snapshot read-only as a device (for reading its contents). */
  open(nameOrId: string): Promise<BlockDevice>;
}

/** Result of a consistency check; keys mirror qemu-img check --output json. */
export interface CheckReport {
  filename: string;
  format: string;
  checkErrors: number;
  corruptions: number;
  leaks: number;
  corruptionsFixed?: number;
  leaksFixed?: number;
  imageEndOffset?: number;
  totalClusters?: number;
  allocatedClusters?: number;
  fragmentedClusters?: number;
  compressedClusters?: number;
  /** Human-readable findings, one per line ("Leaked cluster 5 refcount=1 reference=0"). */
  messages: string[];
}

// ---------------------------------------------------------------------------
// Writing

export interface CreateRequest {
  /** Where the image goes; `seekable` false means a pipe (only streamable formats). */
  sink: ByteSink;
  virtualSize: number;
  /** -o key=value options, already split; the driver validates them against createOptions. */
  options: Record<string, string>;
  /** -c: compress data where the format can. */
  compress?: boolean;
  /** Recorded in the new image; the writer never opens it. */
  backingFile?: string;
  backingFormat?: string;
  /**
   * The data/zero layout that will be written, in guest order, when known before the
   * data arrives (convert knows it; `create` passes none). Lets a writer lay out its
   * metadata up front and stream.
   */
  plan?: Extent[];
  /**
   * Creates a second file next to the target (VMDK -flat / -s001 extents); `name` is a
   * bare file name. Absent when the target cannot have siblings (pipes, object stores).
   */
  createSibling?(name: string): Promise<ByteSink>;
  /** Removes a file made by createSibling (after a failed write). */
  removeSibling?(name: string): Promise<void>;
  /**
   * The backing image opened read-only, when the caller has it: lets a writer record what
   * identifies its parent (VMDK's parentCID must equal the parent's CID, or qemu refuses
   * to read the child).
   */
  backingDevice?: BlockDevice;
}

/**
 * A writer consumes guest data in increasing offset order. Buffers may be reused by
 * the caller once the returned promise resolves. `finish` writes the remaining
 * metadata; `abort` leaves nothing a reader could mistake for a good image.
 */
export interface ImageWriter {
  writeData(offset: number, data: Uint8Array): Promise<void>;
  /** Declares a range to read as zeros explicitly (for formats with zero markers). */
  writeZero?(offset: number, length: number): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

export interface CreateOptionSpec {
  name: string;
  type: 'size' | 'number' | 'bool' | 'string' | 'enum';
  values?: string[];
  help: string;
  default?: string;
}

// ---------------------------------------------------------------------------
// The format descriptor

export interface ProbeInput {
  name: string;
  size: number;
  /** The first up to 64 KiB. */
  head: Uint8Array;
  /** The last up to 1 KiB (VHD footers live there). */
  tail: Uint8Array;
}

export interface OpenContext {
  policy: FileAccessPolicy;
  writable: boolean;
  /** When false, the backing chain is recorded but not opened. */
  openBacking: boolean;
  /**
   * Opens an image named inside this one (backing file, parent): resolves it through
   * the policy, detects loops and depth, and probes the format unless given. Formats
   * call this instead of opening files, so no format imports another.
   */
  openReference(reference: string, fromImage: string, format: string | undefined, kind: 'backing file' | 'parent'): Promise<BlockDevice>;
  /** Opens a sibling file (VMDK extent, external data file) as a byte source, via the policy. */
  openFile(reference: string, fromImage: string, kind: 'data file' | 'extent' | 'ovf file'): Promise<ByteSource>;
}

export interface FormatDriver {
  /** qemu-img's name for the format. */
  readonly name: string;
  readonly description: string;
  /** 0 = not this format; higher wins. raw is the fallback at 1. */
  probe(input: ProbeInput): number;
  /** Opens an image; the device owns `source` from then on and closes it in close(). */
  open(source: ByteSource, ctx: OpenContext): Promise<BlockDevice>;
  create?(req: CreateRequest): Promise<ImageWriter>;
  readonly createOptions?: CreateOptionSpec[];
  /** True when create() can write to a non-seekable sink. */
  readonly streamable?: boolean;
  /**
   * The output file size for `measure`: required bytes for a given allocation, and for
   * a fully allocated image. Formats without it get raw's answer.
   */
  measure?(virtualSize: number, allocatedBytes: number, options: Record<string, string>): { required: number; fullyAllocated: number };
  /**
   * The granularity at which the format allocates guest data with these options (qcow2's
   * cluster size). `measure` rounds each allocated run out to it, as qemu-img does, before
   * passing allocatedBytes. Absent: bytes are counted exactly.
   */
  allocationUnit?(options: Record<string, string>): number;
}
