// The one place errors become HTTP responses. Statuses follow Glance; bodies follow
// webob (what Glance emits and the openstack client parses): JSON when the client
// accepts JSON, HTML for browsers and '*/*', plain text otherwise.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ImgportError } from '../../engine/errors.js';
import { Gone, LimitExceeded, RangeNotSatisfiable, StorageFull } from '../domain/errors.js';

/** An error raised by the HTTP layer itself with an explicit status. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) { super(message); }
}

export const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  406: 'Not Acceptable', 409: 'Conflict', 410: 'Gone', 411: 'Length Required', 413: 'Request Entity Too Large',
  415: 'Unsupported Media Type', 416: 'Requested Range Not Satisfiable', 431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable',
};

export function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof LimitExceeded || err instanceof StorageFull) return 413;
  if (err instanceof Gone) return 410;
  if (err instanceof RangeNotSatisfiable) return 416;
  if (err instanceof ImgportError) {
    switch (err.code) {
      case 'NOT_FOUND': return 404;
      case 'CONFLICT': return 409;
      case 'FORBIDDEN': return 403;
      case 'INVALID_ARGUMENT': case 'CORRUPT_IMAGE': case 'UNSAFE_IMAGE': case 'UNSUPPORTED': return 400;
      case 'IO_ERROR': return 503;
      default: return 500;
    }
  }
  const fst = err as { statusCode?: number; code?: string };
  if (typeof fst?.statusCode === 'number' && fst.statusCode >= 400 && fst.statusCode < 600) return fst.statusCode;
  return 500;
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** webob's stock explanations, shown before a "detail" message. */
const STOCK: Record<number, string> = {
  403: 'Access was denied to this resource.',
  404: 'The resource could not be found.',
  409: 'There was a conflict when trying to complete your request.',
  413: 'The body of your request was too large for this server.',
};

/** Renders like webob's HTTPException for the request's Accept header. */
export function renderError(status: number, explanation: string, accept: string | undefined, detail = false): { type: string; body: string } {
  const title = TITLES[status] ?? 'Error';
  const code = `${status} ${title}`;
  const a = accept ?? '';
  const expl = detail ? STOCK[status] ?? '' : explanation;
  const det = detail ? explanation : '';
  if (a.includes('html') || a.includes('*/*')) {
    const body = `<html>\n <head>\n  <title>${code}</title>\n </head>\n <body>\n  <h1>${code}</h1>\n  ${escapeHtml(expl)}<br /><br />\n${escapeHtml(det)}\n\n\n </body>\n</html>`;
    return { type: 'text/html; charset=UTF-8', body };
  }
  if (a.includes('json')) {
    return { type: 'application/json', body: JSON.stringify({ message: `${expl}<br /><br />\n${det}\n\n`, code, title }) };
  }
  return { type: 'text/plain; charset=UTF-8', body: `${code}\n\n${expl}\n${det}\n\n   ` };
}

export function sendError(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const status = statusOf(err);
  let message = err instanceof Error ? err.message : String(err);
  if (status === 500) {
    req.log.error({ err }, 'internal error');
    message = 'The server has either erred or is incapable of performing the requested operation.';
  } else if (status === 503 && err instanceof ImgportError) {
    req.log.error({ err }, 'store error');
  }
  const fst = err as { code?: string };
  if (fst?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') message = 'Request Entity Too Large';
  if (typeof fst?.code === 'string' && fst.code.startsWith('FST_ERR_CTP_INVALID_MEDIA_TYPE')) message = `The request media type ${req.headers['content-type'] ?? ''} is not supported by this server.`;
  const detail = status !== 500 && (err as { glanceDetail?: boolean })?.glanceDetail === true;
  const { type, body } = renderError(status, message, req.headers.accept, detail);
  if (err instanceof HttpError) for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  return reply.code(status).type(type).send(body);
}
