// qcow2 on-disk constants (docs/interop/qcow2.txt) and the hard caps we validate against.

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
export const V2_HEADER_LENGTH = 72;
export const V3_HEADER_LENGTH = 104;
/** Header length we write for v3: up to compression_type, padded to 8. */
export const V3_HEADER_WRITE_LENGTH = 112;

export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;

// Incompatible feature bits.
export const INCOMPAT_DIRTY = 1 << 0;
export const INCOMPAT_CORRUPT = 1 << 1;
export const INCOMPAT_DATA_FILE = 1 << 2;
export const INCOMPAT_COMPRESSION = 1 << 3;
export const INCOMPAT_EXTL2 = 1 << 4;
export const INCOMPAT_KNOWN = 0x1f;
// Compatible / autoclear bits.
export const COMPAT_LAZY_REFCOUNTS = 1 << 0;
export const AUTOCLEAR_BITMAPS = 1 << 0;
export const AUTOCLEAR_DATA_FILE_RAW = 1 << 1;

// Header extension types.
export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;

// Caps, like qemu's implementation limits.
export const MAX_L1_BYTES = 32 * 1024 * 1024;
export const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
export const MAX_SNAPSHOTS = 65536;
/** Total bytes of the snapshot table we accept (qemu: 1 KiB per snapshot on average). */
export const MAX_SNAPSHOT_TABLE_BYTES = 64 * 1024 * 1024;
export const MAX_BACKING_NAME = 1023;
/** Offsets above this cannot be represented exactly as JavaScript numbers. */
export const MAX_SAFE_OFFSET = Number.MAX_SAFE_INTEGER;

export const TWO32 = 0x100000000;

// Entry flags, in the high 32-bit half of a 64-bit entry.
export const HI_COPIED = 0x80000000;
export const HI_COMPRESSED = 0x40000000;
/** Bits 32..55 of a standard offset (bits 9..55). */
export const HI_OFFSET_MASK = 0x00ffffff;
export const LO_OFFSET_MASK = 0xfffffe00;
/** Reserved bits 56..61 of a standard descriptor (high half). */
export const HI_RESERVED_MASK = 0x3f000000;
