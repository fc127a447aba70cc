// imgport's library entry point: the disk-image engine without the CLI or the service.
export * from './errors.js';
export type * from './block/device.js';
export type { ByteSource, ByteSink } from './io/source.js';
export { FileSource, FileSink } from './io/file.js';
export { StreamSink, stdoutSink } from './io/stdout.js';
export { type FileAccessPolicy, denyAllReferences, sameDirectoryPolicy } from './policy.js';
export { openImage, probeSource, detectFormat, formatByName, MAX_CHAIN_DEPTH, type OpenOptions } from './block/open.js';
export { chainMap, copyPlan, planDataBytes, chainDevices, type ChainRun } from './block/chain.js';
export { formats, findFormat } from './formats/registry.js';
export { convertImage, convertDevice, copyToWriter, deviceWriter, type ConvertOptions, type ConvertResult, type ConvertDeviceOptions, type CopyOptions } from './convert/index.js';
export * from './ops/index.js';
