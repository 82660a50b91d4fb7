/**
 * CheckpointContainer: CRIU (through the shim's runc checkpoint) dumps the running container
 * into a work directory, which is then archived as a tar at `location`, laid out as CRI-O and
 * containerd do: checkpoint/ (the CRIU images), spec.dump (the OCI runtime spec) and
 * config.dump (the container's identity and image). The container keeps running.
 * CRIU failures come back as FailedPrecondition carrying CRIU's own words; a timeout (on
 * ctx.clock, so unit tests advance it) fails with DeadlineExceeded.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { errors, isBerthError, toBerthError } from '../../errors.js';
import { bundlePaths } from '../../runtime/index.js';
import { findContainer, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { sleep } from '../server/ports.js';

/** Add every regular file and directory under `root` to `pack` (names relative to root). */
async function packDir(pack: tar.Pack, root: string, dir = root): Promise<void> {
  for (const name of (await readdir(dir)).sort()) {
    const p = join(dir, name);
    const st = await lstat(p);
    const entryName = relative(root, p);
    if (st.isDirectory()) {
      pack.entry({ name: `${entryName}/`, type: 'directory', mode: st.mode & 0o7777, mtime: st.mtime });
      await packDir(pack, root, p);
    } else if (st.isFile()) {
      const entry = pack.entry({ name: entryName, type: 'file', size: st.size, mode: st.mode & 0o7777, mtime: st.mtime });
      await pipeline(createReadStream(p), entry);
    }
    // CRIU images hold only regular files and directories; anything else is skipped.
  }
}

/** Write `dir` as a tar to `dest` atomically (temp name, then rename). */
export async function writeTar(dir: string, dest: string): Promise<void> {
  const tmp = `${dest}.${process.pid}.tmp`;
  const pack = tar.pack();
  const out = pipeline(pack, createWriteStream(tmp, { mode: 0o600 }));
  try {
    await packDir(pack, dir);
    pack.finalize();
    await out;
    await rename(tmp, dest);
  } catch (err) {
    pack.destroy();
    await out.catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
}

export const checkpointContainer =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['checkpointContainer']> =>
  async (req, call) => {
    const ns = call.namespace;
    const c = findContainer(ctx, ns, req.containerId);
    if (!req.location) throw errors.invalidArgument('checkpoint.no_location', 'location is required (path of the checkpoint archive)');
    if (!isAbsolute(req.location)) throw errors.invalidArgument('checkpoint.bad_location', `location ${JSON.stringify(req.location)} must be an absolute path`);
    if (req.timeout < 0n) throw errors.invalidArgument('checkpoint.bad_timeout', `timeout must not be negative (got ${req.timeout})`);
    if (c.state !== 'running')
      throw errors.failedPrecondition(
        'container.not_running',
        `container ${c.id} is not running (state ${c.state}); only running containers can be checkpointed`,
      );
    const base = join(ctx.settings.root, 'checkpoints');
    await mkdir(base, { recursive: true, mode: 0o700 });
    const work = await mkdtemp(join(base, `${c.id.slice(0, 12)}-`));
    const timer = req.timeout > 0n ? sleep(ctx.clock, Number(req.timeout) * 1000) : undefined;
    try {
      const dump = ctx.tasks.checkpoint(ns, c.id, join(work, 'checkpoint'), {
        imagePath: join(work, 'checkpoint'),
        workPath: join(work, 'criu-work'),
        exit: false,
      });
      const deadline = timer?.done.then((): never => {
        throw errors.deadlineExceeded('checkpoint.timeout', `checkpoint of container ${c.id} did not finish within ${req.timeout}s`);
      });
      try {
        await (deadline ? Promise.race([dump, deadline]) : dump);
        // The timeout covers the dump (CRIU) only.
        timer?.cancel();
      } catch (err) {
        dump.catch(() => undefined);
        if (isBerthError(err, 'DeadlineExceeded')) throw err;
        const e = toBerthError(err);
        throw errors.failedPrecondition('checkpoint.failed', `checkpoint of container ${c.id} failed: ${e.message}`, err);
      }
      const spec = await readFile(join(bundlePaths(ctx.settings.state, ctx.settings.root, ns, c.id).dir, 'config.json'));
      await writeFile(join(work, 'spec.dump'), spec);
      await writeFile(
        join(work, 'config.dump'),
        JSON.stringify({
          id: c.id,
          name: c.meta.name,
          attempt: c.meta.attempt,
          sandboxId: c.sandboxId,
          rootfsImage: c.image,
          rootfsImageRef: c.imageRef,
          rootfsImageName: c.image,
          imageId: c.imageId,
          createdTime: c.createdAt,
          labels: c.labels,
          annotations: c.annotations,
        }),
      );
      await rm(join(work, 'criu-work'), { recursive: true, force: true });
      await mkdir(dirname(req.location), { recursive: true });
      await writeTar(work, req.location);
      return {};
    } finally {
      timer?.cancel();
      await rm(work, { recursive: true, force: true });
    }
  };
