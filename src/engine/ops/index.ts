// The qemu-img-style operations, each written once against BlockDevice.
export { imageInfo, deviceInfo, infoJson, infoHuman, type ImageInfo } from './info.js';
export { mapImage, mapJson, mapHuman, type MapEntry } from './map.js';
export { checkImage, checkJson, checkHuman } from './check.js';
export { compareImages, compareDevices, type CompareResult } from './compare.js';
export { createImage, validateCreateOptions, type CreateOptions } from './create.js';
export { measure, type MeasureOptions } from './measure.js';
export { resizeImage, resolveNewSize } from './resize.js';
export { snapshotOp, type SnapshotAction } from './snapshot.js';
export { parseSize, humanSize } from './size.js';
