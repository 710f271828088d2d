// A small QR code encoder (ISO/IEC 18004) for the demo page: byte and alphanumeric segments,
// error-correction level M, versions 1-15, the best of the 8 masks by the standard penalty.
// `OW1.` tokens go in alphanumeric mode (spec/token.md §6.3); a page URL before them in byte mode.

// Level M: [EC codewords per block, blocks in group 1, data codewords each, blocks in group 2, data each].
const EC_M = [null,
  [10, 1, 16, 0, 0], [16, 1, 28, 0, 0], [26, 1, 44, 0, 0], [18, 2, 32, 0, 0], [24, 2, 43, 0, 0],
  [16, 4, 27, 0, 0], [18, 4, 31, 0, 0], [22, 2, 38, 2, 39], [22, 3, 36, 2, 37], [26, 4, 43, 1, 44],
  [30, 1, 50, 4, 51], [22, 6, 36, 2, 37], [22, 8, 37, 1, 38], [24, 4, 40, 5, 41], [24, 5, 41, 5, 42]];
const ALIGN = [null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42], [6, 26, 46],
  [6, 28, 50], [6, 30, 54], [6, 32, 58], [6, 34, 62], [6, 26, 46, 66], [6, 26, 48, 70]];
const ALNUM = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';

// GF(256) with polynomial 0x11d.
const EXP = new Uint8Array(512), LOG = new Uint8Array(256);
for (let i = 0, x = 1; i < 255; i++) { EXP[i] = x; LOG[x] = i; x <<= 1; if (x & 256) x ^= 0x11d; }
for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
const gmul = (a, b) => (a && b ? EXP[LOG[a] + LOG[b]] : 0);

function rsRemainder(data, degree) {
  let gen = [1];
  for (let i = 0; i < degree; i++) {
    const next = new Array(gen.length + 1).fill(0);
    gen.forEach((g, j) => { next[j] ^= g; next[j + 1] ^= gmul(g, EXP[i]); });
    gen = next;
  }
  const rem = new Array(degree).fill(0);
  for (const d of data) {
    const f = d ^ rem.shift();
    rem.push(0);
    for (let j = 0; j < degree; j++) rem[j] ^= gmul(gen[j + 1], f);
  }
  return rem;
}

function segmentBits(seg, version) {
  const bits = [];
  const put = (v, n) => { for (let i = n - 1; i >= 0; i--) bits.push((v >>> i) & 1); };
  if (seg.mode === 'alnum') {
    put(0b0010, 4); put(seg.text.length, version < 10 ? 9 : 11);
    for (let i = 0; i < seg.text.length; i += 2) {
      const a = ALNUM.indexOf(seg.text[i]);
      if (i + 1 < seg.text.length) put(a * 45 + ALNUM.indexOf(seg.text[i + 1]), 11); else put(a, 6);
    }
  } else {
    const bytes = new TextEncoder().encode(seg.text);
    put(0b0100, 4); put(bytes.length, version < 10 ? 8 : 16);
    for (const b of bytes) put(b, 8);
  }
  return bits;
}

/** Splits text into a byte segment (prefix) and an alphanumeric one (a trailing `OW1.` token). */
export function segments(text) {
  const at = text.lastIndexOf('OW1.');
  if (at >= 0 && [...text.slice(at)].every(c => ALNUM.includes(c))) {
    return at > 0 ? [{ mode: 'byte', text: text.slice(0, at) }, { mode: 'alnum', text: text.slice(at) }] : [{ mode: 'alnum', text }];
  }
  return [{ mode: 'byte', text }];
}

/** Encodes `text`; returns {version, size, mask, modules: boolean[][] (row-major, true = dark)}. Throws if it needs version > 15. */
export function encode(text) {
  const segs = segments(text);
  for (let version = 1; version <= 15; version++) {
    const [ecLen, b1, d1, b2, d2] = EC_M[version];
    const capacity = (b1 * d1 + b2 * d2) * 8;
    const bits = segs.flatMap(s => segmentBits(s, version));
    if (bits.length > capacity) continue;
    bits.push(...new Array(Math.min(4, capacity - bits.length)).fill(0));
    while (bits.length % 8) bits.push(0);
    const data = [];
    for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
    for (let pad = 0xec; data.length < capacity / 8; pad ^= 0xec ^ 0x11) data.push(pad);
    const blocks = [];
    let at = 0;
    for (let i = 0; i < b1 + b2; i++) {
      const len = i < b1 ? d1 : d2;
      const block = data.slice(at, at + len);
      at += len;
      blocks.push({ data: block, ec: rsRemainder(block, ecLen) });
    }
    const out = [];
    for (let i = 0; i < Math.max(d1, d2); i++) for (const b of blocks) if (i < b.data.length) out.push(b.data[i]);
    for (let i = 0; i < ecLen; i++) for (const b of blocks) out.push(b.ec[i]);
    return place(version, out);
  }
  throw new Error('text too long for a version-15 QR code');
}

function place(version, codewords) {
  const size = 17 + 4 * version;
  const m = Array.from({ length: size }, () => new Array(size).fill(false));
  const fixed = Array.from({ length: size }, () => new Array(size).fill(false));
  const set = (r, c, v) => { m[r][c] = v; fixed[r][c] = true; };
  const finder = (r0, c0) => {
    for (let r = -1; r <= 7; r++) for (let c = -1; c <= 7; c++) {
      const rr = r0 + r, cc = c0 + c;
      if (rr < 0 || cc < 0 || rr >= size || cc >= size) continue;
      const ring = Math.max(Math.abs(r - 3), Math.abs(c - 3));
      set(rr, cc, ring !== 2 && ring !== 4);
    }
  };
  finder(0, 0); finder(0, size - 7); finder(size - 7, 0);
  for (let i = 8; i < size - 8; i++) { set(6, i, i % 2 === 0); set(i, 6, i % 2 === 0); }
  const al = ALIGN[version];
  for (const r of al) for (const c of al) {
    if ((r === 6 && c === 6) || (r === 6 && c === al[al.length - 1]) || (r === al[al.length - 1] && c === 6)) continue;
    for (let dr = -2; dr <= 2; dr++) for (let dc = -2; dc <= 2; dc++) set(r + dr, c + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
  }
  // Reserve format (and version) areas; filled per mask below.
  for (let i = 0; i < 9; i++) { fixed[8][i] = fixed[i][8] = true; }
  for (let i = 0; i < 8; i++) { fixed[8][size - 1 - i] = fixed[size - 1 - i][8] = true; }
  set(size - 8, 8, true);  // dark module
  if (version >= 7) for (let i = 0; i < 18; i++) { fixed[size - 11 + (i % 3)][Math.floor(i / 3)] = fixed[Math.floor(i / 3)][size - 11 + (i % 3)] = true; }
  // Data, in the zigzag order.
  const bits = codewords.flatMap(b => [7, 6, 5, 4, 3, 2, 1, 0].map(i => ((b >> i) & 1) === 1));
  let k = 0;
  for (let right = size - 1, up = true; right >= 1; right -= 2, up = !up) {
    if (right === 6) right = 5;
    for (let j = 0; j < size; j++) {
      const r = up ? size - 1 - j : j;
      for (const c of [right, right - 1]) if (!fixed[r][c]) m[r][c] = k < bits.length ? bits[k++] : false;
    }
  }
  const masks = [(r, c) => (r + c) % 2 === 0, r => r % 2 === 0, (r, c) => c % 3 === 0, (r, c) => (r + c) % 3 === 0,
    (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0, (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
    (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0, (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0];
  let best = null;
  masks.forEach((mask, id) => {
    const q = m.map((row, r) => row.map((v, c) => (fixed[r][c] ? v : v !== mask(r, c))));
    drawFormat(q, size, id, version);
    const score = penalty(q, size);
    if (!best || score < best.score) best = { score, q, id };
  });
  return { version, size, mask: best.id, modules: best.q };
}

function bch(value, poly, shift) {
  let v = value << shift;
  const top = Math.floor(Math.log2(poly));
  for (let i = Math.floor(Math.log2(v || 1)); i >= top; i--) if ((v >> i) & 1) v ^= poly << (i - top);
  return (value << shift) | v;
}
function drawFormat(q, size, mask, version) {
  const f = bch((0b00 << 3) | mask, 0x537, 10) ^ 0x5412;  // level M = 00
  const bit = i => ((f >> i) & 1) === 1;
  for (let i = 0; i <= 5; i++) q[8][i] = bit(14 - i);
  q[8][7] = bit(8); q[8][8] = bit(7); q[7][8] = bit(6);
  for (let i = 9; i < 15; i++) q[14 - i][8] = bit(14 - i);
  for (let i = 0; i < 8; i++) q[size - 1 - i][8] = bit(14 - i);
  for (let i = 8; i < 15; i++) q[8][size - 15 + i] = bit(14 - i);
  q[size - 8][8] = true;
  if (version >= 7) {
    const v = bch(version, 0x1f25, 12);
    for (let i = 0; i < 18; i++) {
      const b = ((v >> i) & 1) === 1;
      q[size - 11 + (i % 3)][Math.floor(i / 3)] = b;
      q[Math.floor(i / 3)][size - 11 + (i % 3)] = b;
    }
  }
}
function penalty(q, size) {
  let score = 0;
  const lines = [...q, ...q[0].map((_, c) => q.map(row => row[c]))];
  for (const line of lines) {
    for (let i = 0, run = 1; i < size; i++) {
      if (i + 1 < size && line[i + 1] === line[i]) { run++; continue; }
      if (run >= 5) score += run - 2;
      run = 1;
    }
    const s = line.map(v => (v ? 1 : 0)).join('');
    for (const p of ['10111010000', '00001011101']) for (let i = s.indexOf(p); i >= 0; i = s.indexOf(p, i + 1)) score += 40;
  }
  for (let r = 0; r + 1 < size; r++) for (let c = 0; c + 1 < size; c++) {
    const v = q[r][c];
    if (q[r][c + 1] === v && q[r + 1][c] === v && q[r + 1][c + 1] === v) score += 3;
  }
  const dark = q.flat().filter(Boolean).length;
  score += Math.floor(Math.abs((dark * 100) / (size * size) - 50) / 5) * 10;
  return score;
}

/** Draws a QR code as an SVG element string (4-module quiet zone). */
export function toSvg(text, scale = 4) {
  const { size, modules } = encode(text);
  const n = size + 8;
  let path = '';
  modules.forEach((row, r) => row.forEach((v, c) => { if (v) path += `M${c + 4},${r + 4}h1v1h-1z`; }));
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${n} ${n}" width="${n * scale}" height="${n * scale}" shape-rendering="crispEdges"><rect width="${n}" height="${n}" fill="#fff"/><path d="${path}" fill="#000"/></svg>`;
}
