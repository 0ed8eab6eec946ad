// A tiny local map tile server for the browser tests (no internet): any GET /z/x/y.png
// answers a generated 256×256 PNG (a flat colour chosen by x and y, with a darker
// border, so a screenshot shows the tile grid). It records what was asked:
//   GET /__requests   → {"count": N, "paths": ["/16/18700/25000.png", ...]}
//   node tests/e2e/tile-server.mjs --port 8100
import http from 'node:http';
import zlib from 'node:zlib';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const PORT = Number(arg('port', 8100));

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A 256×256 RGB PNG of colour rgb with a 2-pixel border of border. */
function png(rgb, border) {
  const W = 256, H = 256;
  const raw = Buffer.alloc((W * 3 + 1) * H);
  for (let y = 0; y < H; y++) {
    const row = y * (W * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < W; x++) {
      const c = x < 2 || y < 2 || x >= W - 2 || y >= H - 2 ? border : rgb;
      raw.set(c, row + 1 + x * 3);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0);
  ihdr.writeUInt32BE(H, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const tiles = [png([232, 238, 226], [200, 208, 196]), png([226, 232, 240], [196, 204, 214])];
const paths = [];

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/__requests') {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    return res.end(JSON.stringify({ count: paths.length, paths }));
  }
  const m = /^\/(\d+)\/(\d+)\/(\d+)\.png$/.exec(url.pathname);
  if (req.method !== 'GET' || !m) {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    return res.end('not a tile');
  }
  paths.push(url.pathname);
  res.writeHead(200, { 'Content-Type': 'image/png', 'Cache-Control': 'no-store' });
  res.end(tiles[(Number(m[2]) + Number(m[3])) % 2]);
});
server.listen(PORT, '127.0.0.1', () => console.log(`tile server on http://127.0.0.1:${server.address().port}`));
