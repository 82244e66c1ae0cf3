// The Node ingest Lambda's per-image work (tnc-ca-geo/animl-ingest, ingest-image/task.js), one image
// after another as the Lambda does (one image per invocation): md5 of the file bytes, sharp(...).stats()
// with failOn 'none', then the medium (940x940) and small (120x120) thumbnails, each a separate
// sharp(file).resize(w, h, {fit: 'inside'}).toFile(...). The S3 download, the exiftool Lambda call and
// the API call are left out, so this is less work than the original did per image.
//
// usage: node work.mjs IMAGE_DIR OUT_DIR   -> prints one JSON line {"images": N, "seconds": S}
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';

const SHARP_CONFIG = { failOn: 'none' };
const SIZES = { medium: [940, 940], small: [120, 120] };
const SUPPORTED = new Set(['.jpg', '.jpeg', '.png']);

async function one(file, outDir) {
  const parsed = path.parse(file);
  const md5 = createHash('md5').update(await fsp.readFile(file)).digest('hex');
  await sharp(file, SHARP_CONFIG).stats();
  for (const [size, [w, h]] of Object.entries(SIZES)) {
    const target = path.join(outDir, `${parsed.name}-${size}${parsed.ext.toLowerCase()}`);
    await sharp(file, SHARP_CONFIG).resize(w, h, { fit: 'inside' }).toFile(target);
  }
  return md5;
}

async function main() {
  const [dir, outDir] = process.argv.slice(2);
  if (!dir || !outDir) {
    console.error('usage: node work.mjs IMAGE_DIR OUT_DIR');
    process.exit(2);
  }
  await fsp.mkdir(outDir, { recursive: true });
  const files = (await fsp.readdir(dir))
    .filter((f) => SUPPORTED.has(path.extname(f).toLowerCase()))
    .sort()
    .map((f) => path.join(dir, f));
  const start = process.hrtime.bigint();
  const hashes = new Set();
  for (const file of files) hashes.add(await one(file, outDir));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ images: files.length, distinct: hashes.size, seconds,
    sharp: sharp.versions.sharp, vips: sharp.versions.vips, concurrency: sharp.concurrency() }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
