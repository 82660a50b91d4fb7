/** ImageService/ImageFsInfo: bytes and inodes used by the unpacked layers (snapshot store). */
import type { ImageService } from '../../core/images/service.js';
import type { ImageHandlers } from '../server/server.js';

export const imageFsInfo =
  (images: ImageService): NonNullable<ImageHandlers['imageFsInfo']> =>
  async () => {
    const u = await images.fsInfo();
    const usage = {
      timestamp: BigInt(Date.now()) * 1_000_000n,
      fsId: { mountpoint: u.mountpoint },
      usedBytes: { value: BigInt(u.bytes) },
      inodesUsed: { value: BigInt(u.inodes) },
    };
    return { imageFilesystems: [usage], containerFilesystems: [usage] };
  };
