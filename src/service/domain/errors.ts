// Service-only refusals that need an HTTP status the engine's codes do not carry.
// They extend ImgportError so everything below HTTP speaks one error language; the
// status mapping lives in src/service/http/errors.ts.
import { ImgportError } from '../../engine/errors.js';

/** A quota or size limit (Glance answers 413). */
export class LimitExceeded extends ImgportError {
  constructor(message: string) { super('CONFLICT', message); }
}
/** The image vanished while its data was being stored (Glance answers 410). */
export class Gone extends ImgportError {
  constructor(message: string) { super('NOT_FOUND', message); }
}
/** The store ran out of space (Glance answers 413 "Image storage media is full"). */
export class StorageFull extends ImgportError {
  constructor(message: string, cause?: unknown) { super('IO_ERROR', message, { cause }); }
}
/** A requested byte range outside the data (416). */
export class RangeNotSatisfiable extends ImgportError {
  constructor(message: string) { super('INVALID_ARGUMENT', message); }
}

/**
 * Marks an error whose text Glance passes to webob as the "detail" (after the status's
 * stock explanation) rather than as the explanation; the HTTP layer renders it so.
 */
export function asDetail<E extends Error>(e: E): E {
  (e as E & { glanceDetail?: boolean }).glanceDetail = true;
  return e;
}
