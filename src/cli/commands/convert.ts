import fs from 'node:fs';
import type { Command } from '../main.js';
import { parseArgs, parseKeyValues, needPositional, str } from '../args.js';
import { EXIT } from '../exit.js';
import { InvalidArgument } from '../../engine/errors.js';
import { convertImage } from '../../engine/convert/index.js';
import { parseSize } from '../../engine/ops/size.js';
import { progressReporter, type ProgressMode } from '../progress.js';

const USAGE = 'imgport convert [-f FMT] [-O FMT] [-o OPTS] [-c] [-p | --progress json] [-S SIZE] [-n] [-B BACKING [-F FMT]] SRC DST|-';

export const command: Command = {
  summary: 'convert an image to another format (or flatten a backing chain)',
  async run(argv) {
    const { opts, positional, help } = parseArgs(argv, [
      { short: 'f', value: true, key: 'srcFmt' },
      { short: 'O', value: true, key: 'dstFmt' },
      { short: 'o', value: true, multi: true, key: 'options' },
      { short: 'c', key: 'compress' },
      { short: 'p', key: 'bar' },
      { long: 'progress', value: true },
      { short: 'S', value: true, key: 'sparse' },
      { short: 'n', key: 'noCreate' },
      { short: 'B', value: true, key: 'backing' },
      { short: 'F', value: true, key: 'backingFmt' },
      // -t: "unsafe" (the default, as qemu-img convert) does not fsync the output; any other mode does.
      { short: 't', value: true, key: 'cache' },
      // Accepted for qemu-img compatibility; imgport picks its own parallelism.
      { short: 'T', value: true, key: '_srcCache' },
      { short: 'm', value: true, key: '_coroutines' },
      { short: 'W', key: '_outOfOrder' },
    ]);
    if (help) {
      process.stdout.write([
        `usage: ${USAGE}`, '',
        '  -f FMT         source format (probed when absent)',
        '  -O FMT         target format (default raw)',
        '  -o k=v,...     target format options (e.g. cluster_size=65536, preallocation=full)',
        '  -c             compress the target (formats that can)',
        '  -p             progress bar on a terminal (stderr)',
        '  --progress json  JSON lines {"done","total","percent"} (stdout; stderr when DST is -)',
        '  -S SIZE        zero runs of at least SIZE bytes are left sparse (default 4k; 0 writes everything)',
        '  -n             the target exists already: write into it',
        '  -t CACHE       unsafe (default): leave the data to the page cache; writeback, none...: fsync at the end',
        '  -B FILE        the target gets FILE as backing file; only the top layer is copied',
        '  -F FMT         format of the -B backing file',
        '  DST = -        write to standard output (streamable formats: raw)', '',
      ].join('\n'));
      return EXIT.OK;
    }
    needPositional(positional, 2, USAGE);
    const [source, target] = positional as [string, string];
    let mode: ProgressMode;
    const p = str(opts.progress);
    if (p !== undefined) {
      if (p !== 'json' && p !== 'bar') throw new InvalidArgument(`--progress must be 'json' or 'bar', not '${p}'`);
      mode = p;
    } else if (opts.bar) mode = 'bar';
    const progressOut = target === '-' || mode === 'bar' ? process.stderr : process.stdout;
    const noCreate = opts.noCreate === true;
    // A signal must not leave a half-written image behind either.
    const onSignal = (sig: NodeJS.Signals) => {
      if (!noCreate && target !== '-') { try { fs.rmSync(target, { force: true }); } catch { /* nothing more to do */ } }
      process.stderr.write(`imgport: ${target}: interrupted by ${sig}, output removed\n`);
      process.exit(EXIT.INTERRUPTED);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await convertImage({
        source, target,
        sourceFormat: str(opts.srcFmt),
        targetFormat: str(opts.dstFmt) ?? 'raw',
        options: parseKeyValues(opts.options as string[] | undefined),
        compress: opts.compress === true,
        sparseSize: str(opts.sparse) !== undefined ? parseSize(str(opts.sparse)!, 'sparse size (-S)') : undefined,
        noCreate,
        backingFile: str(opts.backing),
        backingFormat: str(opts.backingFmt),
        onProgress: progressReporter(mode, progressOut),
        flush: (str(opts.cache) ?? 'unsafe') !== 'unsafe',
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return EXIT.OK;
  },
};
