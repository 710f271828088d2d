// oneway.js: the oneway browser peer, one ES module with no dependencies and no build step.
//
// What is here, each next to the spec section it implements:
// - the token codec (spec/token.md §4, §6, §8): decodeToken, encodeToken, tokenToText;
// - HKDF derivations with WebCrypto (spec/token.md §7): deriveKeys;
// - SDP synthesis from a token (spec/token.md §9): nativeAnswer, listenerOffer,
//   dialerIdentityAnswer, replyAnswer, tokenFromOffer;
// - the dialer certificate of the dialer-identity profile (spec/token.md §7.3): dialerCertificate;
// - reply codes (spec/token.md §12): encodeReplyCode (owr1, browser dialer of a browser
//   listener), encodeCandidateReply (owr2, the reply fallback of a native token), decodeReplyCode,
//   verifyCandidateReply, replyKey;
// - the in-band proof and channel-0 messages (spec/handshake.md §5, §6);
// - peers: dial() (native and reply profiles, browser dialer), listen() (dialer-identity and
//   reply profiles, browser listener), and the Connection they resolve to.
//
// Every function that reads input throws a OnewayError with a stable `code`.

/** Format version of tokens this module reads and writes. */
export const VERSION = 1;
const MAX_TEXT_LEN = 16384;
const MAX_CANDIDATES = 16;
const MAX_EXTENSIONS = 16;
const MAX_LABEL_BYTES = 64;
const EXT = { expires: 0x01, sctp: 0x02, listenerIce: 0x03, singleUse: 0x80, label: 0x81, mapped: 0x82, fast: 0x83, stun: 0x84 };
const EXT_NAMES = { 1: 'expires', 2: 'sctp', 3: 'listener-ice', 0x80: 'single-use', 0x81: 'label', 0x82: 'mapped', 0x83: 'fast', 0x84: 'stun' };
/** At most this many STUN servers in a token's `stun` extension. */
const MAX_STUN = 4;
/** `fast` feature bits (spec/token.md §5.8). */
const FAST_DTLS13 = 0x01, FAST_START = 0x02;
/** `mapped` protocol codes (spec/token.md §5.6). */
const MAPPING_PROTOCOLS = { 1: 'pcp', 2: 'natpmp', 3: 'upnp' };
const PROFILES = ['native', 'dialer-identity', 'reply'];
const DEFAULT_SCTP = { port: 5000, maxMessageSize: 262144 };
const ICE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const TYPE_PREFERENCE = 126;
/** Label of channel 0 (spec/handshake.md §5.1). */
export const CHANNEL0_LABEL = 'oneway';
/** Seconds a dialer waits for the connection by default. */
export const DEFAULT_TIMEOUT_MS = 10000;

/** An error with a stable code from spec/token.md §8 or spec/handshake.md §8. */
export class OnewayError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
    this.name = 'OnewayError';
  }
}
const fail = (code, message) => { throw new OnewayError(code, message); };

// ---------------------------------------------------------------------------------------------
// Bytes, base64url, base32, CRC-32

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

export function hex(bytes) { return [...bytes].map(b => b.toString(16).padStart(2, '0')).join(''); }
export function fromHex(text) {
  if (text.length % 2 || /[^0-9a-fA-F]/.test(text)) fail('invalid-character', 'not hex');
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function encodeBits(bytes, alphabet, bitsPerChar) {
  let out = '', acc = 0, bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b; bits += 8;
    while (bits >= bitsPerChar) { bits -= bitsPerChar; out += alphabet[(acc >> bits) & ((1 << bitsPerChar) - 1)]; }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += alphabet[(acc << (bitsPerChar - bits)) & ((1 << bitsPerChar) - 1)];
  return out;
}
// Canonical decoding: the length must come from whole bytes and trailing bits must be zero.
function decodeBits(text, alphabet, bitsPerChar) {
  const totalBits = text.length * bitsPerChar;
  const nBytes = Math.floor(totalBits / 8);
  if (totalBits - nBytes * 8 >= bitsPerChar) return null;  // a whole spare character
  const out = new Uint8Array(nBytes);
  let acc = 0, bits = 0, at = 0;
  for (const c of text) {
    acc = (acc << bitsPerChar) | alphabet.indexOf(c); bits += bitsPerChar;
    if (bits >= 8) { bits -= 8; out[at++] = (acc >> bits) & 0xff; }
    acc &= (1 << bits) - 1;
  }
  if (acc !== 0) return null;  // non-zero trailing bits
  return out;
}
export const base64url = (bytes) => encodeBits(bytes, B64URL, 6);
const base64std = (bytes) => encodeBits(bytes, ICE_ALPHABET, 6);
export function fromBase64url(text) {
  const out = [...text].every(c => B64URL.includes(c)) ? decodeBits(text, B64URL, 6) : null;
  if (!out) fail('invalid-text-length', 'not canonical base64url');
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
/** CRC-32 (ISO-HDLC), as spec/token.md §4.3. */
export function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
/** CRC-8 (polynomial 0x07, initial 0, no reflection: CRC-8/SMBUS), as the reply code uses. */
export function crc8(bytes) {
  let c = 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 0x80 ? ((c << 1) ^ 0x07) & 0xff : (c << 1) & 0xff;
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Addresses

function formatIpv6(b) {
  const g = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i] << 8) | b[i + 1]);
  if (g.slice(0, 5).every(x => x === 0) && g[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const h = g.map(x => x.toString(16));
  if (best < 0) return h.join(':');
  return `${h.slice(0, best).join(':')}::${h.slice(best + bestLen).join(':')}`;
}
function parseIpv4(text) {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const b = m.slice(1).map(Number);
  if (b.some(x => x > 255) || m.slice(1).some(x => x.length > 1 && x[0] === '0')) return null;
  return Uint8Array.from(b);
}
function parseIpv6(text) {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.split('::').length > 2) return null;
  let tail4 = null;
  let t = text;
  const lastColon = t.lastIndexOf(':');
  if (t.includes('.')) {
    tail4 = parseIpv4(t.slice(lastColon + 1));
    if (!tail4) return null;
    t = t.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = t.includes('::') ? t.split('::') : [t, null];
  const parse = s => (s === '' ? [] : s.split(':').map(x => (/^[0-9a-fA-F]{1,4}$/.test(x) ? parseInt(x, 16) : NaN)));
  const hg = parse(head), rg = rest === null ? [] : parse(rest);
  if ([...hg, ...rg].some(Number.isNaN)) return null;
  let groups;
  if (rest === null) { if (hg.length !== 8) return null; groups = hg; }
  else { if (hg.length + rg.length > 7) return null; groups = [...hg, ...Array(8 - hg.length - rg.length).fill(0), ...rg]; }
  const out = new Uint8Array(16);
  groups.forEach((x, i) => { out[2 * i] = x >> 8; out[2 * i + 1] = x & 0xff; });
  if (tail4) out.set(tail4, 12);
  return out;
}
function formatUuid(b) {
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
/** The SDP form of a token address: an IP literal or `<uuid>.local`. */
export function addressToString(a) {
  if (a.form === 'ipv4') return [...a.bytes].join('.');
  if (a.form === 'ipv6') return formatIpv6(a.bytes);
  return `${formatUuid(a.bytes)}.local`;
}
/** Parses an SDP candidate address, or returns null when a token cannot carry it. */
export function parseAddress(text) {
  const v4 = parseIpv4(text);
  if (v4) return { form: 'ipv4', bytes: v4 };
  const v6 = parseIpv6(text);
  if (v6) return { form: 'ipv6', bytes: v6 };
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\.local$/i.exec(text);
  if (m) return { form: 'mdns', bytes: fromHex(m.slice(1).join('')) };
  return null;
}
const isUnspecified = a => a.form !== 'mdns' && a.bytes.every(b => b === 0);
const sameCandidate = (x, y) => x.transport === y.transport && x.type === y.type && x.port === y.port
  && x.address.form === y.address.form && hex(x.address.bytes) === hex(y.address.bytes);

// ---------------------------------------------------------------------------------------------
// ICE credentials (spec/token.md §5.3)

const isIceChars = s => /^[A-Za-z0-9+/]*$/.test(s);
function checkIce(ufrag, pwd) {
  return isIceChars(ufrag) && isIceChars(pwd) && ufrag.length >= 4 && ufrag.length <= 256
    && pwd.length >= 22 && pwd.length <= 256;
}
function packIce(ufrag, pwd) {
  const chars = ufrag + pwd;
  const out = [ufrag.length, pwd.length];
  let acc = 0, bits = 0;
  for (const c of chars) {
    acc = (acc << 6) | ICE_ALPHABET.indexOf(c); bits += 6;
    while (bits >= 8) { bits -= 8; out.push((acc >> bits) & 0xff); }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out.push((acc << (8 - bits)) & 0xff);
  return Uint8Array.from(out);
}
function unpackIce(value) {
  if (value.length < 2) return null;
  const [ul, pl] = value;
  const n = ul + pl;
  const packed = value.subarray(2);
  if (packed.length !== Math.ceil((n * 6) / 8)) return null;
  let text = '', acc = 0, bits = 0, at = 0;
  while (text.length < n) {
    while (bits < 6) { acc = (acc << 8) | packed[at++]; bits += 8; }
    bits -= 6; text += ICE_ALPHABET[(acc >> bits) & 63]; acc &= (1 << bits) - 1;
  }
  if (acc !== 0) return null;
  const ufrag = text.slice(0, ul), pwd = text.slice(ul);
  return checkIce(ufrag, pwd) ? { ufrag, pwd } : null;
}

// ---------------------------------------------------------------------------------------------
// Token text and binary forms (spec/token.md §4, §6, §8)

// Returns the token part of `text` and its offset in UTF-16 units: the text itself, or the
// value (after the part's first `=`, or the whole part) of the first `&`-separated fragment
// part whose value starts with `ow`/`OW`, else the whole fragment (spec/token.md §6.2).
function locateToken(text) {
  const hash = text.indexOf('#');
  if (hash < 0) return [text, 0];
  let offset = hash + 1;
  for (const part of text.slice(hash + 1).split('&')) {
    const eq = part.indexOf('=');
    const start = eq < 0 ? 0 : eq + 1;
    const value = part.slice(start);
    if (value.startsWith('ow') || value.startsWith('OW')) return [value, offset + start];
    offset += part.length + 1;
  }
  return [text.slice(hash + 1), hash + 1];
}

// Trims the code points with Unicode's White_Space property (spec/token.md §6.4 step 1);
// String.prototype.trim would also remove U+FEFF, which is not White_Space.
const trimWhiteSpace = text => String(text).replace(/^\p{White_Space}+|\p{White_Space}+$/gu, '');

/** Text (`ow1.…`, `OW1.…` or a URL with one in its fragment) to the binary form. */
export function textToBytes(input) {
  const trimmed = trimWhiteSpace(input);
  if (!trimmed) fail('empty', 'empty input');
  if (te.encode(trimmed).length > MAX_TEXT_LEN) fail('too-long', `longer than ${MAX_TEXT_LEN} bytes of UTF-8`);
  const [token, offset] = locateToken(trimmed);
  const dot = token.indexOf('.');
  if (dot < 0) fail('missing-prefix', 'no ow1. prefix');
  const head = token.slice(0, dot);
  if (!/^[\x00-\x7f]*$/.test(head) || head.length < 3) fail('missing-prefix', 'no ow1. prefix');
  const name = head.slice(0, 2), digits = head.slice(2);
  if (!(name === 'ow' || name === 'OW') || !/^[0-9]+$/.test(digits)) fail('missing-prefix', 'no ow1. prefix');
  const n = Number(digits);
  const version = n > 255 ? 255 : n;
  if (version !== VERSION) fail('unknown-version', `version ${version}`);
  const body = token.slice(dot + 1);
  const [alphabet, bitsPerChar, alphaName] = name === 'ow' ? [B64URL, 6, 'base64url'] : [B32, 5, 'base32'];
  // Positions count code points from the start of the trimmed input (spec/token.md §6.4).
  let position = [...trimmed.slice(0, offset + dot + 1)].length;
  for (const c of body) {
    if (!alphabet.includes(c)) {
      const e = new OnewayError('invalid-character', `${JSON.stringify(c)} is not ${alphaName} (position ${position})`);
      e.position = position;
      throw e;
    }
    position++;
  }
  const bytes = decodeBits(body, alphabet, bitsPerChar);
  if (!bytes) fail('invalid-text-length', `${alphaName} length does not make whole bytes`);
  return { bytes, form: name === 'ow' ? 'compact' : 'qr' };
}

function reader(buf) {
  let pos = 0;
  return {
    get pos() { return pos; },
    take(n, field) {
      if (pos + n > buf.length) fail('truncated', `truncated at byte ${buf.length} (${field})`);
      const out = buf.subarray(pos, pos + n); pos += n; return out;
    },
    byte(field) { return this.take(1, field)[0]; },
  };
}

/** Decodes the binary form (structure, checksum, meaning; not expiry). */
export function decodeBytes(bytes) {
  const r = reader(bytes);
  const version = r.byte('version');
  if (version !== VERSION) fail('unknown-version', `version ${version}`);
  const profileByte = r.byte('profile');
  const fingerprint = Uint8Array.from(r.take(32, 'fingerprint'));
  const secret = Uint8Array.from(r.take(16, 'secret'));
  const count = r.byte('candidate count');
  if (count > MAX_CANDIDATES) fail('too-many-candidates', `${count} candidates`);
  const candidates = [];
  for (let i = 0; i < count; i++) {
    const field = `candidate ${i + 1} of ${count}`;
    const kind = r.byte(field);
    const typeBits = (kind >> 2) & 3, form = kind & 3;
    if (kind & 0xe0 || typeBits === 3 || form === 3) fail('unknown-candidate-kind', `candidate ${i} kind ${kind}`);
    const address = form === 0 ? { form: 'ipv4', bytes: Uint8Array.from(r.take(4, field)) }
      : { form: form === 1 ? 'ipv6' : 'mdns', bytes: Uint8Array.from(r.take(16, field)) };
    const p = r.take(2, field);
    candidates.push({
      transport: kind & 0x10 ? 'tcp' : 'udp', type: ['host', 'srflx', 'relay'][typeBits], address, port: (p[0] << 8) | p[1],
    });
  }
  const extCount = r.byte('extension count');
  if (extCount > MAX_EXTENSIONS) fail('too-many-extensions', `${extCount} extensions`);
  const wire = [];
  for (let i = 0; i < extCount; i++) {
    const field = `extension ${i + 1} of ${extCount}`;
    const type = r.byte(field);
    const len = r.byte(field);
    wire.push({ type, value: Uint8Array.from(r.take(len, field)) });
  }
  const end = r.pos;
  const c = r.take(4, 'checksum');
  if (r.pos < bytes.length) fail('trailing-bytes', `${bytes.length - r.pos} bytes after the checksum`);
  const found = ((c[0] << 24) | (c[1] << 16) | (c[2] << 8) | c[3]) >>> 0;
  if (crc32(bytes.subarray(0, end)) !== found) fail('checksum-mismatch', 'CRC-32 differs: altered or mistyped');
  if (profileByte > 2) fail('unknown-profile', `profile ${profileByte}`);
  const token = newToken(PROFILES[profileByte], fingerprint, secret, candidates);
  let previous = -1;
  for (const e of wire) {
    if (e.type <= previous) fail('extension-not-ascending', `type ${e.type} after ${previous}`);
    previous = e.type;
    const v = e.value;
    const badLength = () => fail('bad-extension-length', `${EXT_NAMES[e.type]}: ${v.length} bytes`);
    if (e.type === EXT.expires) {
      if (v.length !== 4) badLength();
      token.expires = ((v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3]) >>> 0;
    } else if (e.type === EXT.sctp) {
      if (v.length !== 6) badLength();
      const port = (v[0] << 8) | v[1];
      if (port === 0) fail('invalid-extension-value', 'sctp: SCTP port 0');
      token.sctp = { port, maxMessageSize: ((v[2] << 24) | (v[3] << 16) | (v[4] << 8) | v[5]) >>> 0 };
    } else if (e.type === EXT.listenerIce) {
      const ice = unpackIce(v);
      if (!ice) fail('invalid-extension-value', 'listener-ice: not a valid packed ufrag/pwd pair');
      token.listenerIce = ice;
    } else if (e.type === EXT.singleUse) {
      if (v.length !== 0) badLength();
      token.singleUse = true;
    } else if (e.type === EXT.label) {
      let label;
      try { label = td.decode(v); } catch { fail('invalid-extension-value', 'label: not UTF-8'); }
      validateLabel(label);
      token.label = label;
    } else if (e.type === EXT.mapped) {
      if (v.length === 0 || v.length % 2 !== 0) badLength();
      for (let i = 0; i < v.length; i += 2) {
        const protocol = MAPPING_PROTOCOLS[v[i + 1]];
        if (!protocol) fail('invalid-extension-value', 'mapped: unknown mapping protocol');
        token.mapped.push({ index: v[i], protocol });
      }
    } else if (e.type === EXT.fast) {
      if (v.length === 0) badLength();
      const bits = v[0], init = v.slice(1);
      if (((bits & FAST_START) !== 0) === (init.length === 0)) badLength();
      token.fast = { dtls13: (bits & FAST_DTLS13) !== 0, fastStartInit: (bits & FAST_START) ? init : null, otherBits: bits & ~(FAST_DTLS13 | FAST_START) };
      validateFast(token.fast);
    } else if (e.type === EXT.stun) {
      token.stun = decodeStun(v);
    } else if (e.type < 0x80) {
      fail('unknown-required-extension', `type 0x${e.type.toString(16)}`);
    } else {
      token.unknownExtensions.push({ type: e.type, value: v });
    }
  }
  validate(token);
  return token;
}

function validateLabel(label) {
  const n = te.encode(label).length;
  if (n === 0 || n > MAX_LABEL_BYTES) fail('bad-extension-length', `label: ${n} bytes`);
  if (/[\u0000-\u001f\u007f-\u009f]/.test(label)) fail('invalid-extension-value', 'label: contains control characters');
}

function newToken(profile, fingerprint, secret, candidates) {
  return { profile, fingerprint, secret, candidates, expires: null, sctp: null, listenerIce: null, singleUse: false, label: null, mapped: [], fast: null, stun: [], unknownExtensions: [] };
}

/** A transport address `ip:port` / `[ipv6]:port` to `{address, port}`, or null. */
export function parseTransportAddress(text) {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(String(text));
  if (!m) return null;
  const address = m[1] !== undefined ? parseIpv6(m[1]) : parseIpv4(m[2]);
  const port = Number(m[3]);
  if (!address || port > 65535 || (m[3].length > 1 && m[3][0] === '0')) return null;
  return { address: { form: address.length === 4 ? 'ipv4' : 'ipv6', bytes: address }, port };
}
const transportAddressString = (a, port) => `${a.form === 'ipv6' ? `[${addressToString(a)}]` : addressToString(a)}:${port}`;

/** `stun` (0x84): entries `form(1) address(4|16) port(2)`, form 0 = IPv4, 1 = IPv6. */
function decodeStun(v) {
  const out = [];
  for (let at = 0; at < v.length;) {
    const form = v[at];
    const n = form === 0 ? 4 : form === 1 ? 16 : 0;
    if (!n) fail('invalid-extension-value', `stun: address form ${form}`);
    if (at + 1 + n + 2 > v.length) fail('bad-extension-length', `stun: ${v.length} bytes`);
    const address = { form: form === 0 ? 'ipv4' : 'ipv6', bytes: v.slice(at + 1, at + 1 + n) };
    const port = (v[at + 1 + n] << 8) | v[at + 2 + n];
    out.push(transportAddressString(address, port));
    at += 1 + n + 2;
  }
  if (out.length === 0) fail('bad-extension-length', 'stun: 0 bytes');
  validateStun(out);
  return out;
}
function encodeStun(list) {
  return Uint8Array.from(list.flatMap(s => {
    const { address, port } = parseTransportAddress(s);
    return [address.form === 'ipv4' ? 0 : 1, ...address.bytes, port >> 8, port & 255];
  }));
}
/** `stun` (spec/token.md §5): 1 to 4 IP transport addresses, no duplicates, port not 0. */
function validateStun(list) {
  if (!Array.isArray(list)) fail('invalid-extension-value', 'stun: not a list');
  if (list.length > MAX_STUN) fail('invalid-extension-value', `stun: ${list.length} servers (at most ${MAX_STUN})`);
  const seen = new Set();
  for (const s of list) {
    const a = parseTransportAddress(s);
    if (!a) fail('invalid-extension-value', `stun: ${JSON.stringify(s)} is not ip:port`);
    if (a.port === 0) fail('invalid-extension-value', 'stun: port 0');
    const key = transportAddressString(a.address, a.port);
    if (seen.has(key)) fail('invalid-extension-value', `stun: ${key} twice`);
    seen.add(key);
  }
}

/** Checks the rules about meaning (spec/token.md §3, §5); encoding and decoding share them. */
export function validate(t) {
  if (!PROFILES.includes(t.profile)) fail('unknown-profile', t.profile);
  if (t.candidates.length === 0) fail('no-candidates', 'no candidates');
  if (t.candidates.length > MAX_CANDIDATES) fail('too-many-candidates', `${t.candidates.length} candidates`);
  t.candidates.forEach((c, i) => {
    if (c.address.form === 'mdns' && c.type !== 'host') fail('mdns-not-host', `candidate ${i}`);
    if (c.port === 0) fail('zero-port', `candidate ${i}`);
    if (isUnspecified(c.address)) fail('unspecified-address', `candidate ${i}`);
    const first = t.candidates.slice(0, i).findIndex(o => sameCandidate(o, c));
    if (first >= 0) fail('duplicate-candidate', `candidate ${i} repeats candidate ${first}`);
  });
  if (t.listenerIce && (packIce(t.listenerIce.ufrag, t.listenerIce.pwd).length > 255 || !checkIce(t.listenerIce.ufrag, t.listenerIce.pwd))) {
    fail('invalid-extension-value', 'listener-ice: credentials invalid or too long');
  }
  const derives = t.profile === 'native';
  if (derives && t.listenerIce) fail('extension-not-allowed', `listener-ice in profile ${t.profile}`);
  if (!derives && !t.listenerIce) fail('missing-extension', `listener-ice is required in profile ${t.profile}`);
  if (t.label !== null) validateLabel(t.label);
  validateMapped(t);
  if (t.fast) validateFast(t.fast);
  if (t.stun.length > 0) validateStun(t.stun);
  const seen = new Set();
  for (const e of t.unknownExtensions) {
    if (e.type < 0x80) fail('unknown-required-extension', `type 0x${e.type.toString(16)}`);
    if (seen.has(e.type) || e.value.length > 255 || e.type === EXT.singleUse || e.type === EXT.label || e.type === EXT.mapped || e.type === EXT.fast || e.type === EXT.stun) {
      fail('invalid-extension-value', `extension 0x${e.type.toString(16)}`);
    }
    seen.add(e.type);
  }
  if (wireExtensions(t).length > MAX_EXTENSIONS) fail('too-many-extensions', 'more than 16 extensions');
}

/** `mapped` (spec/token.md §5.6): indexes strictly ascending, each naming a UDP srflx candidate
 * or an IPv6 host candidate (a firewall pinhole). */
function validateMapped(t) {
  let previous = -1;
  for (const m of t.mapped) {
    if (m.index <= previous) fail('invalid-extension-value', 'mapped: candidate indexes not strictly ascending');
    previous = m.index;
    const c = t.candidates[m.index];
    if (!c) fail('invalid-extension-value', 'mapped: names a candidate the token does not have');
    const pinhole = c.type === 'host' && c.address.form === 'ipv6';
    if (!(c.type === 'srflx' || pinhole) || c.transport !== 'udp') {
      fail('invalid-extension-value', 'mapped: names a candidate that is not UDP srflx or an IPv6 host');
    }
    if (!Object.values(MAPPING_PROTOCOLS).includes(m.protocol)) fail('invalid-extension-value', 'mapped: unknown mapping protocol');
  }
}

/** `fast` (spec/token.md §5.8): a fast-start value is one whole SCTP INIT chunk (type 1, flags 0,
 * length field = its size, initiate tag not 0). */
function validateFast(f) {
  const init = f.fastStartInit;
  if (!init) return;
  if (init.length < 20 || init.length > 254) fail('bad-extension-length', `fast: INIT chunk of ${init.length} bytes`);
  if (init[0] !== 1 || init[1] !== 0 || ((init[2] << 8) | init[3]) !== init.length) {
    fail('invalid-extension-value', 'fast: fast-start value is not one SCTP INIT chunk');
  }
  if (init[4] === 0 && init[5] === 0 && init[6] === 0 && init[7] === 0) fail('invalid-extension-value', 'fast: SCTP INIT chunk with initiate tag 0');
}

function wireExtensions(t) {
  const out = [];
  if (t.expires !== null) {
    const e = t.expires;
    out.push([EXT.expires, Uint8Array.of(e >>> 24, (e >>> 16) & 255, (e >>> 8) & 255, e & 255)]);
  }
  if (t.sctp) {
    const { port: p, maxMessageSize: m } = t.sctp;
    out.push([EXT.sctp, Uint8Array.of(p >> 8, p & 255, m >>> 24, (m >>> 16) & 255, (m >>> 8) & 255, m & 255)]);
  }
  if (t.listenerIce) out.push([EXT.listenerIce, packIce(t.listenerIce.ufrag, t.listenerIce.pwd)]);
  if (t.singleUse) out.push([EXT.singleUse, new Uint8Array(0)]);
  if (t.label !== null) out.push([EXT.label, te.encode(t.label)]);
  if (t.mapped.length > 0) {
    const code = p => Number(Object.keys(MAPPING_PROTOCOLS).find(k => MAPPING_PROTOCOLS[k] === p));
    out.push([EXT.mapped, Uint8Array.from(t.mapped.flatMap(m => [m.index, code(m.protocol)]))]);
  }
  if (t.fast) {
    const bits = (t.fast.otherBits & ~(FAST_DTLS13 | FAST_START)) | (t.fast.dtls13 ? FAST_DTLS13 : 0) | (t.fast.fastStartInit ? FAST_START : 0);
    out.push([EXT.fast, Uint8Array.from([bits, ...(t.fast.fastStartInit || [])])]);
  }
  if (t.stun.length > 0) out.push([EXT.stun, encodeStun(t.stun)]);
  for (const e of t.unknownExtensions) out.push([e.type, e.value]);
  return out.sort((a, b) => a[0] - b[0]);
}

/** Encodes the binary form (after validate). */
export function encodeToken(t) {
  validate(t);
  const out = [VERSION, PROFILES.indexOf(t.profile), ...t.fingerprint, ...t.secret, t.candidates.length];
  for (const c of t.candidates) {
    const typeBits = ['host', 'srflx', 'relay'].indexOf(c.type);
    const form = ['ipv4', 'ipv6', 'mdns'].indexOf(c.address.form);
    out.push(((c.transport === 'tcp' ? 1 : 0) << 4) | (typeBits << 2) | form, ...c.address.bytes, c.port >> 8, c.port & 255);
  }
  const exts = wireExtensions(t);
  out.push(exts.length);
  for (const [type, value] of exts) out.push(type, value.length, ...value);
  const crc = crc32(Uint8Array.from(out));
  out.push(crc >>> 24, (crc >>> 16) & 255, (crc >>> 8) & 255, crc & 255);
  return Uint8Array.from(out);
}
/** `ow1.` + base64url. */
export const tokenToText = t => `ow${VERSION}.${base64url(encodeToken(t))}`;
/** `OW1.` + base32 (QR alphanumeric mode). */
export const tokenToQrText = t => `OW${VERSION}.${encodeBits(encodeToken(t), B32, 5)}`;
/** Decodes any text form (or a URL with one in its fragment). Expiry is checked separately. */
export function decodeToken(text) { return decodeBytes(textToBytes(text).bytes); }
/** Throws `expired` when the token's expiry has passed at `nowSecs` (Unix seconds). */
export function checkExpiry(t, nowSecs = Math.floor(Date.now() / 1000)) {
  if (t.expires !== null && nowSecs >= t.expires) fail('expired', `the token expired at ${t.expires}`);
}

/** The decoded fields in the shape of spec/vectors/valid.json `decoded`. */
export function tokenToJson(t) {
  return {
    candidates: t.candidates.map(c => ({ address: addressToString(c.address), port: c.port, transport: c.transport, type: c.type })),
    expires: t.expires,
    fast: t.fast ? { dtls13: t.fast.dtls13, fast_start_init_hex: t.fast.fastStartInit ? hex(t.fast.fastStartInit) : null, other_bits: t.fast.otherBits } : null,
    fingerprint: fingerprintToSdp(t.fingerprint),
    label: t.label,
    listener_ice: t.listenerIce ? { pwd: t.listenerIce.pwd, ufrag: t.listenerIce.ufrag } : null,
    mapped: t.mapped.map(m => ({ index: m.index, protocol: m.protocol })),
    profile: t.profile,
    sctp: t.sctp ? { max_message_size: t.sctp.maxMessageSize, port: t.sctp.port } : null,
    secret_hex: hex(t.secret),
    single_use: t.singleUse,
    stun: [...t.stun],
    unknown_extensions: t.unknownExtensions.map(e => ({ type: e.type, value_hex: hex(e.value) })),
  };
}
/** Builds a token from the shape of spec/vectors/valid.json `decoded`. */
export function tokenFromJson(j) {
  const t = newToken(j.profile, fingerprintFromSdp(j.fingerprint), fromHex(j.secret_hex), j.candidates.map(c => ({
    transport: c.transport, type: c.type, port: c.port, address: parseAddress(c.address),
  })));
  t.expires = j.expires;
  t.sctp = j.sctp ? { port: j.sctp.port, maxMessageSize: j.sctp.max_message_size } : null;
  t.listenerIce = j.listener_ice;
  t.singleUse = j.single_use;
  t.label = j.label;
  t.mapped = j.mapped.map(m => ({ index: m.index, protocol: m.protocol }));
  t.stun = j.stun ? [...j.stun] : [];
  t.fast = j.fast ? { dtls13: j.fast.dtls13, fastStartInit: j.fast.fast_start_init_hex ? fromHex(j.fast.fast_start_init_hex) : null, otherBits: j.fast.other_bits } : null;
  t.unknownExtensions = j.unknown_extensions.map(e => ({ type: e.type, value: fromHex(e.value_hex) }));
  return t;
}

export function fingerprintToSdp(fp) { return [...fp].map(b => b.toString(16).padStart(2, '0').toUpperCase()).join(':'); }
export function fingerprintFromSdp(text) {
  const parts = text.trim().split(':');
  if (parts.length !== 32 || parts.some(p => !/^[0-9a-fA-F]{2}$/.test(p))) fail('invalid-fingerprint', 'not 32 hex pairs');
  return Uint8Array.from(parts.map(p => parseInt(p, 16)));
}

// ---------------------------------------------------------------------------------------------
// Derivations (spec/token.md §7), WebCrypto

const subtle = globalThis.crypto.subtle;
async function hkdf(secret, label, length) {
  const key = await subtle.importKey('raw', secret, 'HKDF', false, ['deriveBits']);
  const bits = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: te.encode('oneway/v1'), info: te.encode(label) }, key, length * 8);
  return new Uint8Array(bits);
}
/** Every value derived from the token secret. */
export async function deriveKeys(t) {
  const keys = {
    tokenUfrag: base64std(await hkdf(t.secret, 'oneway/v1 ice-ufrag', 6)),
    listenerPwd: base64std(await hkdf(t.secret, 'oneway/v1 ice-pwd', 18)),
    authKey: await hkdf(t.secret, 'oneway/v1 auth-key', 32),
    dialerIce: null,
  };
  if (t.profile === 'dialer-identity') {
    keys.dialerIce = {
      ufrag: base64std(await hkdf(t.secret, 'oneway/v1 dialer-ice-ufrag', 6)),
      pwd: base64std(await hkdf(t.secret, 'oneway/v1 dialer-ice-pwd', 18)),
    };
  }
  return keys;
}
export async function sha256(bytes) { return new Uint8Array(await subtle.digest('SHA-256', bytes)); }
async function hmacSha256(key, data) {
  const k = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await subtle.sign('HMAC', k, data));
}

// ---------------------------------------------------------------------------------------------
// The dialer certificate of the dialer-identity profile (spec/token.md §7.3): a P-256 key
// derived from the secret and a fixed-template self-signed certificate, signed with RFC 6979
// deterministic ECDSA, so that the native dialer rebuilds the same bytes.

const P = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const G = [0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
  0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n];
const mod = (a, m) => ((a % m) + m) % m;
function inv(a, m) {
  let [r0, r1, s0, s1] = [mod(a, m), m, 1n, 0n];
  while (r1 !== 0n) { const q = r0 / r1; [r0, r1] = [r1, r0 - q * r1]; [s0, s1] = [s1, s0 - q * s1]; }
  return mod(s0, m);
}
function pointAdd(a, b) {
  if (a === null) return b;
  if (b === null) return a;
  let l;
  if (a[0] === b[0]) {
    if (mod(a[1] + b[1], P) === 0n) return null;
    l = mod((3n * a[0] * a[0] - 3n) * inv(2n * a[1], P), P);
  } else {
    l = mod((b[1] - a[1]) * inv(b[0] - a[0], P), P);
  }
  const x = mod(l * l - a[0] - b[0], P);
  return [x, mod(l * (a[0] - x) - a[1], P)];
}
function pointMul(k, pt) {
  let acc = null;
  for (let i = BigInt(k.toString(2).length) - 1n; i >= 0n; i--) {
    acc = pointAdd(acc, acc);
    if ((k >> i) & 1n) acc = pointAdd(acc, pt);
  }
  return acc;
}
const toBig = bytes => BigInt('0x' + (hex(bytes) || '0'));
const toBytes32 = x => fromHex(x.toString(16).padStart(64, '0'));

function derLen(n) { return n < 128 ? [n] : n < 256 ? [0x81, n] : [0x82, n >> 8, n & 255]; }
function der(tag, body) { return concat(Uint8Array.of(tag, ...derLen(body.length)), body); }
function derInt(x) {
  let b = toBytes32(x);
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  b = b.subarray(i);
  return der(0x02, b[0] & 0x80 ? concat(Uint8Array.of(0), b) : b);
}
// Fixed parts of the certificate (spec/token.md §7.3).
const ECDSA_SHA256 = fromHex('300a06082a8648ce3d040302');
const NAME_ONEWAY = fromHex('3011310f300d06035504030c066f6e65776179');
const VALIDITY = fromHex('3020170d3235303130313030303030305a180f39393939313233313233353935395a');
const SPKI_PREFIX = fromHex('3059301306072a8648ce3d020106082a8648ce3d030107034200');

async function rfc6979Sign(d, hash) {
  const x = toBytes32(d), h1 = toBytes32(mod(toBig(hash), N));
  let V = new Uint8Array(32).fill(1), K = new Uint8Array(32);
  K = await hmacSha256(K, concat(V, Uint8Array.of(0), x, h1));
  V = await hmacSha256(K, V);
  K = await hmacSha256(K, concat(V, Uint8Array.of(1), x, h1));
  V = await hmacSha256(K, V);
  for (let i = 0; i < 64; i++) {
    V = await hmacSha256(K, V);
    const k = toBig(V);
    if (k >= 1n && k < N) {
      const r = mod(pointMul(k, G)[0], N);
      const s = mod(inv(k, N) * (toBig(hash) + r * d), N);
      if (r !== 0n && s !== 0n) return [r, s];
    }
    K = await hmacSha256(K, concat(V, Uint8Array.of(0)));
    V = await hmacSha256(K, V);
  }
  fail('internal', 'RFC 6979 found no nonce');
}

/**
 * The dialer's certificate in the dialer-identity profile, from the token secret:
 * `{privateScalar, publicKey, tbs, signature, der, fingerprint}` (bytes).
 */
export async function dialerCertificate(secret) {
  const d = toBig(await hkdf(secret, 'oneway/v1 dialer-cert-key', 32));
  if (d === 0n || d >= N) fail('invalid-secret', 'the secret gives no P-256 key (choose another secret)');
  const Q = pointMul(d, G);
  const publicKey = concat(Uint8Array.of(4), toBytes32(Q[0]), toBytes32(Q[1]));
  const tbs = der(0x30, concat(fromHex('a003020102'), fromHex('020101'), ECDSA_SHA256, NAME_ONEWAY, VALIDITY, NAME_ONEWAY, SPKI_PREFIX, publicKey));
  const [r, s] = await rfc6979Sign(d, await sha256(tbs));
  const signature = der(0x30, concat(derInt(r), derInt(s)));
  const certificate = der(0x30, concat(tbs, ECDSA_SHA256, der(0x03, concat(Uint8Array.of(0), signature))));
  return { privateScalar: toBytes32(d), publicKey, tbs, signature, der: certificate, fingerprint: await sha256(certificate) };
}

// ---------------------------------------------------------------------------------------------
// Reply codes (spec/token.md §12): `owr1.` + base64url(ufrag-len, pwd-len, packed chars, fingerprint, CRC-8)

/**
 * Length in characters of a reply code for a ufrag of `ufragLen` and a pwd of `pwdLen`
 * characters (spec/token.md §12): 80 for Chromium's (4, 24), 92 for Firefox's (8, 32).
 */
export function replyCodeLength(ufragLen, pwdLen) {
  const bytes = 2 + Math.ceil((6 * (ufragLen + pwdLen)) / 8) + 32 + 1;
  return `owr${VERSION}.`.length + Math.ceil((4 * bytes) / 3);
}

/** The reply code a browser dialer shows in the reply profile. */
export function encodeReplyCode({ ufrag, pwd, fingerprint }) {
  if (!checkIce(ufrag, pwd) || ufrag.length > 255 || pwd.length > 255) fail('invalid-reply', 'ICE credentials are not RFC 8839 values');
  const body = concat(packIce(ufrag, pwd), fingerprint);
  return `owr${VERSION}.${base64url(concat(body, Uint8Array.of(crc8(body))))}`;
}
/** Reply code versions this module reads: 1 (browser dialer, §12.1) and 2 (candidates, §12.2). */
const REPLY_VERSIONS = [1, 2];
/** A reply code of version 2 lives this long after `issued`, and may be this far ahead. */
export const REPLY_TTL_SECS = 600, REPLY_SKEW_SECS = 60;
const MAX_REPLY_CANDIDATES = 4;
const REPLY_TAG_LEN = 8;

/**
 * Decodes a reply code of either version (structure and checksum; a version 2 code is verified
 * separately with verifyCandidateReply):
 * - version 1: `{version: 1, ufrag, pwd, fingerprint}`;
 * - version 2: `{version: 2, issued, ufrag, pwd, fast, candidates: [{type, transport, address,
 *   port}], tag, signed}`; `pwd` is null when the code says it is derived (pwd length 0).
 */
export function decodeReplyCode(text) {
  const t = trimWhiteSpace(text);
  const m = /^owr([0-9]+)\.(.*)$/s.exec(t);
  if (!m) fail('missing-prefix', 'a reply code starts with owr1. or owr2.');
  const version = Number(m[1]);
  if (!REPLY_VERSIONS.includes(version)) fail('unknown-version', `reply code version ${m[1]}`);
  if (![...m[2]].every(c => B64URL.includes(c))) fail('invalid-character', 'reply code has a character outside base64url');
  const bytes = decodeBits(m[2], B64URL, 6);
  if (!bytes) fail('invalid-text-length', 'reply code length does not make whole bytes (cut or altered)');
  if (bytes.length < (version === 1 ? 2 + 32 + 1 : 16)) fail('truncated', 'reply code too short');
  const body = bytes.subarray(0, bytes.length - 1);
  if (crc8(body) !== bytes[bytes.length - 1]) fail('checksum-mismatch', 'reply code CRC-8 differs: mistyped');
  if (version === 2) return decodeCandidateBody(body);
  const ice = unpackIce(body.subarray(0, body.length - 32));
  if (!ice) fail('invalid-reply', 'reply code credentials are malformed');
  return { version: 1, ...ice, fingerprint: Uint8Array.from(body.subarray(body.length - 32)) };
}

// Packs `chars` (ICE characters) 6 bits each, zero-padded to whole bytes (spec/token.md §5.3).
function packChars(chars) {
  const out = [];
  let acc = 0, bits = 0;
  for (const c of chars) {
    acc = (acc << 6) | ICE_ALPHABET.indexOf(c); bits += 6;
    while (bits >= 8) { bits -= 8; out.push((acc >> bits) & 0xff); }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out.push((acc << (8 - bits)) & 0xff);
  return out;
}
// The inverse for `n` characters: null unless `packed` is exactly their packing.
function unpackChars(packed, n) {
  if (packed.length !== Math.ceil((n * 6) / 8)) return null;
  let text = '', acc = 0, bits = 0, at = 0;
  while (text.length < n) {
    while (bits < 6) { acc = (acc << 8) | packed[at++]; bits += 8; }
    bits -= 6; text += ICE_ALPHABET[(acc >> bits) & 63]; acc &= (1 << bits) - 1;
  }
  return acc === 0 ? text : null;
}

function decodeCandidateBody(body) {
  const bad = why => fail('invalid-reply', `reply code: ${why}`);
  const r = { at: 0, take(n) { if (this.at + n > body.length) bad('ends early'); const out = body.subarray(this.at, this.at + n); this.at += n; return out; } };
  const flags = r.take(1)[0];
  const count = flags & 7;
  if (count < 1 || count > MAX_REPLY_CANDIDATES) bad(`${count} candidates`);
  if (flags & 0xf0) bad('reserved flag bits set');
  const i = r.take(4);
  const issued = ((i[0] << 24) | (i[1] << 16) | (i[2] << 8) | i[3]) >>> 0;
  const [ul, pl] = r.take(2);
  if (ul < 4) bad(`ufrag of ${ul} characters`);
  if (pl !== 0 && pl < 22) bad(`pwd of ${pl} characters`);
  const chars = unpackChars(r.take(Math.ceil((6 * (ul + pl)) / 8)), ul + pl);
  if (chars === null) bad('packed ICE credentials are malformed');
  const candidates = [];
  for (let k = 0; k < count; k++) {
    const kind = r.take(1)[0];
    const form = kind & 3, typeBits = (kind >> 2) & 3;
    if (kind & 0xf0) bad(`candidate ${k}: not UDP or unknown kind bits`);
    if (form > 1) bad(`candidate ${k}: address form ${form}`);
    if (typeBits > 2) bad(`candidate ${k}: type ${typeBits}`);
    const address = { form: form === 0 ? 'ipv4' : 'ipv6', bytes: Uint8Array.from(r.take(form === 0 ? 4 : 16)) };
    const p = r.take(2);
    const port = (p[0] << 8) | p[1];
    if (port === 0) bad(`candidate ${k}: port 0`);
    candidates.push({ transport: 'udp', type: ['host', 'srflx', 'relay'][typeBits], address, port });
  }
  const signed = Uint8Array.from(body.subarray(0, r.at));
  const tag = Uint8Array.from(r.take(REPLY_TAG_LEN));
  if (r.at !== body.length) bad(`${body.length - r.at} bytes after the tag`);
  return {
    version: 2, issued, fast: (flags & 8) !== 0, ufrag: chars.slice(0, ul), pwd: pl ? chars.slice(ul) : null,
    candidates, tag, signed,
  };
}

/**
 * Length in characters of a version 2 reply code with credentials of `ufragLen` and `pwdLen`
 * characters and `candidates` (`{address: {form}}` or forms 'ipv4'/'ipv6'): 64 for Chromium's
 * (4, 24) with one IPv4 candidate.
 */
export function candidateReplyLength(ufragLen, pwdLen, candidates) {
  const addr = candidates.reduce((n, c) => n + 3 + ((c.address?.form ?? c) === 'ipv6' ? 16 : 4), 0);
  const bytes = 7 + Math.ceil((6 * (ufragLen + pwdLen)) / 8) + addr + REPLY_TAG_LEN + 1;
  return 'owr2.'.length + Math.ceil((4 * bytes) / 3);
}

/** The key that signs a token's version 2 reply codes: HKDF(secret, "oneway/v1 reply-key"). */
export async function replyKey(token) { return hkdf(token.secret, 'oneway/v1 reply-key', 32); }
/**
 * The reply pwd (spec/token.md §7): a dialer's ICE pwd when its version 2 reply code does not
 * carry one: base64 of the first 18 bytes of HMAC-SHA256(reply key, "oneway/v1 reply-pwd" ‖ ufrag).
 */
export async function replyPwd(key, dialerUfrag) {
  return base64std((await hmacSha256(key, concat(te.encode('oneway/v1 reply-pwd'), te.encode(dialerUfrag)))).subarray(0, 18));
}
async function replyTag(key, signed) {
  return (await hmacSha256(key, concat(te.encode('oneway/v1 reply'), signed))).subarray(0, REPLY_TAG_LEN);
}

/**
 * A version 2 reply code (`owr2.`, spec/token.md §12.2): the dialer's ICE credentials and up
 * to four of its UDP candidates, signed with the token's reply key. `pwd` null or '' means
 * derived (native dialers only); a browser always carries its pwd. `candidates` are
 * `{type, address, port}` with `address` an IP literal (or a parsed address).
 */
export async function encodeCandidateReply({ issued = Math.floor(Date.now() / 1000), ufrag, pwd, candidates, fast = false }, key) {
  const bad = why => fail('invalid-reply', why);
  const p = pwd || '';
  if (!isIceChars(ufrag) || ufrag.length < 4 || ufrag.length > 255) bad('ufrag is not 4 to 255 ICE characters');
  if (!isIceChars(p) || (p.length !== 0 && (p.length < 22 || p.length > 255))) bad('pwd is not 22 to 255 ICE characters');
  if (!Array.isArray(candidates) || candidates.length < 1 || candidates.length > MAX_REPLY_CANDIDATES) bad('1 to 4 candidates');
  if (!Number.isInteger(issued) || issued < 0 || issued > 0xffffffff) bad('issued is not a u32');
  const out = [candidates.length | (fast ? 8 : 0), issued >>> 24, (issued >>> 16) & 255, (issued >>> 8) & 255, issued & 255, ufrag.length, p.length, ...packChars(ufrag + p)];
  for (const c of candidates) {
    const address = typeof c.address === 'string' ? parseAddress(c.address) : c.address;
    const typeBits = ['host', 'srflx', 'relay'].indexOf(c.type);
    if (!address || address.form === 'mdns') bad('a candidate address is not an IP literal');
    if (typeBits < 0 || (c.transport && c.transport !== 'udp')) bad('a candidate is not UDP host, srflx or relay');
    if (!Number.isInteger(c.port) || c.port < 1 || c.port > 65535) bad('a candidate port is not 1 to 65535');
    out.push((typeBits << 2) | (address.form === 'ipv4' ? 0 : 1), ...address.bytes, c.port >> 8, c.port & 255);
  }
  const signed = Uint8Array.from(out);
  const body = concat(signed, await replyTag(key, signed));
  return `owr2.${base64url(concat(body, Uint8Array.of(crc8(body))))}`;
}

/**
 * Checks a decoded version 2 reply code against a token's reply key at `nowSecs`:
 * `reply-foreign` (another token's, or altered), `reply-expired` (issued more than 600 s
 * ago), `reply-clock-skew` (issued more than 60 s ahead). Returns the reply.
 */
export async function verifyCandidateReply(reply, key, nowSecs = Math.floor(Date.now() / 1000)) {
  if (reply.version !== 2) fail('invalid-reply', `a version ${reply.version} reply code has no signature`);
  if (!equalBytes(await replyTag(key, reply.signed), reply.tag)) fail('reply-foreign', 'the reply code was not made for this token');
  if (reply.issued + REPLY_TTL_SECS < nowSecs) fail('reply-expired', `the reply code was issued at ${reply.issued}, more than ${REPLY_TTL_SECS} s ago`);
  if (reply.issued > nowSecs + REPLY_SKEW_SECS) fail('reply-clock-skew', `the reply code was issued at ${reply.issued}, ahead of this clock (${nowSecs})`);
  return reply;
}

/** Decodes and verifies a version 2 reply code for `token` (see verifyCandidateReply). */
export async function decodeCandidateReply(text, token, nowSecs) {
  const reply = decodeReplyCode(text);
  if (reply.version !== 2) fail('invalid-reply', 'not a version 2 reply code');
  return verifyCandidateReply(reply, await replyKey(token), nowSecs);
}

/** The candidates of a decoded reply code as peer-contract strings (`srflx udp 1.2.3.4:5`). */
export const replyCandidateStrings = reply => (reply.candidates || []).map(candidateString);

// ---------------------------------------------------------------------------------------------
// SDP (spec/token.md §9)

function parseSections(sdp) {
  const session = { attrs: [] }, media = [];
  sdp.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    const current = media.length ? media[media.length - 1] : session;
    if (line.startsWith('m=')) {
      const f = line.slice(2).split(/\s+/).filter(Boolean);
      media.push({ media: f[0] || '', proto: f[2] || '', firstFormat: f[3] || '', attrs: [] });
    } else if (line.startsWith('a=')) {
      const a = line.slice(2);
      const colon = a.indexOf(':');
      current.attrs.push({ line: index + 1, name: colon < 0 ? a : a.slice(0, colon), value: colon < 0 ? '' : a.slice(colon + 1).trim() });
    }
  });
  return { session, media };
}
const attr = (s, name) => { const a = s.attrs.find(x => x.name === name); return a ? a.value : null; };
const isData = s => s.media === 'application' && s.proto.includes('DTLS/SCTP');
function readIce(data, session) {
  const ufrag = attr(data, 'ice-ufrag') ?? attr(session, 'ice-ufrag');
  const pwd = attr(data, 'ice-pwd') ?? attr(session, 'ice-pwd');
  if (ufrag === null || pwd === null) fail('missing-ice-credentials', 'no a=ice-ufrag/a=ice-pwd');
  if (!checkIce(ufrag, pwd)) fail('invalid-ice-credentials', 'ICE credentials are not RFC 8839 values');
  return { ufrag, pwd };
}
const candidatePriority = i => TYPE_PREFERENCE * 2 ** 24 + (65535 - i) * 256 + 255;
/** The `candidate:` attribute value of the token candidate at `index` (§9.2). */
export function candidateAttribute(i, c) {
  let line = `candidate:${i + 1} 1 ${c.transport} ${candidatePriority(i)} ${addressToString(c.address)} ${c.port} typ ${c.type}`;
  if (c.type !== 'host') line += ` raddr ${c.address.form === 'ipv6' ? '::' : '0.0.0.0'} rport 0`;
  if (c.transport === 'tcp') line += ' tcptype passive';
  return line;
}
function session(mid, lite) {
  return `v=0\r\no=- 0 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE ${mid}\r\n${lite ? 'a=ice-lite\r\n' : ''}`;
}
function dataSection(t, mid, ufrag, pwd, setup, fingerprint = t.fingerprint, candidates = true) {
  const sctp = t.sctp || DEFAULT_SCTP;
  let s = 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n'
    + `a=mid:${mid}\r\na=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n`
    + `a=fingerprint:sha-256 ${fingerprintToSdp(fingerprint)}\r\na=setup:${setup}\r\n`
    + `a=sctp-port:${sctp.port}\r\na=max-message-size:${sctp.maxMessageSize}\r\n`;
  if (candidates) {
    t.candidates.forEach((c, i) => { s += `a=${candidateAttribute(i, c)}\r\n`; });
    s += 'a=end-of-candidates\r\n';
  }
  return s;
}

/** native profile: the listener's answer to the dialer's own offer (§9.2). */
export async function nativeAnswer(t, dialerOffer) {
  if (t.profile !== 'native') fail('unsupported-profile', `nativeAnswer needs a native token, not ${t.profile}`);
  const { session: sess, media } = parseSections(dialerOffer);
  const data = media.find(isData);
  if (!data) fail('no-application-section', 'the offer has no data m-section');
  const ice = readIce(data, sess);
  if (ice.pwd.length > 247) fail('invalid-ice-credentials', 'dialer pwd longer than 247 characters');
  const keys = await deriveKeys(t);
  const mid = attr(data, 'mid') ?? '0';
  let sdp = session(mid, true);
  for (const s of media) {
    const m = attr(s, 'mid') ?? '';
    if (s === data) sdp += dataSection(t, m, `${keys.tokenUfrag}+${ice.pwd}`, keys.listenerPwd, 'passive');
    else sdp += `m=${s.media} 0 ${s.proto} ${s.firstFormat}\r\nc=IN IP4 0.0.0.0\r\na=mid:${m}\r\n`;
  }
  return sdp;
}
/** dialer-identity and reply profiles: the listener's offer rebuilt from the token (§9.2). */
export function listenerOffer(t) {
  if (!t.listenerIce || t.profile === 'native') fail('unsupported-profile', 'listenerOffer needs a dialer-identity or reply token');
  return session('0', false) + dataSection(t, '0', t.listenerIce.ufrag, t.listenerIce.pwd, 'actpass');
}
/**
 * The dialer's answer as the listener writes it for itself (dialer-identity: from the token;
 * reply: from the reply code): the dialer's ICE credentials and fingerprint, `a=setup:active`,
 * no candidates (the listener learns them from the dialer's checks).
 */
export function dialerAnswerFor(t, mid, dialer) {
  return session(mid, false) + dataSection(t, mid, dialer.ufrag, dialer.pwd, 'active', dialer.fingerprint, false);
}

/** Reads a listener's complete offer into a token (spec/token.md §9.1). */
export function tokenFromOffer(sdp, { profile, secret, candidateFilter = () => true }) {
  const { session: sess, media } = parseSections(sdp);
  const data = media.find(isData);
  if (!data) fail('no-application-section', 'the offer has no data m-section');
  const fps = [...data.attrs, ...sess.attrs].filter(a => a.name === 'fingerprint').map(a => a.value);
  const fpLine = fps.find(v => v.split(' ')[0].toLowerCase() === 'sha-256');
  if (!fpLine) fail('missing-fingerprint', 'no sha-256 fingerprint');
  const fingerprint = fingerprintFromSdp(fpLine.slice(fpLine.indexOf(' ') + 1));
  const ice = readIce(data, sess);
  const ranked = [], skipped = [];
  for (const a of data.attrs.filter(x => x.name === 'candidate')) {
    const f = a.value.split(/\s+/);
    if (f.length < 8 || f[6] !== 'typ') { skipped.push({ line: a.line, reason: 'malformed' }); continue; }
    const tcptype = f.indexOf('tcptype') >= 0 ? f[f.indexOf('tcptype') + 1] : null;
    const tr = f[2].toLowerCase();
    const address = parseAddress(f[4]);
    const port = Number(f[5]);
    let reason = null;
    if (f[1] !== '1') reason = 'component is not 1';
    else if (tr === 'tcp' && tcptype !== 'passive') reason = 'TCP candidate that is not passive';
    else if (tr !== 'udp' && tr !== 'tcp') reason = 'unknown transport';
    else if (!['host', 'srflx', 'relay'].includes(f[7])) reason = `${f[7]} candidates are never published`;
    else if (!address) reason = 'address is neither an IP literal nor a <uuid>.local name';
    else if (!port || isUnspecified(address)) reason = 'port 0 or unspecified address';
    else if (address.form === 'mdns' && f[7] !== 'host') reason = 'mDNS name on a non-host candidate';
    const c = reason ? null : { transport: tr, type: f[7], address, port };
    if (c && !candidateFilter(c)) reason = 'excluded by the candidate filter';
    else if (c && ranked.some(x => sameCandidate(x.c, c))) reason = 'duplicate of an earlier candidate';
    if (reason) skipped.push({ line: a.line, reason });
    else ranked.push({ priority: Number(f[3]), c });
  }
  ranked.sort((x, y) => y.priority - x.priority);
  if (!ranked.length) fail('no-usable-candidates', `no usable candidate (${skipped.length} skipped)`);
  const t = newToken(profile, fingerprint, secret, ranked.slice(0, MAX_CANDIDATES).map(x => x.c));
  const port = Number(attr(data, 'sctp-port') ?? (attr(data, 'sctpmap') || '').split(' ')[0]) || 5000;
  // At most 256 KiB (Chromium's value): Firefox offers 1073741823, and a webrtc-rs dialer fails
  // its handshake with a token that carries it ("invalid state machine transition"). A
  // smaller advertised limit is always safe: the dialer sends less than the listener accepts.
  const mms = Math.min(Number(attr(data, 'max-message-size') ?? 65536), DEFAULT_SCTP.maxMessageSize);
  if (port !== 5000 || mms !== 262144) t.sctp = { port, maxMessageSize: mms };
  if (profile !== 'native') t.listenerIce = ice;
  validate(t);
  return { token: t, mid: attr(data, 'mid') ?? '0', skipped };
}

// ---------------------------------------------------------------------------------------------
// The proof and channel-0 messages (spec/handshake.md §5, §6)

/** HMAC-SHA256(auth-key, label ‖ listener-fp ‖ dialer-fp). */
export async function proofMac(authKey, role, listenerFp, dialerFp) {
  return hmacSha256(authKey, concat(te.encode(`oneway/v1 proof ${role}`), listenerFp, dialerFp));
}
function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}
const MESSAGE_TYPES = ['proof', 'ice-restart', 'ice-restart-answer', 'offer', 'answer', 'close', 'error'];
/** Parses a channel-0 message; throws `auth-failed`-worthy errors as code `malformed`. */
export function parseMessage(text) {
  if (typeof text !== 'string' || text.length > 65536) fail('malformed', 'not a text message of at most 65536 bytes');
  let m;
  try { m = JSON.parse(text); } catch { fail('malformed', 'not JSON'); }
  if (!m || typeof m !== 'object' || Array.isArray(m)) fail('malformed', 'not a JSON object');
  if (m.v !== 1) fail('malformed', 'missing or different "v"');
  if (!MESSAGE_TYPES.includes(m.type)) fail('unsupported', `unknown type ${JSON.stringify(m.type)}`);
  return m;
}

/**
 * SHA-256 fingerprints of both DTLS certificates of this session (spec/handshake.md §5.2), or
 * null while they are not known yet. Sources, in order:
 * 1. `getStats()`: the `transport` stat's `localCertificateId` / `remoteCertificateId` and their
 *    `RTCCertificateStats` (Chromium). Both come from this DTLS handshake.
 * 2. Otherwise (Firefox ESR 153 has no certificate stats): the remote certificate of this
 *    handshake from `pc.sctp.transport.getRemoteCertificates()` (SHA-256 of its DER, the first
 *    certificate of the chain), and the local fingerprint from the local description's
 *    `a=fingerprint:sha-256` of the data section (the certificate the browser presents).
 * Resolves to `{local, remote, source}` with `source` = `stats` or `transport`.
 */
export async function certificateFingerprints(pc) {
  const fromStats = await statsFingerprints(pc);
  if (fromStats) return { ...fromStats, source: 'stats' };
  const remote = await remoteCertificateFingerprint(pc);
  const local = localDescriptionFingerprint(pc);
  return local && remote ? { local, remote, source: 'transport' } : null;
}

async function statsFingerprints(pc) {
  const stats = await pc.getStats();
  let transport = null;
  stats.forEach(s => { if (s.type === 'transport' && s.localCertificateId && s.remoteCertificateId) transport = s; });
  if (!transport) return null;
  const cert = id => {
    const s = stats.get(id);
    return s && s.fingerprintAlgorithm === 'sha-256' ? fingerprintFromSdp(s.fingerprint) : null;
  };
  const local = cert(transport.localCertificateId), remote = cert(transport.remoteCertificateId);
  return local && remote ? { local, remote } : null;
}

/** SHA-256 of the DER of the peer's DTLS certificate, from the SCTP transport's DTLS transport. */
async function remoteCertificateFingerprint(pc) {
  const dtls = pc.sctp && pc.sctp.transport;
  if (!dtls || typeof dtls.getRemoteCertificates !== 'function' || dtls.state !== 'connected') return null;
  const certs = dtls.getRemoteCertificates();
  if (!certs || !certs.length) return null;
  return sha256(new Uint8Array(certs[0]));
}

/** The `a=fingerprint:sha-256` of the data section (or session) of the local description. */
function localDescriptionFingerprint(pc) {
  const sdp = pc.currentLocalDescription?.sdp || pc.localDescription?.sdp;
  if (!sdp) return null;
  const { session: sess, media } = parseSections(sdp);
  const data = media.find(isData);
  const line = [...(data ? data.attrs : []), ...sess.attrs]
    .find(a => a.name === 'fingerprint' && a.value.split(' ')[0].toLowerCase() === 'sha-256');
  return line ? fingerprintFromSdp(line.value.slice(line.value.indexOf(' ') + 1)) : null;
}

// The selected candidate pair: the `transport` stat's `selectedCandidatePairId` (Chromium), else
// the `candidate-pair` stat marked `selected` (Firefox), else a nominated succeeded pair.
async function selectedPair(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach(s => { if (s.type === 'transport' && s.selectedCandidatePairId && !pair) pair = stats.get(s.selectedCandidatePairId) || null; });
  if (!pair) stats.forEach(s => { if (s.type === 'candidate-pair' && s.selected && !pair) pair = s; });
  if (!pair) stats.forEach(s => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && !pair) pair = s; });
  if (!pair) return null;
  const l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
  // Chromium hides the address of peer-reflexive remote candidates in getStats().
  const fmt = c => {
    if (!c) return '?';
    const a = c.address || c.ip || '(hidden)';
    return `${a.includes(':') ? `[${a}]` : a}:${c.port}`;
  };
  return { local: fmt(l), remote: fmt(r) };
}

// ---------------------------------------------------------------------------------------------
// Peers

/** A clock for the peer-contract `t_ms` fields. */
function clock() {
  const start = performance.now();
  return () => Math.round((performance.now() - start) * 100) / 100;
}
const sleep = ms => new Promise(r => setTimeout(r, ms));
// `code` may be a function, called when the time is up (the cause depends on how far it got).
function withTimeout(promise, ms, code, message) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new OnewayError(typeof code === 'function' ? code() : code, message)), ms);
  })]).finally(() => clearTimeout(timer));
}
async function waitGathering(pc, ms) {
  const start = performance.now();
  while (pc.iceGatheringState !== 'complete' && performance.now() - start < ms) await sleep(20);
}
function candidateString(c) {
  const a = addressToString(c.address);
  return `${c.type} ${c.transport} ${c.address.form === 'ipv6' ? `[${a}]` : a}:${c.port}`;
}

/**
 * One authenticated connection. Events are delivered to `onevent` (peer-contract shapes);
 * application channels open with `openChannel(label)`; `ondatachannel(channel)` reports the
 * peer's; `addTrack` renegotiates media in band (channel-0 `offer`/`answer`).
 */
export class Connection {
  constructor(pc, ch0, role, emit, pending = []) {
    this.pc = pc;
    this.ch0 = ch0;
    this.role = role;
    this.emit = emit;
    this.dcHandler = null;
    this.early = [];
    this.ontrack = null;
    this.makingOffer = false;
    this.pendingAnswer = null;
    this.closed = false;
    // Channels the peer opens before the application set `ondatachannel` are kept, with their
    // first messages, and handed over when it does: nothing sent right after open is lost.
    pc.ondatachannel = e => {
      const ch = e.channel;
      if (this.dcHandler) { this.dcHandler(ch); return; }
      const buffered = [];
      ch.onmessage = m => buffered.push(m);
      this.early.push([ch, buffered]);
    };
    pc.ontrack = e => { if (this.ontrack) this.ontrack(e); };
    const handle = data => this.onControl(data).catch(err => this.emit({ event: 'error', code: err.code || 'internal', message: String(err.message || err) }));
    ch0.onmessage = e => handle(e.data);
    ch0.onclose = () => this.markClosed('closed-by-peer');
    pending.forEach(handle);
  }

  /** Handler for data channels the peer opens (channels opened earlier are delivered now). */
  set ondatachannel(fn) {
    this.dcHandler = fn;
    if (!fn) return;
    for (const [ch, buffered] of this.early.splice(0)) {
      ch.onmessage = null;
      fn(ch);
      if (ch.onmessage) buffered.forEach(m => ch.onmessage(m));
    }
  }

  get ondatachannel() { return this.dcHandler; }

  markClosed(code) {
    if (this.closed) return;
    this.closed = true;
    this.emit({ event: 'closed', code });
  }

  send(message) { this.ch0.send(JSON.stringify({ v: 1, ...message })); }

  async onControl(text) {
    let m;
    try { m = parseMessage(text); } catch (e) {
      this.send({ type: 'error', code: e.code === 'unsupported' ? 'unsupported' : 'malformed', reason: e.message });
      return;
    }
    if (m.type === 'offer') {
      // The dialer is the polite peer (spec/handshake.md §6.2): its own offer waiting for an
      // answer is rolled back (setRemoteDescription does that) and sent again once the
      // listener's is answered. The listener ignores the colliding offer.
      const collision = this.makingOffer || this.pc.signalingState !== 'stable';
      if (collision && this.role === 'listener') return;
      try {
        await this.pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
      } catch (e) {
        // Both sides keep the previous descriptions (§6.2).
        this.send({ type: 'error', code: 'renegotiation-failed', reason: String(e.message || e) });
        return;
      }
      await this.pc.setLocalDescription();
      this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
      this.emit({ event: 'renegotiated', direction: 'answered' });
      if (collision && this.pendingAnswer) {
        await this.pc.setLocalDescription();
        this.send({ type: 'offer', sdp: this.pc.localDescription.sdp });
      }
    } else if (m.type === 'answer') {
      if (this.pc.signalingState !== 'have-local-offer') {
        this.send({ type: 'error', code: 'unexpected-answer', reason: 'no offer of this side is waiting for an answer' });
        return;
      }
      await this.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      if (this.pendingAnswer) { this.pendingAnswer.resolve(); this.pendingAnswer = null; }
      this.emit({ event: 'renegotiated', direction: 'offered' });
    } else if (m.type === 'close') {
      this.markClosed('closed-by-peer');
      this.pc.close();
    } else if (m.type === 'error') {
      // A refused offer is rolled back: both sides keep the previous descriptions (§6.2).
      if (this.pendingAnswer && this.pc.signalingState === 'have-local-offer') {
        await this.pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      }
      if (this.pendingAnswer) { this.pendingAnswer.reject(new OnewayError(m.code, m.reason || m.code)); this.pendingAnswer = null; }
      this.emit({ event: 'peer-error', code: m.code, reason: m.reason || '' });
    } else if (m.type === 'ice-restart' || m.type === 'ice-restart-answer') {
      // A browser cannot set ICE credentials without SDP: say so (spec/handshake.md §6.1).
      this.send({ type: 'error', code: 'unsupported', reason: 'browser peers restart ICE with an SDP offer' });
    }
  }

  /** Opens an application channel (DCEP) and resolves when it is open. */
  openChannel(label, options = {}) {
    const ch = this.pc.createDataChannel(label, options);
    return withTimeout(new Promise((resolve, reject) => {
      ch.onopen = () => resolve(ch);
      ch.onerror = e => reject(new OnewayError('channel-failed', String(e.error || e)));
    }), 10000, 'channel-timeout', `channel ${label} did not open in 10 s`);
  }

  /**
   * Offers the current local description over channel 0 (after a track change); resolves when
   * the peer's answer is applied, rejects with the peer's `error` code or after 10 s.
   */
  async renegotiate() {
    if (this.pendingAnswer) throw new OnewayError('renegotiation-pending', 'an offer is already waiting for its answer');
    const done = new Promise((resolve, reject) => { this.pendingAnswer = { resolve, reject }; });
    this.makingOffer = true;
    try {
      await this.pc.setLocalDescription();
      this.send({ type: 'offer', sdp: this.pc.localDescription.sdp });
    } catch (e) {
      this.pendingAnswer = null;
      throw e;
    } finally { this.makingOffer = false; }
    try {
      await withTimeout(done, 10000, 'renegotiation-timeout', 'no answer in 10 s');
    } finally { this.pendingAnswer = null; }
  }

  /** Adds a track and renegotiates over channel 0; resolves with its sender once answered. */
  async addTrack(track, ...streams) {
    const sender = this.pc.addTrack(track, ...streams);
    await this.renegotiate();
    return sender;
  }

  /** The transceiver of a sender this side added, or a `no-track` error. */
  transceiverOf(sender) {
    const t = this.pc.getTransceivers().find(x => x.sender === sender);
    if (!t) throw new OnewayError('no-track', 'no transceiver has this sender');
    return t;
  }

  /**
   * Removes a track this side added: its transceiver stops (the m-line is rejected, port 0)
   * and the change is renegotiated over channel 0.
   */
  async removeTrack(sender) {
    this.transceiverOf(sender).stop();
    await this.renegotiate();
  }

  /** Sets the direction of a sender's transceiver (`sendrecv`, `recvonly`, …) and renegotiates. */
  async setDirection(sender, direction) {
    this.transceiverOf(sender).direction = direction;
    await this.renegotiate();
  }

  /** Closes with a `close` message. */
  close(reason = 'closed') {
    if (this.closed) return;
    try { this.send({ type: 'close', reason }); } catch { /* channel already gone */ }
    this.markClosed('closed-locally');
    setTimeout(() => this.pc.close(), 50);
  }
}

// Tracks ICE, DTLS and channel-0 progress, emitting peer-contract events.
function progress(pc, ch0, t, emit, startedAt) {
  const stages = {};
  const mark = (name, event) => { if (stages[name] === undefined) { stages[name] = t() - startedAt; emit({ event }); } };
  pc.addEventListener('iceconnectionstatechange', () => {
    if (['connected', 'completed'].includes(pc.iceConnectionState)) mark('ice', 'ice-connected');
  });
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'connected') mark('dtls', 'dtls-connected');
  });
  const open = new Promise(resolve => { ch0.addEventListener('open', () => { mark('channel', 'channel-open'); resolve(); }); });
  const failed = new Promise((_, reject) => {
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed') {
        reject(new OnewayError(stages.ice === undefined ? 'ice-timeout' : 'dtls-timeout', `connection ${pc.connectionState}`));
      }
    });
  });
  return { stages, open, failed };
}

// Queues channel-0 messages from the moment the channel exists, so that none is lost between
// `open` and the proof handler (the peer may send its proof at once).
function inbox(ch0) {
  const queue = [];
  let waiter = null;
  ch0.onmessage = e => {
    if (waiter) { const w = waiter; waiter = null; w(e.data); } else queue.push(e.data);
  };
  return {
    next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise(resolve => { waiter = resolve; })),
    drain: () => queue.splice(0),
  };
}

// The exchange of proofs on channel 0 (spec/handshake.md §5.2), for either role.
// A listener's `admit` (optional) runs once the dialer's proof verified and before the
// listener's own proof is sent (spec/handshake.md §7): it throws to refuse the dialer, whose
// `error` then carries the thrown code.
async function authenticate(pc, ch0, box, role, authKey, expectedRemoteFp, admit = null) {
  let fps = null;
  for (let i = 0; i < 50 && !fps; i++) { fps = await certificateFingerprints(pc); if (!fps) await sleep(10); }
  if (!fps) fail('auth-failed', 'neither getStats() nor the DTLS transport shows both certificates');
  if (expectedRemoteFp && !equalBytes(fps.remote, expectedRemoteFp)) fail('fingerprint-mismatch', 'the peer certificate is not the one the token names');
  const [listenerFp, dialerFp] = role === 'dialer' ? [fps.remote, fps.local] : [fps.local, fps.remote];
  const peerRole = role === 'dialer' ? 'listener' : 'dialer';
  const expected = await proofMac(authKey, peerRole, listenerFp, dialerFp);
  const mine = await proofMac(authKey, role, listenerFp, dialerFp);
  const received = box.next().then(text => {
    let m;
    try { m = parseMessage(text); } catch (err) { throw new OnewayError('auth-failed', `before authentication: ${err.message}`); }
    if (m.type === 'error') throw new OnewayError(m.code || 'auth-failed', m.reason || 'refused');
    if (m.type !== 'proof' || typeof m.mac !== 'string') throw new OnewayError('auth-failed', `${m.type} before the proof`);
    let mac;
    try { mac = fromBase64url(m.mac); } catch { throw new OnewayError('auth-failed', 'proof is not base64url'); }
    if (!equalBytes(mac, expected)) throw new OnewayError('auth-failed', 'in-band proof does not match');
  });
  const send = () => ch0.send(JSON.stringify({ v: 1, type: 'proof', mac: base64url(mine) }));
  if (role === 'dialer') { send(); await received; } else {
    try { await received; if (admit) admit(); } catch (e) {
      ch0.send(JSON.stringify({ v: 1, type: 'error', code: e.code || 'auth-failed', reason: e.message }));
      throw e;
    }
    send();
  }
}

// getStats() may answer from a cache a few tens of ms old (Chromium), from before the pair was
// selected: the selected pair is asked again, every 20 ms for at most 500 ms.
async function connectedEvent(pc, stages) {
  let selected = null;
  for (let i = 0; i < 25 && !selected; i++) {
    selected = await selectedPair(pc);
    if (!selected) await sleep(20);
  }
  return { event: 'connected', selected, stages: { ...stages } };
}

/** Loopback addresses (127/8, ::1). */
const isLoopback = a => (a.form === 'ipv4' ? a.bytes[0] === 127
  : a.form === 'ipv6' && a.bytes.slice(0, 15).every(b => b === 0) && a.bytes[15] === 1);
/** Link-local addresses (169.254/16, fe80::/10). */
const isLinkLocal = a => (a.form === 'ipv4' ? a.bytes[0] === 169 && a.bytes[1] === 254
  : a.form === 'ipv6' && a.bytes[0] === 0xfe && (a.bytes[1] & 0xc0) === 0x80);

/** An ICE candidate line (`candidate:…`, with or without `a=`) to a token-shaped candidate, or null. */
export function parseCandidateLine(line) {
  const f = String(line).replace(/^a=/, '').replace(/^candidate:/, '').trim().split(/\s+/);
  if (f.length < 8 || f[1] !== '1' || f[6] !== 'typ') return null;
  const address = parseAddress(f[4]);
  const port = Number(f[5]);
  if (!address || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { transport: f[2].toLowerCase(), type: f[7], address, port };
}

/**
 * The candidates a browser dialer's reply code carries (spec/handshake.md §11): its
 * server-reflexive candidates (deduplicated), then relayed ones, then host candidates only if
 * it has no server-reflexive one; UDP and IP literals only (mDNS `.local` names are skipped),
 * never link-local, loopback only when `allowLoopback`; at most 4.
 */
export function replyCandidatesFrom(gathered, allowLoopback) {
  const usable = [];
  for (const c of gathered) {
    if (!c || c.transport !== 'udp' || c.address.form === 'mdns' || isUnspecified(c.address) || isLinkLocal(c.address)) continue;
    if (!['host', 'srflx', 'relay'].includes(c.type) || (!allowLoopback && isLoopback(c.address))) continue;
    if (usable.some(u => u.port === c.port && hex(u.address.bytes) === hex(c.address.bytes))) continue;
    usable.push(c);
  }
  const of = type => usable.filter(c => c.type === type);
  const srflx = of('srflx');
  return [...srflx, ...of('relay'), ...(srflx.length ? [] : of('host'))].slice(0, MAX_REPLY_CANDIDATES);
}

/**
 * The reply fallback of a browser dialer of a `native` token (spec/handshake.md §11): collects
 * the candidates the peer connection gathers (listening before gathering starts) and, once it
 * has a server-reflexive one or gathering completed (at most `limitMs` after `start()`), writes
 * the version 2 reply code from the local ICE credentials and those candidates. `start()`
 * resolves to `{reply, candidates}` (peer-contract strings), or null when no candidate fits.
 */
function replyFallback(pc, token, limitMs) {
  const gathered = [];
  let settle;
  const settled = new Promise(resolve => { settle = resolve; });
  pc.addEventListener('icecandidate', e => {
    if (!e.candidate || !e.candidate.candidate) { settle(); return; }
    const c = parseCandidateLine(e.candidate.candidate);
    if (c) { gathered.push(c); if (c.type === 'srflx') settle(); }
  });
  pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') settle(); });
  return {
    async start() {
      let timer;
      await Promise.race([settled, new Promise(resolve => { timer = setTimeout(resolve, limitMs); })]);
      clearTimeout(timer);
      if (pc.signalingState === 'closed') return null;
      const { session: sess, media } = parseSections(pc.localDescription.sdp);
      const { ufrag, pwd } = readIce(media.find(isData), sess);
      const chosen = replyCandidatesFrom(gathered, token.candidates.every(c => isLoopback(c.address)));
      if (!chosen.length) return null;
      const reply = await encodeCandidateReply({ ufrag, pwd, candidates: chosen }, await replyKey(token));
      return { reply, candidates: chosen.map(candidateString), ufrag, pwd };
    },
  };
}

/**
 * Dials a token from this browser.
 * - native: the one-way path (spec/handshake.md §3): unmunged own offer, the listener's answer
 *   written from the token. The token's STUN servers (`stun`) go to the peer connection, and
 *   in parallel with the one-way attempt the dialer writes its reply code (owr2, the reply
 *   fallback of spec/handshake.md §11) from its own credentials and candidates, at most
 *   `replyGatherMs` after its offer: it emits `reply-code` and calls `onreply(code, {fallback:
 *   true, candidates, ufrag, pwd})` unless the dial already ended. A listener given that code checks
 *   towards these candidates; this browser's ICE agent answers and checks back.
 * - reply / dialer-identity: answers the listener's offer with this browser's own identity;
 *   `onreply(code, {fallback: false, candidates: [], ufrag, pwd})` is called with the reply code (owr1) to
 *   carry back (spec/handshake.md §10.3).
 * Resolves to a Connection once both proofs verified.
 */
export async function dial(tokenText, { onevent = () => {}, onreply = null, timeoutMs = DEFAULT_TIMEOUT_MS, rtcConfig = {}, replyGatherMs = 1500 } = {}) {
  const t = clock();
  const emit = e => onevent({ ...e, t_ms: t() });
  const token = decodeToken(tokenText);
  checkExpiry(token);
  emit({ event: 'dialing', stack: 'browser', candidates: token.candidates.map(candidateString) });
  const keys = await deriveKeys(token);
  const stun = token.profile === 'native' && token.stun.length ? [{ urls: token.stun.map(a => `stun:${a}`) }] : [];
  const pc = new RTCPeerConnection({ ...rtcConfig, iceServers: [...(rtcConfig.iceServers || []), ...stun] });
  const fallback = token.profile === 'native' ? replyFallback(pc, token, replyGatherMs) : null;
  let ended = false, replyShown = false;
  const ch0 = pc.createDataChannel(CHANNEL0_LABEL, { negotiated: true, id: 0 });
  const box = inbox(ch0);
  const startedAt = t();
  const { stages, open, failed } = progress(pc, ch0, t, emit, startedAt);
  let stopWatching = () => {};
  try {
    if (token.profile === 'native') {
      await pc.setLocalDescription(await pc.createOffer());
      await pc.setRemoteDescription({ type: 'answer', sdp: await nativeAnswer(token, pc.localDescription.sdp) });
      fallback.start().then(r => {
        if (!r || ended) return;
        replyShown = true;
        emit({ event: 'reply-code', reply: r.reply, candidates: r.candidates });
        if (typeof onreply === 'function') onreply(r.reply, { fallback: true, candidates: r.candidates, ufrag: r.ufrag, pwd: r.pwd });
      }).catch(e => emit({ event: 'note', message: `no reply code: ${e.message}` }));
    } else {
      if (typeof onreply !== 'function') fail('unsupported-profile', `a browser dialer needs a reply channel for a ${token.profile} token`);
      await pc.setRemoteDescription({ type: 'offer', sdp: listenerOffer(token) });
      await pc.setLocalDescription(await pc.createAnswer());
      const { session: sess, media } = parseSections(pc.localDescription.sdp);
      const data = media.find(isData);
      const ice = readIce(data, sess);
      const fpLine = [...data.attrs, ...sess.attrs].find(a => a.name === 'fingerprint' && a.value.startsWith('sha-256 '));
      const code = encodeReplyCode({ ...ice, fingerprint: fingerprintFromSdp(fpLine.value.slice(8)) });
      emit({ event: 'reply-code', reply: code, candidates: [] });
      onreply(code, { fallback: false, candidates: [], ...ice });
    }
    stages.first_check = t() - startedAt;
    const first = candidateString(token.candidates[0]).split(' ')[2];
    emit({ event: 'candidate-tried', remote: first });
    stopWatching = watchTried(pc, emit, new Set([first]));
    const limit = token.profile === 'native' ? timeoutMs : Math.max(timeoutMs, 120000);
    const stalled = () => (stages.ice === undefined ? 'ice-timeout' : stages.dtls === undefined ? 'dtls-timeout' : 'sctp-timeout');
    await withTimeout(Promise.race([open, failed]), limit, stalled, 'channel 0 did not open in time');
    await stopWatching();
    await withTimeout(authenticate(pc, ch0, box, 'dialer', keys.authKey, token.fingerprint), 5000, 'auth-timeout', 'no proof from the listener');
    stages.auth = t() - startedAt;
    const conn = new Connection(pc, ch0, 'dialer', emit, box.drain());
    ended = true;
    const ev = await connectedEvent(pc, stages);
    const route = fallback ? routeOf(token, ev.selected, replyShown, await selectedPairHidden(pc)) : null;
    if (route) ev.route = route;
    emit(ev);
    return conn;
  } catch (e) {
    ended = true;
    await stopWatching();
    pc.close();
    emit({ event: 'refused', code: e.code || 'internal', reason: String(e.message || e) });
    throw e;
  }
}

/**
 * The route of a browser dialer's native connection (spec/handshake.md §11.2), only where this
 * end can be sure, else null (the `route` field is then left out). A browser cannot see when
 * the listener's first check arrived (getStats() lags), so it judges by the pair that connected:
 * - `one-way`: its reply code was not out yet;
 * - `reply`: its reply code was out and the pair leads to an address the token does not name
 *   (a one-way connection always ends on a token candidate: the listener answers from the
 *   address checked), or to a peer-reflexive address the engine hides (`hidden`: Chromium
 *   names a selected pair whose stats it leaves out, or hides the remote address).
 * A pair on a token candidate after the code was out stays unknown: the listener's punch may
 * have come through a NAT that maps it to the token's own server-reflexive address.
 */
function routeOf(token, selected, replyShown, hidden) {
  if (!replyShown) return 'one-way';
  if (hidden) return 'reply';
  if (!selected) return null;
  if (selected.remote.startsWith('(hidden)')) return 'reply';
  const named = new Set(token.candidates.map(c => candidateString(c).split(' ')[2]));
  return named.has(selected.remote) ? null : 'reply';
}

/** Whether the transport names a selected candidate pair that getStats() leaves out. */
async function selectedPairHidden(pc) {
  let stats;
  try { stats = await pc.getStats(); } catch { return false; }
  let hidden = false;
  stats.forEach(s => { if (s.type === 'transport' && s.selectedCandidatePairId && !stats.get(s.selectedCandidatePairId)) hidden = true; });
  return hidden;
}

/**
 * Reports `candidate-tried` (spec/peer-contract.md §2) for every remote address the ICE agent
 * sends a check to, in the order `getStats()` first shows a check to it (polled every 20 ms;
 * addresses that appear in the same poll in the order of their priority, which is the token
 * order, spec/token.md §9.2). `reported` holds the addresses already reported. Returns an
 * async function that stops the polling after one last poll.
 */
function watchTried(pc, emit, reported) {
  let stopped = false;
  const sweep = async () => {
    let stats;
    try { stats = await pc.getStats(); } catch { return; }
    const fresh = [];
    stats.forEach(s => {
      if (s.type !== 'candidate-pair' || !(s.requestsSent > 0 || s.state === 'succeeded')) return;
      const remote = stats.get(s.remoteCandidateId);
      const ip = remote && (remote.address || remote.ip);
      if (!ip) return;
      const key = `${ip.includes(':') ? `[${ip}]` : ip}:${remote.port}`;
      if (!reported.has(key) && !fresh.some(f => f.key === key)) fresh.push({ key, priority: remote.priority || 0 });
    });
    fresh.sort((a, b) => b.priority - a.priority);
    for (const { key } of fresh) {
      reported.add(key);
      emit({ event: 'candidate-tried', remote: key });
    }
  };
  (async () => {
    while (!stopped && pc.connectionState !== 'closed') {
      await sweep();
      await new Promise(resolve => setTimeout(resolve, 20));
    }
  })();
  // Stopping sweeps once more, so a check sent since the last poll (e.g. on the pair that just
  // connected) is still reported, before the caller reports what follows.
  return async () => {
    if (stopped) return;
    stopped = true;
    if (pc.connectionState === 'closed') return;
    await sweep();
    // getStats() may answer from a cache a few tens of milliseconds old (Chromium): the pair
    // that connected is then named by the transport itself, where the engine has it.
    const pair = pc.sctp?.transport?.iceTransport?.getSelectedCandidatePair?.();
    const ip = pair?.remote?.address;
    if (ip && pair.remote.port) {
      const key = `${ip.includes(':') ? `[${ip}]` : ip}:${pair.remote.port}`;
      if (!reported.has(key)) {
        reported.add(key);
        emit({ event: 'candidate-tried', remote: key });
      }
    }
  };
}

/**
 * Listens in this browser. Profiles:
 * - dialer-identity (default): the page chooses the dialer's identity; a native dialer
 *   connects with the token alone (spec/handshake.md §10.2); a browser dialer shows a reply
 *   code instead, which `acceptReply(code)` takes (the same token serves both);
 * - reply: only browser dialers; their reply code goes to `acceptReply(code)`.
 * Returns `{token, text, accepted, acceptReply}`; `accepted` resolves to the Connection.
 */
export async function listen({ profile = 'dialer-identity', onevent = () => {}, candidateFilter = () => true, gatherMs = 5000, ttlSecs = null, label = null, rtcConfig = {} } = {}) {
  const t = clock();
  const emit = e => onevent({ ...e, t_ms: t() });
  if (profile !== 'dialer-identity' && profile !== 'reply') fail('unsupported-profile', `a browser listener issues dialer-identity or reply tokens, not ${profile}`);
  const pc = new RTCPeerConnection({ iceServers: [], ...rtcConfig });
  const ch0 = pc.createDataChannel(CHANNEL0_LABEL, { negotiated: true, id: 0 });
  const box = inbox(ch0);
  await pc.setLocalDescription(await pc.createOffer());
  await waitGathering(pc, gatherMs);
  // dialer-identity needs a secret whose dialer key exists (spec/token.md §7.3): redraw if not.
  let secret = null, cert = null;
  for (let i = 0; i < 8 && !secret; i++) {
    const s = crypto.getRandomValues(new Uint8Array(16));
    if (profile !== 'dialer-identity') { secret = s; break; }
    try { cert = await dialerCertificate(s); secret = s; } catch (e) { if (e.code !== 'invalid-secret') throw e; }
  }
  if (!secret) fail('internal', 'no usable secret in 8 draws');
  const { token, mid, skipped } = tokenFromOffer(pc.localDescription.sdp, { profile, secret, candidateFilter });
  if (ttlSecs) token.expires = Math.floor(Date.now() / 1000) + ttlSecs;
  if (label) token.label = label;
  const text = tokenToText(token);
  const keys = await deriveKeys(token);
  let dialerFp = null;
  const remoteSet = (async () => {
    if (profile === 'dialer-identity') {
      dialerFp = cert.fingerprint;
      await pc.setRemoteDescription({ type: 'answer', sdp: dialerAnswerFor(token, mid, { ...keys.dialerIce, fingerprint: cert.fingerprint }) });
    }
  })();
  await remoteSet;
  emit({ event: 'token', stack: 'browser', token: text, candidates: token.candidates.map(candidateString), skipped: skipped.length });
  let startedAt = 0;
  let prog = null;
  // A reply code from a browser dialer (spec/handshake.md §10.3). In the reply profile it is
  // the only way in. In the dialer-identity profile it replaces the identity this page chose
  // (§10.2) by the browser dialer's: a new local offer (same ICE credentials, certificate and
  // candidates, so the token stays valid) and the dialer's answer from the code. A mistyped
  // code throws and changes nothing; the first valid code is final. Every code taken is reported
  // as `reply-accepted`, every code refused as `reply-refused` (spec/peer-contract.md §2.1).
  let replyTaken = false, resolveReplied;
  const replied = new Promise(resolve => { resolveReplied = resolve; });
  const replyLater = profile === 'reply' || await canReplaceRemoteIdentity();
  const acceptReply = async code => {
    try {
      await takeReply(code);
    } catch (e) {
      emit({ event: 'reply-refused', code: e.code || 'internal', reason: String(e.message || e) });
      throw e;
    }
  };
  const takeReply = async code => {
    const reply = decodeReplyCode(code);
    if (reply.version !== 1) fail('unsupported', 'a browser listener takes the reply codes of browser dialers (owr1.…); this one is a native dialer\'s (owr2.…), which needs a native listener');
    if (!replyLater) fail('unsupported', 'this browser cannot replace the dialer identity it chose (no remote ICE credential change without an ICE restart): use a reply token');
    if (replyTaken) fail('reply-taken', 'this listener already took a reply code');
    if (prog.stages.dtls !== undefined) fail('reply-taken', 'a dialer is already connected');
    replyTaken = true;
    dialerFp = reply.fingerprint;
    if (pc.signalingState === 'stable') await pc.setLocalDescription(await pc.createOffer());
    await pc.setRemoteDescription({ type: 'answer', sdp: dialerAnswerFor(token, mid, reply) });
    emit({ event: 'reply-accepted', dialer: reply.ufrag, candidates: [] });
    resolveReplied();
  };
  startedAt = t();
  prog = progress(pc, ch0, t, emit, startedAt);
  const accepted = (async () => {
    if (profile === 'reply') await replied;
    await Promise.race([prog.open, prog.failed]);
    try {
      // Expiry is judged at admission, after the proof (spec/token.md §5.1: the listener's
      // check is the one that counts): the browser's ICE agent answers any check it can verify.
      const admit = () => {
        if (token.expires !== null && Date.now() / 1000 >= token.expires) fail('token-expired', `the token expired at ${token.expires}`);
      };
      await withTimeout(authenticate(pc, ch0, box, 'listener', keys.authKey, dialerFp, admit), 15000, 'proof-timeout', 'no valid proof within 15 s');
    } catch (e) {
      emit({ event: 'refused', code: e.code || 'auth-failed', reason: String(e.message || e) });
      setTimeout(() => pc.close(), 50);
      throw e;
    }
    prog.stages.auth = t() - startedAt;
    const conn = new Connection(pc, ch0, 'listener', emit, box.drain());
    const ev = await connectedEvent(pc, prog.stages);
    if (ev.selected) ev.peer = ev.selected.remote;
    emit(ev);
    return conn;
  })();
  accepted.catch(() => {});
  return { token, text, accepted, acceptReply, acceptsReply: replyLater, pc };
}

/**
 * Whether this browser lets a listener replace the remote answer it set (another ICE ufrag/pwd
 * and fingerprint) by a new offer/answer without an ICE restart: Chromium does, Firefox ESR 153
 * does not ("offer did not request ICE restart") and has no `pranswer` either. Tried on a
 * throwaway peer connection that never gathers.
 */
export async function canReplaceRemoteIdentity() {
  const pc = new RTCPeerConnection({ iceServers: [] });
  try {
    pc.createDataChannel(CHANNEL0_LABEL, { negotiated: true, id: 0 });
    await pc.setLocalDescription(await pc.createOffer());
    const { media } = parseSections(pc.localDescription.sdp);
    const mid = attr(media.find(isData), 'mid') ?? '0';
    const shape = { sctp: null, candidates: [] };
    const fp = n => new Uint8Array(32).fill(n);
    await pc.setRemoteDescription({ type: 'answer', sdp: dialerAnswerFor(shape, mid, { ufrag: 'AAAA', pwd: 'A'.repeat(24), fingerprint: fp(1) }) });
    await pc.setLocalDescription(await pc.createOffer());
    await pc.setRemoteDescription({ type: 'answer', sdp: dialerAnswerFor(shape, mid, { ufrag: 'BBBB', pwd: 'B'.repeat(24), fingerprint: fp(2) }) });
    return true;
  } catch {
    return false;
  } finally {
    pc.close();
  }
}

/** Echoes every message on every application channel the peer opens (peer contract). */
export function echo(conn) {
  conn.ondatachannel = ch => { ch.onmessage = e => { if (ch.readyState === 'open') ch.send(e.data); }; };
}

/** Sends one probe on a new `data` channel and resolves to the round trip in ms. */
export async function probe(conn) {
  const ch = await conn.openChannel('data');
  const payload = `oneway-probe ${performance.now()}`;
  const sent = performance.now();
  const back = new Promise(resolve => { ch.onmessage = e => { if (e.data === payload) resolve(); }; });
  ch.send(payload);
  await withTimeout(back, 10000, 'echo-timeout', 'no echo within 10 s');
  return performance.now() - sent;
}

// ---------------------------------------------------------------------------------------------
// Experimental one-way paths a browser may still permit (spec/handshake.md §10.4)

/** Detects whether this browser accepts local ufrag/pwd munging (deprecated; being outlawed). */
export async function detectLocalMunging() {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.createDataChannel('x');
  try {
    const offer = await pc.createOffer();
    const sdp = offer.sdp.replace(/a=ice-ufrag:.*/g, 'a=ice-ufrag:MuNg').replace(/a=ice-pwd:.*/g, 'a=ice-pwd:MungedPassword0123456789');
    await pc.setLocalDescription({ type: 'offer', sdp });
    return pc.localDescription.sdp.includes('a=ice-ufrag:MuNg');
  } catch { return false; } finally { pc.close(); }
}
