// The one interface image stores implement (file today; swift/s3 later). A write is
// a transaction: bytes go to a private temporary object and become visible under the
// returned location only on commit; abort leaves nothing behind.
import type { Readable } from 'node:stream';

export interface StoreWriter {
  /** Writes `data` at byte `position`; several writes may be in flight at once. */
  writeAt(data: Uint8Array, position: number): Promise<void>;
  /** Makes the data durable and visible; returns the location to record. */
  commit(): Promise<string>;
  /** Discards everything written; safe to call more than once and after a failure. */
  abort(): Promise<void>;
}

export interface Store {
  readonly scheme: string;
  /** Prepares the store (creates directories, removes temporaries left by a crash). */
  init(): Promise<void>;
  begin(imageId: string): Promise<StoreWriter>;
  /** A stream of [start, end] inclusive (whole object when omitted). */
  read(location: string, range?: { start: number; end: number }): Promise<Readable>;
  size(location: string): Promise<number>;
  delete(location: string): Promise<void>;
  /** Removes stored objects not in `keep` (orphans of crashed transactions). */
  sweep(keep: Set<string>): Promise<string[]>;
}
