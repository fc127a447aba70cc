// /v2/images/{id}/file: streaming upload (PUT) and download (GET, with Range).
import type { FastifyInstance } from 'fastify';
import type { Service } from '../domain/service.js';
import * as data from '../domain/data.js';
import { contextFor } from './context.js';
import { HttpError } from './errors.js';
import { bodyStream, mediaType } from './body.js';

export function registerData(app: FastifyInstance, svc: Service): void {
  const cfg = svc.cfg;
  app.put<{ Params: { id: string } }>('/v2/images/:id/file', async (req, reply) => {
    const ctx = contextFor(cfg, req);
    const ct = mediaType(req);
    if (ct !== 'application/octet-stream') {
      // Drain nothing: the connection is closed after the error so the body is not read.
      reply.header('Connection', 'close');
      throw new HttpError(415, `The request media type ${req.headers['content-type'] ?? 'None'} is not supported by this server.`);
    }
    const cl = req.headers['content-length'];
    const declared = cl !== undefined && req.headers['transfer-encoding'] === undefined ? Number(cl) : null;
    try {
      await data.upload(svc, ctx, req.params.id, bodyStream(req), declared !== null && Number.isFinite(declared) ? declared : null);
    } catch (e) {
      // The unread remainder of a refused body is not worth receiving.
      if (!req.raw.readableEnded) reply.header('Connection', 'close');
      throw e;
    }
    return reply.code(204).send();
  });

  app.get<{ Params: { id: string } }>('/v2/images/:id/file', async (req, reply) => {
    const ctx = contextFor(cfg, req);
    const range = req.headers.range;
    const { dl } = await data.download(svc, ctx, req.params.id, range);
    if (!dl) return reply.code(204).send();
    reply.type('application/octet-stream');
    reply.header('Content-Length', String(dl.end - dl.start + 1));
    if (dl.partial) {
      reply.code(206).header('Content-Range', `bytes ${dl.start}-${dl.end}/${dl.size}`);
    } else if (dl.checksum) {
      reply.header('Content-MD5', dl.checksum);
    }
    return reply.send(dl.stream);
  });
}
