// Byte sources and sinks: the only way formats touch storage. A format never opens a
// file itself; it receives a ByteSource (and, for references such as backing files,
// asks the caller's FileAccessPolicy, see ../policy.ts).

export interface ByteSource {
  /** Name used in error messages (a path, "-", or a URL). */
  readonly name: string;
  /** Total length in bytes. */
  readonly size: number;
  /**
   * Reads up to buf.length bytes at `offset`; returns how many were read (short only at
   * end of source). Never reads past `size`.
   */
  read(buf: Uint8Array, offset: number): Promise<number>;
  /** Host allocation of the source itself (SEEK_DATA/SEEK_HOLE), when the OS can tell. */
  dataRuns?(offset: number, length: number): Promise<Array<{ offset: number; length: number }> | null>;
  /** In-place writes, for sources opened writable (raw images, resize, snapshot ops). */
  write?(buf: Uint8Array, offset: number): Promise<void>;
  /** Sets the length (writable sources only). */
  truncate?(size: number): Promise<void>;
  /** Makes written data durable (writable sources only). */
  sync?(): Promise<void>;
  close(): Promise<void>;
}

export interface ByteSink {
  readonly name: string;
  /** True when writes may go to any offset (a file); false for pipes/stdout. */
  readonly seekable: boolean;
  write(buf: Uint8Array, offset: number): Promise<void>;
  /** Sets the length of the output (extends with a hole, or cuts). Seekable only. */
  truncate?(size: number): Promise<void>;
  /** Deallocates a range so it reads as zeros (punch hole). Seekable only, best effort. */
  discard?(offset: number, length: number): Promise<void>;
  /** Reserves space for a range without writing it (fallocate). Seekable only, may be unsupported. */
  allocate?(offset: number, length: number): Promise<void>;
  /** Makes written data durable. */
  sync(): Promise<void>;
  close(): Promise<void>;
}
