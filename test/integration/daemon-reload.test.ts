/**
 * SIGHUP reloads berthd's config file: registry mirrors and credentials, log level, metrics
 * address (and CNI dirs, streaming address) change at run time; keys that need a restart are
 * named and left alone; a file that does not parse or validate, or cannot be applied, is refused
 * with its error in the log and nothing changes.
 *
 * Two local registries serve different images under the same name; a mirror entry for a
 * made-up host points at one or the other, so which image a pull gets shows which mirror list
 * berthd is using (and no request ever leaves loopback: the mirror answers first).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { startRegistry, registryAvailable, type TestRegistry } from '../helpers/registry.js';
import { fixture, pushFixture, type PushedFixture } from '../helpers/images.js';
import { startBerthd, type TestBerthd } from '../helpers/berthd.js';

const skip = !registryAvailable() || process.getuid?.() !== 0 ? 'needs root and docker-registry' : false;
const HOST = 'registry.berth-reload.test';
const AUTH_HOST = 'registry.berth-reload-auth.test';

let regA: TestRegistry;
let regB: TestRegistry;
let regAuth: TestRegistry;
let imgA: PushedFixture;
let imgB: PushedFixture;
let imgAuth: PushedFixture;
let d: TestBerthd;

interface Cfg {
  mirror: TestRegistry;
  logLevel?: string;
  metrics?: string;
  streaming?: string;
  credentials?: boolean;
  extra?: string;
}

/** The whole config file, as an operator would write it. */
function toml(c: Cfg): string {
  let t = `root = "${d.root}"\nstate = "${d.state}"\nsocket = "${d.socket}"\nlog_level = "${c.logLevel ?? 'info'}"\n${c.extra ?? ''}`;
  t += `[registry.mirrors."${HOST}"]\nendpoints = ["${c.mirror.url}"]\n`;
  t += `[registry.mirrors."${AUTH_HOST}"]\nendpoints = ["${regAuth.url}"]\n`;
  if (c.credentials) t += `[registry.credentials."${regAuth.host}"]\nusername = "alice"\npassword = "s3cret-reload"\n`;
  t += `[metrics]\naddress = "${c.metrics ?? '127.0.0.1:0'}"\n`;
  if (c.streaming) t += `[streaming]\naddress = "${c.streaming}"\n`;
  return t;
}

const outcomes = (log: string) => log.split('\n').filter((l) => /msg="config reload(ed| refused)/.test(l));

/** Write the file, SIGHUP, and return the log lines of this reload once its outcome is logged. */
async function reload(text: string): Promise<string[]> {
  writeFileSync(d.configFile, text);
  const seen = outcomes(d.log()).length;
  const from = d.log().length;
  d.proc.kill('SIGHUP');
  const deadline = Date.now() + 20_000;
  while (outcomes(d.log()).length === seen) {
    if (Date.now() > deadline) throw new Error(`no reload outcome logged:\n${d.log().slice(from)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return d.log().slice(from).split('\n').filter(Boolean);
}

/** The keys the reload's "config reloaded" line lists as applied (undefined: no such line). */
function applied(lines: string[]): string[] | undefined {
  const l = lines.find((x) => /level=info msg="config reloaded" /.test(x));
  const m = l && /applied=(?:"([^"]*)"|(\S+))/.exec(l);
  return m ? (m[1] ?? m[2]!).split(',') : undefined;
}

const pull = async (ref: string) => (await d.cri.image.pullImage({ image: { image: ref } })).imageRef;

function metricsStatus(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`http://${address}/metrics`, { timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  if (skip) return;
  regA = await startRegistry();
  regB = await startRegistry();
  regAuth = await startRegistry({ auth: { username: 'alice', password: 's3cret-reload' } });
  imgA = await pushFixture(regA.url, 'app', 'v1', await fixture('tiny'));
  imgB = await pushFixture(regB.url, 'app', 'v1', await fixture('users-uid'));
  imgAuth = await pushFixture(regAuth.url, 'private', 'v1', await fixture('layers-plain'), { username: 'alice', password: 's3cret-reload' });
  assert.notEqual(imgA.configDigest, imgB.configDigest);
  d = await startBerthd({ logLevel: 'info', mirrors: { [HOST]: [regA.url], [AUTH_HOST]: [regAuth.url] } });
});

after(async () => {
  if (skip) return;
  await d?.cleanup();
  await regA?.stop();
  await regB?.stop();
  await regAuth?.stop();
});

test('SIGHUP with a changed mirror list: the next pull uses the new mirror', { skip }, async () => {
  assert.equal(await pull(`${HOST}/app:v1`), imgA.configDigest);
  const lines = await reload(toml({ mirror: regB }));
  assert.deepEqual(applied(lines), ['registry.mirrors'], lines.join('\n'));
  assert.equal(await pull(`${HOST}/app:v1`), imgB.configDigest);
});

test('a file that does not parse, or does not validate, is refused with its error and nothing changes', { skip }, async () => {
  // Current state: mirror B, level info. Each broken file would switch back to A and to debug.
  const broken = [
    { text: `${toml({ mirror: regA, logLevel: 'debug' })}\nmirrors = [\n`, error: /config reload refused.*berth\.toml/ },
    { text: `bogus_key = 1\n${toml({ mirror: regA, logLevel: 'debug' })}`, error: /config reload refused.*unknown key \\?"bogus_key\\?"/ },
    { text: toml({ mirror: regA, logLevel: 'loud' }), error: /config reload refused.*log_level/ },
  ];
  for (const b of broken) {
    const lines = await reload(b.text);
    const refused = lines.find((l) => /level=error msg="config reload refused; the running config is unchanged"/.test(l));
    assert.ok(refused, lines.join('\n'));
    assert.match(refused, b.error);
    assert.match(refused, new RegExp(`file=${d.configFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    assert.equal(await pull(`${HOST}/app:v1`), imgB.configDigest, 'mirror list unchanged');
  }
  // Log level unchanged too: the pulls above logged no debug lines.
  const since = d.log().lastIndexOf('config reload refused');
  assert.doesNotMatch(d.log().slice(since), /level=debug/);
});

test('a config that parses but cannot be applied (metrics address in use) changes nothing, mirrors included', { skip }, async () => {
  const busy: Server = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = (busy.address() as { port: number }).port;
  try {
    const lines = await reload(toml({ mirror: regA, metrics: `127.0.0.1:${port}` }));
    const refused = lines.find((l) => /config reload refused/.test(l));
    assert.ok(refused, lines.join('\n'));
    assert.match(refused, new RegExp(`metrics\\.address.*127\\.0\\.0\\.1:${port}.*EADDRINUSE`));
    assert.equal(await pull(`${HOST}/app:v1`), imgB.configDigest);
  } finally {
    busy.close();
  }
});

test('a changed log level takes effect', { skip }, async () => {
  await d.cri.runtime.version({ version: 'v1' });
  assert.doesNotMatch(d.log(), /level=debug msg="rpc start"/, 'no debug lines at level info');
  await reload(toml({ mirror: regB, logLevel: 'debug' }));
  await d.cri.runtime.version({ version: 'v1' });
  assert.match(d.log(), /level=debug msg="rpc start" method=\S*Version/);
  const toWarn = await reload(toml({ mirror: regB, logLevel: 'warn' }));
  // The outcome of the reload itself is still logged (before the level rises).
  assert.deepEqual(applied(toWarn), ['log_level'], toWarn.join('\n'));
  const from = d.log().length;
  await d.cri.runtime.version({ version: 'v1' });
  await pull(`${HOST}/app:v1`);
  assert.doesNotMatch(d.log().slice(from), /level=(debug|info)/, 'nothing below warn after the reload');
  const back = await reload(toml({ mirror: regB }));
  assert.deepEqual(applied(back), ['log_level'], back.join('\n'));
});

test('registry credentials added by a reload are used by the next pull, and never shown by berth info', { skip }, async () => {
  await assert.rejects(pull(`${AUTH_HOST}/private:v1`), (err: Error) => /401|unauthori[sz]ed|authentication/i.test(err.message));
  const lines = await reload(toml({ mirror: regB, credentials: true }));
  assert.deepEqual(applied(lines), ['registry.credentials'], lines.join('\n'));
  assert.equal(await pull(`${AUTH_HOST}/private:v1`), imgAuth.configDigest);
  const info = (await d.cri.runtime.status({ verbose: true })).info;
  assert.ok(info.config?.includes(regAuth.host), 'the credentials entry is listed');
  assert.ok(!info.config?.includes('s3cret-reload'), 'the password is not');
  assert.ok(!d.log().includes('s3cret-reload'), 'nor logged');
});

test('the metrics address moves on reload; the old one stops answering', { skip }, async () => {
  const old = readFileSync(join(d.state, 'metrics.addr'), 'utf8').trim();
  assert.equal(await metricsStatus(old), 200);
  const lines = await reload(toml({ mirror: regB, credentials: true, metrics: '127.0.0.2:0' }));
  assert.deepEqual(applied(lines), ['metrics.address'], lines.join('\n'));
  const now = readFileSync(join(d.state, 'metrics.addr'), 'utf8').trim();
  assert.match(now, /^127\.0\.0\.2:\d+$/);
  assert.equal(await metricsStatus(now), 200);
  await assert.rejects(metricsStatus(old), /ECONNREFUSED/);
});

test('the streaming address moves on reload, and back', { skip }, async () => {
  const cfg = { mirror: regB, credentials: true, metrics: '127.0.0.2:0' };
  let lines = await reload(toml({ ...cfg, streaming: '127.0.0.2:0' }));
  assert.deepEqual(applied(lines), ['streaming.address'], lines.join('\n'));
  assert.ok(
    lines.some((l) => /msg="streaming server listening" .*url=http:\/\/127\.0\.0\.2:\d+/.test(l)),
    lines.join('\n'),
  );
  lines = await reload(toml(cfg));
  assert.deepEqual(applied(lines), ['streaming.address'], lines.join('\n'));
  assert.ok(
    lines.some((l) => /msg="streaming server listening" .*url=http:\/\/127\.0\.0\.1:\d+/.test(l)),
    lines.join('\n'),
  );
});

test('changes that need a restart are named, not applied; the reloadable ones in the same file are', { skip }, async () => {
  const lines = await reload(
    toml({ mirror: regA, metrics: '127.0.0.2:0', credentials: true, extra: `sandbox_image = "${regA.host}/app:v1"\nsnapshotter = "native"\n` })
      .replace(`root = "${d.root}"`, `root = "${d.root}-elsewhere"`)
      .replace(`socket = "${d.socket}"`, `socket = "${d.socket}.new"`),
  );
  const warn = lines.find((l) => /level=warn msg="config reload: these changes need a restart of berthd and are not applied"/.test(l));
  assert.ok(warn, lines.join('\n'));
  assert.match(warn, /keys="root,sandbox_image,snapshotter,socket"(\s|$)/);
  assert.deepEqual(applied(lines), ['registry.mirrors'], lines.join('\n'));
  // Still serving on the old socket, with the old root; the new mirror is in use.
  const cfg = JSON.parse((await d.cri.runtime.status({ verbose: true })).info.config!) as { root: string; socket: string; sandbox_image: string };
  assert.equal(cfg.root, d.root);
  assert.equal(cfg.socket, d.socket);
  assert.equal(cfg.sandbox_image, 'registry.k8s.io/pause:3.9');
  assert.equal(await pull(`${HOST}/app:v1`), imgA.configDigest);
});

test('cni.conf_dir and cni.bin_dirs change on reload: NetworkReady follows the new dir', { skip }, async () => {
  const networkReady = async () => (await d.cri.runtime.status({})).status?.conditions.find((c) => c.type === 'NetworkReady');
  const empty = join(d.dir, 'cni-empty');
  const full = join(d.dir, 'cni-full');
  mkdirSync(empty);
  mkdirSync(full);
  // Never used for a pod here: only its presence and its plugins' binaries are checked.
  writeFileSync(
    join(full, '10-reload.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'reload-test',
      plugins: [{ type: 'bridge', bridge: 'brreload0', ipam: { type: 'host-local', ranges: [[{ subnet: '198.19.250.0/24' }]] } }],
    }),
  );
  const base = (dir: string, bins = '"/usr/lib/cni"') =>
    toml({ mirror: regA, metrics: '127.0.0.2:0', credentials: true, extra: `[cni]\nconf_dir = "${dir}"\nbin_dirs = [${bins}]\n` });
  let lines = await reload(base(empty));
  assert.ok(applied(lines)?.includes('cni.conf_dir'), lines.join('\n'));
  let c = await networkReady();
  assert.equal(c?.status, false);
  assert.match(c?.message ?? '', new RegExp(`no network config found in ${empty}`));

  lines = await reload(base(full));
  assert.ok(
    lines.some((l) => /msg="CNI after reload" .*ready=true network=reload-test/.test(l)),
    lines.join('\n'),
  );
  c = await networkReady();
  assert.equal(c?.status, true, c?.message);

  // Plugin dirs without the bridge plugin: not ready, naming it.
  lines = await reload(base(full, `"${empty}"`));
  assert.ok(applied(lines)?.includes('cni.bin_dirs'), lines.join('\n'));
  c = await networkReady();
  assert.equal(c?.status, false);
  assert.match(c?.message ?? '', /bridge/);
});
