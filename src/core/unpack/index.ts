export { applyLayer, parseId, type ApplyOptions, type ApplyResult, type WhiteoutMode } from './apply.js';
export { decompress, decompressStream, compressionOf, type Compression } from './decompress.js';
export { unpackLayer, DIFFID_LABEL, type UnpackLayerOptions, type UnpackLayerResult } from './unpack-layer.js';
export { parseWhiteout, type WhiteoutMarker } from './whiteout.js';
export { syscallsAvailable } from './sys.js';
export { UnpackPool, type ExtractJob, type ExtractResult, type Reservation, type UnpackPoolOptions } from './pool.js';
export { FileSource } from './file-source.js';
export { readTar, type TarEntry, type TarHeader } from './tar-reader.js';
