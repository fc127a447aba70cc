// One error hierarchy for the whole project. Every error a user can cause is one of
// these; anything else escaping is a bug. `code` is stable for scripts; the CLI maps
// codes to exit statuses in src/cli/exit.ts and the service maps them to HTTP statuses
// in one place.

export type ErrorCode =
  | 'CORRUPT_IMAGE'       // the bytes contradict the format's rules
  | 'UNSUPPORTED'         // valid, but uses something we do not implement
  | 'UNSAFE_IMAGE'        // refused by policy (backing file outside allowed dir, ...)
  | 'INVALID_ARGUMENT'    // bad command line / API input
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'FORBIDDEN'
  | 'IO_ERROR'            // the OS said no (ENOSPC, EACCES, ...)
  | 'IMAGES_DIFFER';      // compare found a difference (not a failure of the tool)

export class ImgportError extends Error {
  readonly code: ErrorCode;
  /** The file the problem is in, when there is one. */
  readonly file?: string;
  /** Byte offset in that file the problem was found at, when known. */
  readonly offset?: number;

  constructor(code: ErrorCode, message: string, opts: { file?: string; offset?: number; cause?: unknown } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.file = opts.file;
    this.offset = opts.offset;
  }

  /** "file: message (at offset N)" — the form the CLI prints. */
  describe(): string {
    const where = this.offset !== undefined ? ` (at offset ${this.offset})` : '';
    return this.file ? `${this.file}: ${this.message}${where}` : `${this.message}${where}`;
  }
}

type Opts = { file?: string; offset?: number; cause?: unknown };

export class CorruptImage extends ImgportError {
  constructor(message: string, opts: Opts = {}) { super('CORRUPT_IMAGE', message, opts); }
}
export class UnsupportedFeature extends ImgportError {
  constructor(message: string, opts: Opts = {}) { super('UNSUPPORTED', message, opts); }
}
export class UnsafeImage extends ImgportError {
  constructor(message: string, opts: Opts = {}) { super('UNSAFE_IMAGE', message, opts); }
}
export class InvalidArgument extends ImgportError {
  constructor(message: string, opts: Opts = {}) { super('INVALID_ARGUMENT', message, opts); }
}
export class NotFound extends ImgportError {
  constructor(message: string, opts: Opts = {}) { super('NOT_FOUND', message, opts); }
}
export class Conflict extends ImgportError {
  constructor(message: string, opts: Opts = {}) { super('CONFLICT', message, opts); }
}
export class Forbidden extends ImgportError {
  constructor(message: string, opts: Opts = {}) { super('FORBIDDEN', message, opts); }
}
export class IoError extends ImgportError {
  constructor(message: string, opts: Opts = {}) { super('IO_ERROR', message, opts); }
}

/** Wraps an OS error (errno) from fs calls into an IoError naming the file. */
export function ioError(err: unknown, file: string, what: string): ImgportError {
  if (err instanceof ImgportError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return new NotFound(`${what}: no such file`, { file, cause: err });
  return new IoError(`${what}: ${e?.code ?? ''} ${e?.message ?? String(err)}`.trim(), { file, cause: err });
}

/** Throws CorruptImage unless `cond`; for header validation one-liners. */
export function ensure(cond: unknown, message: string, opts: Opts = {}): asserts cond {
  if (!cond) throw new CorruptImage(message, opts);
}
