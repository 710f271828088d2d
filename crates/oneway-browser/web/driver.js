// Hooks the Rust driver (crates/oneway-browser) calls through WebDriver. Each operation runs
// in the page and is polled: start(kind, args) returns an id at once, poll(id) returns the
// events emitted since the last poll and, once finished, {ok, value} or {ok:false, code, message}.
// This keeps WebDriver free while a connection is under way, so one browser serves many tabs.

import * as ow from './oneway.js';
import * as qr from './qr.js';

const ops = new Map();
let next = 0;

function op(kind, run) {
  const id = `${kind}-${++next}`;
  const state = { events: [], result: null, conn: null, extra: {} };
  ops.set(id, state);
  const emit = e => state.events.push(e);
  Promise.resolve().then(() => run(emit, state)).then(
    value => { state.result = { ok: true, value: value ?? null }; },
    e => { state.result = { ok: false, code: (e && e.code) || 'internal', message: String((e && e.message) || e) }; },
  );
  return id;
}

const loopbackOnly = c => c.address.form === 'ipv4' ? c.address.bytes[0] === 127
  : c.address.form === 'ipv6' && c.address.bytes.slice(0, 15).every(b => b === 0) && c.address.bytes[15] === 1;

// Reports what arrives on a bridged `data` channel as `data` events (text, or base64).
function bridgeChannel(ch, emit) {
  ch.binaryType = 'arraybuffer';
  ch.onmessage = e => emit(typeof e.data === 'string'
    ? { event: 'data', text: e.data }
    : { event: 'data', base64: btoa(String.fromCharCode(...new Uint8Array(e.data))) });
  ch.onclose = () => emit({ event: 'closed', code: 'closed-by-peer' });
}

function connOf(id) {
  const s = ops.get(id);
  if (!s || !s.conn) throw new ow.OnewayError('no-connection', `operation ${id} has no connection`);
  return s.conn;
}

// Peer-contract string of a vector's candidate (a string already, or {type, address, port}).
const candidateText = c => (typeof c === 'string' ? c
  : `${c.type} ${c.transport || 'udp'} ${c.address.includes(':') ? `[${c.address}]` : c.address}:${c.port}`);

// The reply key of a vector: `reply_key_hex`, else from `secret_hex`, else from `token`.
async function vectorReplyKey(v) {
  if (v.reply_key_hex) return ow.fromHex(v.reply_key_hex);
  if (v.secret_hex) return ow.replyKey({ secret: ow.fromHex(v.secret_hex) });
  if (v.token) return ow.replyKey(ow.decodeToken(v.token));
  return null;
}

// One entry of spec/vectors/reply-code.json, by the version its text names. Version 1: ufrag,
// pwd, fingerprint. Version 2: ufrag, pwd (null: derived), issued, candidates, fast where the
// vector has them; with a key (`reply_key_hex`), the reply pwd when derived, verification at
// `now` (default: `issued`) and the encoding.
async function checkReplyVector(v, check, skipped) {
  const version = Number((/^owr([0-9]+)\./.exec(v.text || '') || [])[1]);
  // A vector written before this module read owr2 used `owr2.` as its unknown version.
  if (v.error === 'unknown-version' && [1, 2].includes(version)) { skipped.push(`${v.name}: owr${version} is known here`); return; }
  const key = await vectorReplyKey(v);
  if (v.error) {
    let code = 'accepted';
    try {
      const r = ow.decodeReplyCode(v.text);
      if (r.version === 2 && key) await ow.verifyCandidateReply(r, key, v.now ?? r.issued);
    } catch (e) { code = e.code; }
    check(`reply ${v.name}`, code === v.error, `got ${code}, want ${v.error}`);
    return;
  }
  const r = ow.decodeReplyCode(v.text);
  if (version === 1) {
    check(`reply ${v.name} decode`, r.ufrag === v.ufrag && r.pwd === v.pwd && ow.fingerprintToSdp(r.fingerprint) === v.fingerprint, JSON.stringify(r));
    check(`reply ${v.name} encode`, ow.encodeReplyCode({ ufrag: v.ufrag, pwd: v.pwd, fingerprint: ow.fingerprintFromSdp(v.fingerprint) }) === v.text, 'encode');
    return;
  }
  const same = (field, got, want) => want === undefined || JSON.stringify(got) === JSON.stringify(want);
  const pwd = v.pwd === '' ? null : v.pwd;
  const candidates = v.candidates === undefined ? undefined : v.candidates.map(candidateText);
  check(`reply ${v.name} decode`, r.version === 2 && same('ufrag', r.ufrag, v.ufrag) && same('pwd', r.pwd, pwd)
    && same('issued', r.issued, v.issued) && same('fast', r.fast, v.fast_start ?? v.fast) && same('candidates', ow.replyCandidateStrings(r), candidates), JSON.stringify({ ...r, tag: undefined, signed: undefined }));
  if (v.chars !== undefined) check(`reply ${v.name} chars`, v.text.length === v.chars, `${v.text.length} chars`);
  if (v.tag_hex !== undefined) check(`reply ${v.name} tag`, ow.hex(r.tag) === v.tag_hex, ow.hex(r.tag));
  if (!key) return;
  if (v.pwd_or_derived !== undefined) {
    const p = r.pwd ?? await ow.replyPwd(key, r.ufrag);
    check(`reply ${v.name} pwd or derived`, p === v.pwd_or_derived, p);
  }
  let verified = 'ok';
  try { await ow.verifyCandidateReply(r, key, v.now ?? r.issued); } catch (e) { verified = e.code; }
  check(`reply ${v.name} verify`, verified === 'ok', verified);
  const again = await ow.encodeCandidateReply({ issued: r.issued, ufrag: r.ufrag, pwd: r.pwd, fast: r.fast, candidates: r.candidates }, key);
  check(`reply ${v.name} encode`, again === v.text, again);
}

// Bytes of a reply code with a correct CRC-8 (for structural errors behind the checksum).
const withCrc = body => `owr2.${ow.base64url(Uint8Array.from([...body, ow.crc8(Uint8Array.from(body))]))}`;
// A token's binary form with its extensions replaced by one (type, value), CRC-32 fixed.
function withExtension(t, type, value) {
  const plain = ow.encodeToken({ ...t, stun: [] });
  const head = [...plain.subarray(0, plain.length - 5)];  // up to the extension count (0)
  const body = Uint8Array.from([...head, 1, type, value.length, ...value]);
  const c = ow.crc32(body);
  return Uint8Array.from([...body, c >>> 24, (c >>> 16) & 255, (c >>> 8) & 255, c & 255]);
}

async function codecSelfCheck() {
  const failures = [];
  let passed = 0;
  const check = (name, cond, detail) => { if (cond) passed++; else failures.push(`${name}: ${detail}`); };
  const code = async (f) => { try { await f(); return 'accepted'; } catch (e) { return e.code; } };
  const token = ow.tokenFromJson({
    profile: 'native', fingerprint: Array(32).fill('AB').join(':'), secret_hex: '000102030405060708090a0b0c0d0e0f',
    candidates: [{ address: '192.0.2.10', port: 5000, transport: 'udp', type: 'host' }],
    expires: null, sctp: null, listener_ice: null, single_use: false, label: null, mapped: [], fast: null, unknown_extensions: [],
  });
  const key = await ow.replyKey(token);
  const other = await ow.replyKey({ ...token, secret: new Uint8Array(16).fill(7) });
  // The reply key is HKDF(secret, "oneway/v1 reply-key"): 32 bytes, distinct per secret.
  check('reply key', key.length === 32 && ow.hex(key) !== ow.hex(other), ow.hex(key));

  // owr2 round trip: Chromium's credential lengths with one IPv4 srflx candidate.
  const issued = 1767225600;
  const one = { issued, ufrag: 'Qx7z', pwd: 'Hw3qJ0tXbX1Zr8CkL2mN4pVs', candidates: [{ type: 'srflx', address: '198.51.100.7', port: 40000 }] };
  const text = await ow.encodeCandidateReply(one, key);
  check('owr2 prefix', text.startsWith('owr2.'), text);
  check('owr2 length rule', text.length === ow.candidateReplyLength(4, 24, ['ipv4']) && text.length <= 80, `${text.length} chars`);
  const r = ow.decodeReplyCode(text);
  check('owr2 decode', r.version === 2 && r.issued === issued && r.ufrag === one.ufrag && r.pwd === one.pwd && !r.fast
    && JSON.stringify(ow.replyCandidateStrings(r)) === JSON.stringify(['srflx udp 198.51.100.7:40000']), JSON.stringify(r));
  check('owr2 verify', await code(() => ow.verifyCandidateReply(r, key, issued + 10)) === 'accepted', 'not verified');
  check('owr2 white space', (await code(() => ow.decodeCandidateReply(`  ${text}\n`, token, issued))) === 'accepted', 'trimmed');
  // Four candidates of every type and both forms, Firefox's credential lengths, a derived pwd.
  const four = { issued, ufrag: '9b2c4d6e', pwd: '0123456789abcdef0123456789ABCDEF', candidates: [
    { type: 'srflx', address: '203.0.113.5', port: 1 }, { type: 'relay', address: '2001:db8::10', port: 3478 },
    { type: 'host', address: '10.0.0.2', port: 65535 }, { type: 'host', address: '::1', port: 9 }] };
  const t4 = await ow.encodeCandidateReply(four, key);
  const r4 = await ow.decodeCandidateReply(t4, token, issued);
  check('owr2 four candidates', JSON.stringify(ow.replyCandidateStrings(r4)) === JSON.stringify(['srflx udp 203.0.113.5:1', 'relay udp [2001:db8::10]:3478', 'host udp 10.0.0.2:65535', 'host udp [::1]:9'])
    && r4.pwd === four.pwd && t4.length === ow.candidateReplyLength(8, 32, ['ipv4', 'ipv6', 'ipv4', 'ipv6']), `${t4} ${JSON.stringify(r4)}`);
  const derived = await ow.decodeCandidateReply(await ow.encodeCandidateReply({ ...one, pwd: null, fast: true }, key), token, issued);
  check('owr2 derived pwd and fast', derived.pwd === null && derived.fast === true && derived.ufrag === one.ufrag, JSON.stringify(derived));

  // Encoder refusals.
  for (const [name, bad] of [
    ['no candidate', { ...one, candidates: [] }], ['five candidates', { ...one, candidates: Array(5).fill(one.candidates[0]) }],
    ['short ufrag', { ...one, ufrag: 'abc' }], ['short pwd', { ...one, pwd: 'x'.repeat(21) }], ['port 0', { ...one, candidates: [{ ...one.candidates[0], port: 0 }] }],
    ['mdns', { ...one, candidates: [{ type: 'host', address: '6f1a2b3c-0000-4000-8000-000000000001.local', port: 5 }] }],
    ['tcp', { ...one, candidates: [{ ...one.candidates[0], transport: 'tcp' }] }],
  ]) check(`owr2 encoder refuses ${name}`, await code(() => ow.encodeCandidateReply(bad, key)) === 'invalid-reply', 'accepted');

  // Every decoding error, in the order the decoder checks.
  const bytes = ow.fromBase64url(text.slice(5));
  const body = [...bytes.subarray(0, bytes.length - 1)];
  const flip = text.slice(0, 20) + (text[20] === 'A' ? 'B' : 'A') + text.slice(21);
  const errors = [
    ['missing-prefix', 'ow2.' + text.slice(5)], ['missing-prefix', 'owrx.AAAA'], ['unknown-version', 'owr3.' + text.slice(5)],
    ['unknown-version', 'owr0.' + text.slice(5)], ['invalid-character', text.slice(0, 10) + '*' + text.slice(11)],
    ['invalid-text-length', text.slice(0, text.length - 2)], ['truncated', withCrc(body.slice(0, 14))],
    ['checksum-mismatch', flip],
    ['invalid-reply', withCrc([0x00, ...body.slice(1)])], ['invalid-reply', withCrc([0x05, ...body.slice(1)])],
    ['invalid-reply', withCrc([0x11, ...body.slice(1)])], ['invalid-reply', withCrc([...body, 0])],
    ['invalid-reply', withCrc(body.slice(0, body.length - 1))], ['invalid-reply', withCrc([...body.slice(0, 5), 3, ...body.slice(6)])],
    ['invalid-reply', withCrc([...body.slice(0, 6), 21, ...body.slice(7)])],
  ];
  // Structural errors on the candidate: an mDNS form, a TCP kind, type 3, port 0.
  const kindAt = 7 + Math.ceil((6 * 28) / 8);
  for (const kind of [0x02, 0x10, 0x0c]) errors.push(['invalid-reply', withCrc([...body.slice(0, kindAt), kind, ...body.slice(kindAt + 1)])]);
  errors.push(['invalid-reply', withCrc([...body.slice(0, kindAt + 5), 0, 0, ...body.slice(kindAt + 7)])]);
  for (const [want, bad] of errors) {
    const got = await code(() => ow.decodeReplyCode(bad));
    check(`owr2 ${want} (${bad.slice(0, 24)}…)`, got === want, `got ${got}`);
  }
  // Verification errors.
  for (const [want, f] of [
    ['reply-foreign', () => ow.verifyCandidateReply(r, other, issued)],
    ['reply-expired', () => ow.verifyCandidateReply(r, key, issued + 601)],
    ['accepted', () => ow.verifyCandidateReply(r, key, issued + 600)],
    ['reply-clock-skew', () => ow.verifyCandidateReply(r, key, issued - 61)],
    ['accepted', () => ow.verifyCandidateReply(r, key, issued - 60)],
    ['reply-foreign', async () => { const x = ow.decodeReplyCode(text); x.signed[1] ^= 1; return ow.verifyCandidateReply(x, key, issued); }],
  ]) {
    const got = await code(f);
    check(`owr2 verify ${want}`, got === want, `got ${got}`);
  }

  // `stun` (0x84): round trip, in ascending order with the other extensions, and every error.
  const withStun = { ...token, stun: ['127.0.0.1:3478', '[2001:db8::1]:19302'], label: 'x' };
  const back = ow.decodeToken(ow.tokenToText(withStun));
  check('stun round trip', JSON.stringify(back.stun) === JSON.stringify(withStun.stun) && back.label === 'x'
    && ow.tokenToJson(back).stun.length === 2, JSON.stringify(back.stun));
  const exts = ow.encodeToken(withStun);
  check('stun after label', ow.hex(exts).includes('810178841a'), ow.hex(exts));
  const entry = (form, addr, port) => [form, ...addr, port >> 8, port & 255];
  const v4 = (n, port = 3478) => entry(0, [192, 0, 2, n], port);
  for (const [want, value] of [
    ['accepted', v4(1)], ['accepted', [...v4(1), ...v4(2), ...v4(3), ...v4(4)]],
    ['invalid-extension-value', [...v4(1), ...v4(2), ...v4(3), ...v4(4), ...v4(5)]],
    ['invalid-extension-value', [...v4(1), ...v4(1)]], ['invalid-extension-value', v4(1, 0)],
    ['invalid-extension-value', entry(2, Array(16).fill(1), 5)], ['bad-extension-length', []],
    ['bad-extension-length', v4(1).slice(0, 6)], ['bad-extension-length', [...v4(1), 1, 0, 0]],
  ]) {
    const got = await code(() => ow.decodeBytes(withExtension(token, 0x84, value)));
    check(`stun ${want} (${value.length} bytes)`, got === want, `got ${got}`);
  }
  for (const bad of [['1.2.3.4'], ['1.2.3.4:0'], ['a:1'], Array(5).fill(0).map((_, i) => `10.0.0.${i}:1`), ['1.2.3.4:5', '1.2.3.4:5']]) {
    check(`stun encoder refuses ${bad.join(',')}`, await code(() => ow.encodeToken({ ...token, stun: bad })) === 'invalid-extension-value', 'accepted');
  }
  return { passed, failures };
}

// Adds the fake device's track of `kind` to connection `conn` (an operation id) in band.
async function addDevice(conn, kind) {
  const c = connOf(conn);
  const stream = await navigator.mediaDevices.getUserMedia({ [kind]: true });
  const track = kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
  const sender = await c.addTrack(track, stream);
  const extra = ops.get(conn).extra;
  extra.senders = extra.senders || new Map();
  extra.senders.set(track.id, sender);
  const settings = track.getSettings();
  return { track: track.id, kind, mid: c.transceiverOf(sender).mid, width: settings.width ?? null, height: settings.height ?? null, transceivers: c.pc.getTransceivers().length };
}

// The sender of a track `addDevice` added to connection `conn`.
function senderOf(c, conn, track) {
  const sender = ops.get(conn)?.extra.senders?.get(track);
  if (!sender) throw new ow.OnewayError('no-track', `${conn} added no track ${track}`);
  return sender;
}

// Every transceiver's mid, kind and negotiated direction.
const describeTransceivers = c => ({
  transceivers: c.pc.getTransceivers().map(t => ({
    mid: t.mid, kind: t.receiver.track?.kind ?? null, direction: t.direction, current: t.currentDirection ?? null,
  })),
});

// What this side sends of `kind` (the outbound-rtp entry with the most packets): packets,
// codec, and for video frames encoded and their size (null: nothing sent).
async function outbound(c, kind) {
  const stats = await c.pc.getStats();
  let best = null;
  stats.forEach(s => {
    if (s.type === 'outbound-rtp' && (s.kind || s.mediaType) === kind && (!best || (s.packetsSent || 0) > (best.packetsSent || 0))) best = s;
  });
  if (!best) return null;
  const codec = best.codecId ? stats.get(best.codecId) : null;
  return {
    kind, ssrc: best.ssrc, codec: codec ? codec.mimeType : null, packets: best.packetsSent || 0,
    frames_encoded: best.framesEncoded ?? null, key_frames_encoded: best.keyFramesEncoded ?? null,
    frame_width: best.frameWidth ?? null, frame_height: best.frameHeight ?? null,
  };
}

// Plays every received audio track of connection `c` in an <audio> element: Chromium decodes
// remote audio only when something pulls it (its samples and level stay 0 otherwise), and
// WebAudio gets a remote track's samples only while an element plays it.
function playRemoteAudio(c) {
  const played = c.played || (c.played = new Set());
  for (const r of c.pc.getReceivers()) {
    const track = r.track;
    if (!track || track.kind !== 'audio' || played.has(track.id)) continue;
    played.add(track.id);
    const el = document.createElement('audio');
    el.srcObject = new MediaStream([track]);
    el.autoplay = true;
    document.body.appendChild(el);
    el.play().catch(() => {});
  }
}

// The dominant frequency (Hz) of the received audio track with the most packets, measured by
// a WebAudio analyser over `ms` of decoded audio, else from a recording (`recordedTone`); a
// string says why neither measured one.
async function remoteTone(c, ms = 600) {
  const receivers = c.pc.getReceivers().filter(r => r.track && r.track.kind === 'audio' && r.track.readyState === 'live');
  if (!receivers.length) return null;
  const stats = await c.pc.getStats();
  const packetsOf = r => { let n = 0; stats.forEach(s => { if (s.type === 'inbound-rtp' && s.trackIdentifier === r.track.id) n = s.packetsReceived || 0; }); return n; };
  const receiver = receivers.reduce((a, b) => (packetsOf(b) > packetsOf(a) ? b : a));
  const ctx = new AudioContext();
  try {
    if (ctx.state !== 'running') await Promise.race([ctx.resume(), new Promise(r => setTimeout(r, 500))]);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    ctx.createMediaStreamSource(new MediaStream([receiver.track])).connect(analyser);
    const bins = new Float32Array(analyser.frequencyBinCount);
    const sum = new Float32Array(analyser.frequencyBinCount);
    for (let i = 0; i < Math.ceil(ms / 100); i++) {
      await new Promise(r => setTimeout(r, 100));
      analyser.getFloatFrequencyData(bins);
      for (let k = 0; k < bins.length; k++) if (Number.isFinite(bins[k])) sum[k] += 10 ** (bins[k] / 10);
    }
    let peak = 1;
    for (let k = 2; k < sum.length; k++) if (sum[k] > sum[peak]) peak = k;
    if (!(sum[peak] > 0)) {
      try {
        const hz = await recordedTone(receiver.track);
        return typeof hz === 'number' ? hz : `no signal (AudioContext ${ctx.state}; ${hz})`;
      } catch (e) { return `no signal (AudioContext ${ctx.state}; recording: ${e.message || e})`; }
    }
    return Math.round(peak * ctx.sampleRate / analyser.fftSize);
  } finally { ctx.close().catch(() => {}); }
}

// Where WebAudio gets no signal (headless Firefox starts no AudioContext without an audio
// device): records `ms` of the received track with MediaRecorder, decodes the recording with an
// OfflineAudioContext (no device needed) and counts the zero crossings of its last half second.
async function recordedTone(track, ms = 1200) {
  if (typeof MediaRecorder === 'undefined') return 'no MediaRecorder';
  const chunks = [];
  const rec = new MediaRecorder(new MediaStream([track]));
  rec.ondataavailable = e => { if (e.data.size) chunks.push(e.data); };
  const stopped = new Promise(r => { rec.onstop = r; });
  rec.start();
  await new Promise(r => setTimeout(r, ms));
  rec.stop();
  await withTimeoutMs(stopped, 3000);
  const bytes = await new Blob(chunks, { type: rec.mimeType }).arrayBuffer();
  if (!bytes.byteLength) return 'empty recording';
  const audio = await new OfflineAudioContext(1, 48000, 48000).decodeAudioData(bytes);
  const x = audio.getChannelData(0);
  const n = Math.min(x.length, Math.round(audio.sampleRate / 2));
  const from = x.length - n;
  let crossings = 0;
  for (let i = from + 1; i < x.length; i++) if ((x[i - 1] < 0) !== (x[i] < 0)) crossings++;
  if (crossings < 2) return 'silent recording';
  return Math.round(crossings / 2 / (n / audio.sampleRate));
}

const withTimeoutMs = (p, ms) => Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new ow.OnewayError('timeout', `not within ${ms} ms`)), ms))]);

// The inbound-rtp entry of `kind` with the most packets (or the one of `ssrc`), in the shape
// `wait-track` returns.
async function inbound(c, kind, ssrc = null) {
  const stats = await c.pc.getStats();
  let best = null;
  stats.forEach(s => {
    if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === kind && (ssrc === null || s.ssrc === ssrc)
      && (!best || (s.packetsReceived || 0) > (best.packetsReceived || 0))) best = s;
  });
  if (!best) return null;
  const codec = best.codecId ? stats.get(best.codecId) : null;
  return {
    kind, ssrc: best.ssrc, mid: best.mid ?? null, codec: codec ? codec.mimeType : null,
    packets: best.packetsReceived || 0, packets_lost: best.packetsLost ?? null, bytes: best.bytesReceived || 0,
    frames_decoded: best.framesDecoded ?? null, key_frames_decoded: best.keyFramesDecoded ?? null,
    frame_width: best.frameWidth ?? null, frame_height: best.frameHeight ?? null,
    total_samples_received: best.totalSamplesReceived ?? null, audio_level: best.audioLevel ?? null,
    concealed_samples: best.concealedSamples ?? null, total_audio_energy: best.totalAudioEnergy ?? null,
    packets_discarded: best.packetsDiscarded ?? null,
  };
}

const kinds = {
  // The spec vectors, checked in this browser (spec/vectors/*.json).
  async vectors() {
    // A network error (not a 404) is retried: under load Chromium has been seen to fail the
    // first fetch on a socket the static server had just closed.
    const get = async name => {
      for (let attempt = 1; ; attempt++) {
        let r;
        try { r = await fetch(`/vectors/${name}`); } catch (e) { if (attempt < 3) continue; throw e; }
        if (!r.ok) throw new ow.OnewayError('missing-vectors', name);
        return r.json();
      }
    };
    const failures = [];
    let passed = 0;
    const check = (name, cond, detail) => { if (cond) passed++; else failures.push(`${name}: ${detail}`); };
    const valid = await get('valid.json');
    // `stun` (0x84) is newer than some vector files: where `decoded` has no `stun`, an empty one
    // is left out of the comparison.
    const asJson = (t, want) => {
      const j = ow.tokenToJson(t);
      if (!('stun' in want) && j.stun.length === 0) delete j.stun;
      return JSON.stringify(j);
    };
    for (const v of valid.vectors) {
      try {
        for (const form of ['binary_hex', 'text', 'qr_text']) {
          const t = form === 'binary_hex' ? ow.decodeBytes(ow.fromHex(v.binary_hex)) : ow.decodeToken(v[form]);
          check(`${v.name} ${form}`, asJson(t, v.decoded) === JSON.stringify(v.decoded), asJson(t, v.decoded));
        }
        const t = ow.tokenFromJson(v.decoded);
        check(`${v.name} encode`, ow.hex(ow.encodeToken(t)) === v.binary_hex, ow.hex(ow.encodeToken(t)));
        check(`${v.name} text`, ow.tokenToText(t) === v.text && ow.tokenToQrText(t) === v.qr_text, ow.tokenToText(t));
        const k = await ow.deriveKeys(t);
        const d = v.derived;
        check(`${v.name} derived`, k.tokenUfrag === d.token_ufrag && k.listenerPwd === d.listener_pwd && ow.hex(k.authKey) === d.auth_key_hex
          && (k.dialerIce ? k.dialerIce.ufrag : null) === d.dialer_ufrag && (k.dialerIce ? k.dialerIce.pwd : null) === d.dialer_pwd, JSON.stringify(k));
        if (d.reply_key_hex !== undefined) {
          const rk = await ow.replyKey(t);
          check(`${v.name} reply key`, ow.hex(rk) === d.reply_key_hex, ow.hex(rk));
          if (d.reply_pwd) {
            const rp = await ow.replyPwd(rk, d.reply_pwd.dialer_ufrag);
            check(`${v.name} reply pwd`, rp === d.reply_pwd.pwd, rp);
          }
        }
        const rd = v.remote_description;
        const sdp = t.profile === 'native' ? await ow.nativeAnswer(t, rd.dialer_offer) : ow.listenerOffer(t);
        check(`${v.name} remote description`, sdp === rd.sdp, sdp);
      } catch (e) { failures.push(`${v.name}: threw ${e.message}`); }
    }
    const invalid = await get('invalid.json');
    for (const v of invalid.vectors) {
      let code = 'accepted', position = null;
      try {
        const t = v.input_form === 'hex' ? ow.decodeBytes(ow.fromHex(v.input)) : ow.decodeToken(v.input);
        if (v.now !== null) ow.checkExpiry(t, v.now);
      } catch (e) { code = e.code; position = e.position === undefined ? null : e.position; }
      check(`invalid ${v.name}`, code === v.error, `got ${code}, want ${v.error}`);
      check(`invalid ${v.name} position`, position === v.position, `got position ${position}, want ${v.position}`);
    }
    const certs = await get('dialer-certificate.json');
    for (const v of certs.vectors) {
      const c = await ow.dialerCertificate(ow.fromHex(v.secret_hex));
      check(`cert ${v.name} key`, ow.hex(c.privateScalar) === v.private_scalar_hex && ow.hex(c.publicKey) === v.public_key_hex, ow.hex(c.publicKey));
      check(`cert ${v.name} tbs`, ow.hex(c.tbs) === v.tbs_der_hex, ow.hex(c.tbs));
      check(`cert ${v.name} signature`, ow.hex(c.signature) === v.signature_der_hex, ow.hex(c.signature));
      check(`cert ${v.name} der`, ow.hex(c.der) === v.certificate_der_hex && ow.fingerprintToSdp(c.fingerprint) === v.fingerprint, ow.fingerprintToSdp(c.fingerprint));
    }
    const replies = await get('reply-code.json');
    const skipped = [];
    for (const v of replies.vectors) {
      try { await checkReplyVector(v, check, skipped); } catch (e) { failures.push(`reply ${v.name}: threw ${e.message}`); }
    }
    return { passed, failures, skipped };
  },

  // Round trips and every error code of the owr2 reply code and the `stun` token extension,
  // in this browser (the vectors above check the same against the Rust codec's output).
  async codec() { return codecSelfCheck(); },

  // A fresh `native` token (random secret and fingerprint) whose candidates are `address:port`
  // (UDP host) and whose `stun` extension names `stun`: for a dialer that must not reach its
  // listener (a black-holed port), to see its reply fallback.
  async 'native-token'(emit, state, { candidates, stun = [] }) {
    const rnd = n => ow.hex(crypto.getRandomValues(new Uint8Array(n)));
    const t = ow.tokenFromJson({
      profile: 'native', fingerprint: rnd(32).match(/../g).join(':').toUpperCase(), secret_hex: rnd(16),
      candidates: candidates.map(a => { const p = ow.parseTransportAddress(a); return { address: ow.addressToString(p.address), port: p.port, transport: 'udp', type: 'host' }; }),
      expires: null, sctp: null, listener_ice: null, single_use: false, label: null, mapped: [], fast: null, stun, unknown_extensions: [],
    });
    return { token: ow.tokenToText(t) };
  },

  // Decodes a reply code and, for owr2, verifies it with the token's reply key; with `dial`
  // (the operation id of a browser dial), also says whether it names that dialer's own ICE
  // credentials (from its local description).
  async 'check-reply'(emit, state, { code, token, dial }) {
    const r = ow.decodeReplyCode(code);
    if (r.version === 2) await ow.verifyCandidateReply(r, await ow.replyKey(ow.decodeToken(token)));
    const local = dial ? ops.get(dial)?.extra.localIce : null;
    return {
      version: r.version, ufrag: r.ufrag, pwd: r.pwd, issued: r.issued ?? null,
      candidates: ow.replyCandidateStrings(r), chars: code.length,
      own: local ? local.ufrag === r.ufrag && local.pwd === r.pwd : null,
    };
  },

  // Dials a token; with probe, opens `data`, echoes one message and closes. With bridge, opens
  // `data` and reports what arrives on it as `data` events on this operation (text, or base64
  // for binary), after it has ended; `send` writes to it (`oneway dial --stack browser`).
  async dial(emit, state, { token, probe = false, timeoutMs, keep = false, bridge = false }) {
    const t0 = performance.now();
    const conn = await ow.dial(token, {
      onevent: emit, timeoutMs,
      onreply: (code, info) => { state.extra.reply = code; state.extra.localIce = { ufrag: info.ufrag, pwd: info.pwd }; },
    });
    state.conn = conn;
    let rtt = null;
    if (probe) {
      // No echo after `connected`: `refused` with `echo-timeout` (spec/handshake.md §8).
      try { rtt = await ow.probe(conn); } catch (e) {
        emit({ event: 'refused', code: e.code || 'internal', reason: String(e.message || e), t_ms: Math.round((performance.now() - t0) * 100) / 100 });
        conn.close('no echo');
        throw e;
      }
      emit({ event: 'first-echo', t_ms: Math.round((performance.now() - t0) * 100) / 100, rtt_ms: rtt });
      if (!keep) conn.close('probe done');
    } else if (bridge) {
      const ch = await conn.openChannel('data');
      bridgeChannel(ch, emit);
      state.extra.data = ch;
    } else {
      ow.echo(conn);
    }
    return { rtt_ms: rtt };
  },

  // Listens; resolves when a dialer is authenticated (the connection echoes if asked). With
  // bridge, the `data` channel the dialer opens is reported and written as in a bridged dial.
  // With iceServers (a STUN server), the token also carries the server-reflexive candidate.
  // Without loopback, loopback candidates stay out of the token (a remote dialer's check to
  // 127.0.0.1 only delays it).
  async listen(emit, state, { profile = 'dialer-identity', loopback = true, echo = true, bridge = false, iceServers = [], ttlSecs = null }) {
    const l = await ow.listen({ profile, onevent: emit, candidateFilter: loopback ? loopbackOnly : c => !loopbackOnly(c), rtcConfig: { iceServers }, ttlSecs });
    state.extra.listener = l;
    const conn = await l.accepted;
    state.conn = conn;
    if (bridge) {
      // What `send` gets before the dialer opens `data` waits for it.
      state.extra.pending = [];
      conn.ondatachannel = ch => {
        if (ch.label !== 'data') return;
        bridgeChannel(ch, emit);
        state.extra.data = ch;
        const flush = () => { for (const text of state.extra.pending.splice(0)) ch.send(text); };
        if (ch.readyState === 'open') flush(); else ch.addEventListener('open', flush);
      };
    } else if (echo) ow.echo(conn);
    return { token: l.text };
  },

  // The two-way baseline (`oneway bench latency --browser`): two peer connections in this page,
  // offer, answer and candidates passed through memory (a perfect signalling server); opens
  // `data`, echoes one message. Stage times in ms from before the offer, as the offerer saw them.
  async baseline(emit, state, { timeoutMs = 10000 }) {
    const t0 = performance.now();
    const at = () => Math.round((performance.now() - t0) * 100) / 100;
    const a = new RTCPeerConnection({ iceServers: [] });
    const b = new RTCPeerConnection({ iceServers: [] });
    const stages = {};
    let timer;
    try {
      a.onicecandidate = e => { if (e.candidate) b.addIceCandidate(e.candidate).catch(() => {}); };
      b.onicecandidate = e => { if (e.candidate) a.addIceCandidate(e.candidate).catch(() => {}); };
      b.ondatachannel = e => { e.channel.onmessage = m => e.channel.send(m.data); };
      a.oniceconnectionstatechange = () => {
        if (['connected', 'completed'].includes(a.iceConnectionState) && stages.ice === undefined) stages.ice = at();
      };
      a.onconnectionstatechange = () => {
        if (a.connectionState === 'connected' && stages.dtls === undefined) stages.dtls = at();
      };
      const ch = a.createDataChannel('data');
      const echoed = new Promise(resolve => {
        ch.onopen = () => { stages.channel = at(); ch.send('oneway-baseline-probe'); };
        ch.onmessage = () => { stages.first_echo = at(); resolve(); };
      });
      await a.setLocalDescription(await a.createOffer());
      await b.setRemoteDescription(a.localDescription);
      await b.setLocalDescription(await b.createAnswer());
      await a.setRemoteDescription(b.localDescription);
      await Promise.race([echoed, new Promise((_, reject) => {
        timer = setTimeout(() => reject(new ow.OnewayError('echo-timeout', `no echo within ${timeoutMs} ms`)), timeoutMs);
      })]);
      return stages;
    } finally {
      clearTimeout(timer);
      a.close();
      b.close();
    }
  },

  // Gives a listener (the operation id of its `listen`) the reply code of a browser dialer.
  // The listener is known once its `listen` returned, just after its token event: a code that
  // comes sooner waits for it (at most 5 s).
  async 'accept-reply'(emit, state, { listen, code }) {
    for (let i = 0; i < 250 && ops.get(listen) && !ops.get(listen).extra.listener && !ops.get(listen).result; i++) {
      await new Promise(r => setTimeout(r, 20));
    }
    const l = ops.get(listen)?.extra.listener;
    if (!l || !l.acceptReply) throw new ow.OnewayError('no-listener', `${listen} is not a reply listener`);
    await l.acceptReply(code);
    return null;
  },

  // Adds an audio track from the (fake) microphone and renegotiates in band; returns the
  // track's id (for `remove-track` and `set-direction`) once the peer's answer is applied.
  async 'add-audio'(emit, state, { conn }) { return addDevice(conn, 'audio'); },

  // Adds a video track from the (fake) camera and renegotiates in band, as `add-audio`.
  async 'add-video'(emit, state, { conn }) { return addDevice(conn, 'video'); },

  // Stops a track this side added (`track`: the id `add-audio`/`add-video` returned): its
  // transceiver stops (m-line rejected) and the change is renegotiated in band.
  async 'remove-track'(emit, state, { conn, track }) {
    const c = connOf(conn);
    await c.removeTrack(senderOf(c, conn, track));
    return describeTransceivers(c);
  },

  // Sets the direction (`sendrecv`, `sendonly`, `recvonly`, `inactive`) of a track this side
  // added and renegotiates in band.
  async 'set-direction'(emit, state, { conn, track, direction }) {
    const c = connOf(conn);
    await c.setDirection(senderOf(c, conn, track), direction);
    return describeTransceivers(c);
  },

  // Waits until the connection receives media of `kind` ('audio' or 'video'): at least
  // `packets` RTP packets and, for video, `frames` decoded frames (at most `timeoutMs`). Returns
  // the inbound-rtp statistics of the stream with the most packets: packets, bytes, codec, and
  // for video frames decoded, key frames and size, for audio samples received and level (the
  // page plays received audio); with `tone`, also the audio's dominant frequency (`tone_hz`:
  // WebAudio analyser, else a MediaRecorder recording decoded offline; a string says why none).
  async 'wait-track'(emit, state, { conn, kind = 'audio', packets = 1, frames = 0, tone = false, timeoutMs = 10000 }) {
    const c = connOf(conn);
    const end = performance.now() + timeoutMs;
    let last = null;
    for (let i = 0; i < 2000 && performance.now() < end; i++) {
      if (kind === 'audio') playRemoteAudio(c);
      last = await inbound(c, kind);
      if (last && last.packets >= packets && (kind !== 'video' || last.frames_decoded >= frames)) {
        if (kind !== 'audio' || !tone) return last;
        const tone_hz = await remoteTone(c);
        return { ...(await inbound(c, kind)), tone_hz };
      }
      await new Promise(r => setTimeout(r, 50));
    }
    throw new ow.OnewayError('no-media', `no ${kind} with ${packets} packets${kind === 'video' ? ` and ${frames} decoded frames` : ''} in ${timeoutMs} ms; last inbound-rtp: ${JSON.stringify(last)}`);
  },

  // The inbound-rtp statistics of `kind` (of the stream `ssrc` if given) now (null: none), as
  // `wait-track` returns them, with every transceiver's negotiated direction.
  async inbound(emit, state, { conn, kind = 'audio', ssrc = null }) {
    const c = connOf(conn);
    return { stats: await inbound(c, kind, ssrc), ...describeTransceivers(c) };
  },

  // The outbound-rtp statistics of `kind` now (null: nothing sent).
  async outbound(emit, state, { conn, kind = 'audio' }) { return outbound(connOf(conn), kind); },

  // The demo page's QR encoder, for checking against the Rust qrcode crate.
  async qr(emit, state, { text }) { return qr.encode(text); },

  // Sends text on the `data` channel of a bridged dial (the operation id of its `dial`).
  async send(emit, state, { conn, text }) {
    const extra = ops.get(conn)?.extra;
    const ch = extra?.data;
    if (extra?.pending && (!ch || ch.readyState !== 'open')) { extra.pending.push(text); return null; }
    if (!ch || ch.readyState !== 'open') throw new ow.OnewayError('no-channel', `${conn} has no open data channel`);
    ch.send(text);
    return null;
  },

  async close(emit, state, { conn }) { connOf(conn).close('done'); return null; },

  // What this browser permits (spec/handshake.md §10.4).
  async detect() {
    return { munging: await ow.detectLocalMunging(), userAgent: navigator.userAgent };
  },
};

window.onewayDriver = {
  start(kind, args) {
    const run = kinds[kind];
    if (!run) throw new Error(`unknown operation ${kind}`);
    return op(kind, (emit, state) => run(emit, state, args || {}));
  },
  poll(id) {
    const s = ops.get(id);
    if (!s) return { events: [], result: { ok: false, code: 'unknown-op', message: id } };
    const events = s.events.splice(0);
    return { events, result: s.result };
  },
};
