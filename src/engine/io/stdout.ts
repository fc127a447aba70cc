// A non-seekable sink for `convert ... -`: bytes must arrive in order, with no gaps
// (writers of streamable formats fill holes themselves).
import type { Writable } from 'node:stream';
import type { ByteSink } from './source.js';
import { InvalidArgument, IoError } from '../errors.js';

export class StreamSink implements ByteSink {
  readonly seekable = false;
  /** Bytes written so far; the only offset the next write may use. */
  position = 0;
  private failure: Error | null = null;

  constructor(readonly name: string, private out: Writable) {
    out.on('error', (err) => { this.failure = err; });
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (offset !== this.position) {
      throw new InvalidArgument(`write at offset ${offset} on a stream positioned at ${this.position}: this format cannot be streamed`, { file: this.name });
    }
    if (this.failure) throw this.wrap(this.failure);
    if (buf.length === 0) return;
    // Copy: callers reuse their buffers once we resolve, and the stream may still hold it.
    const ok = this.out.write(Buffer.from(buf));
    this.position += buf.length;
    if (!ok) await this.drained();
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onDrain = () => { cleanup(); resolve(); };
      const onError = (err: Error) => { cleanup(); reject(this.wrap(err)); };
      const onClose = () => { cleanup(); reject(new IoError('output closed early', { file: this.name })); };
      const cleanup = () => { this.out.off('drain', onDrain); this.out.off('error', onError); this.out.off('close', onClose); };
      this.out.on('drain', onDrain);
      this.out.on('error', onError);
      this.out.on('close', onClose);
    });
  }

  private wrap(err: Error): IoError {
    const code = (err as NodeJS.ErrnoException).code;
    return new IoError(code === 'EPIPE' ? 'output closed early (broken pipe)' : `write failed: ${err.message}`, { file: this.name, cause: err });
  }

  async sync(): Promise<void> {
    if (this.failure) throw this.wrap(this.failure);
  }

  async close(): Promise<void> {
    if (this.out === process.stdout) return; // never end the process's stdout
    await new Promise<void>((resolve) => this.out.end(resolve));
  }
}

/** The process's standard output as a sink, named "-" in messages like qemu-img. */
export function stdoutSink(): StreamSink {
  return new StreamSink('-', process.stdout);
}
