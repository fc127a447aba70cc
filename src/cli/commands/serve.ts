// `imgport serve`: runs the Glance v2-compatible image service.
import { parseArgs } from 'node:util';
import type { Command } from '../main.js';
import { loadConfig, type DeepPartial, type ServiceConfig } from '../../service/config.js';
import { InvalidArgument } from '../../engine/errors.js';

const HELP = `usage: imgport serve [--config FILE] [--host H] [--port N] [--data-dir DIR]
                     [--db-url postgres://...] [--auth none|trusted-headers]

Serves the OpenStack Image API v2 (Glance-compatible) on 127.0.0.1:9292 by default,
with SQLite metadata and image files under ./data and no authentication.
Configuration: defaults < --config FILE (JSON/YAML, or IMGPORT_CONFIG) < IMGPORT_* < flags.`;

export const command: Command = {
  summary: 'run the Glance v2-compatible image service',
  async run(args) {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        options: {
          config: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' },
          'data-dir': { type: 'string' }, 'db-url': { type: 'string' }, auth: { type: 'string' },
          'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' },
        },
        strict: true,
      });
    } catch (e) {
      throw new InvalidArgument(`${(e as Error).message}\n${HELP}`);
    }
    const { values } = parsed;
    if (values.help) { process.stdout.write(HELP + '\n'); return 0; }
    const o: DeepPartial<ServiceConfig> = {};
    if (values.host) o.host = values.host;
    if (values.port !== undefined) {
      const p = Number(values.port);
      if (!Number.isInteger(p)) throw new InvalidArgument(`--port: not a number: ${values.port}`);
      o.port = p;
    }
    if (values['data-dir']) {
      const path = await import('node:path');
      o.database = { sqlitePath: path.join(values['data-dir'], 'imgport.sqlite') };
      o.store = { dir: path.join(values['data-dir'], 'images') };
    }
    if (values['db-url']) o.database = { ...(o.database ?? {}), driver: 'postgres', url: values['db-url'] };
    if (values.auth) o.auth = values.auth as ServiceConfig['auth'];
    if (values['log-level']) o.logLevel = values['log-level'] as ServiceConfig['logLevel'];
    const cfg = loadConfig({ file: values.config, env: process.env, overrides: o });
    const { startService } = await import('../../service/index.js');
    const s = await startService(cfg);
    process.stderr.write(`imgport: image service listening on ${s.url} (auth: ${cfg.auth}, database: ${cfg.database.driver})\n`);
    await new Promise<void>((resolve) => {
      const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await s.close();
    return 0;
  },
};
