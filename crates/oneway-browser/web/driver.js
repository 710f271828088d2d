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
    for (const v of valid.vectors) {
      try {
        for (const form of ['binary_hex', 'text', 'qr_text']) {
          const t = form === 'binary_hex' ? ow.decodeBytes(ow.fromHex(v.binary_hex)) : ow.decodeToken(v[form]);
          check(`${v.name} ${form}`, JSON.stringify(ow.tokenToJson(t)) === JSON.stringify(v.decoded), JSON.stringify(ow.tokenToJson(t)));
        }
        const t = ow.tokenFromJson(v.decoded);
        check(`${v.name} encode`, ow.hex(ow.encodeToken(t)) === v.binary_hex, ow.hex(ow.encodeToken(t)));
        check(`${v.name} text`, ow.tokenToText(t) === v.text && ow.tokenToQrText(t) === v.qr_text, ow.tokenToText(t));
        const k = await ow.deriveKeys(t);
        const d = v.derived;
        check(`${v.name} derived`, k.tokenUfrag === d.token_ufrag && k.listenerPwd === d.listener_pwd && ow.hex(k.authKey) === d.auth_key_hex
          && (k.dialerIce ? k.dialerIce.ufrag : null) === d.dialer_ufrag && (k.dialerIce ? k.dialerIce.pwd : null) === d.dialer_pwd, JSON.stringify(k));
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
    for (const v of replies.vectors) {
      if (v.error) {
        let code = 'accepted';
        try { ow.decodeReplyCode(v.text); } catch (e) { code = e.code; }
        check(`reply ${v.name}`, code === v.error, `got ${code}, want ${v.error}`);
      } else {
        const r = ow.decodeReplyCode(v.text);
        check(`reply ${v.name} decode`, r.ufrag === v.ufrag && r.pwd === v.pwd && ow.fingerprintToSdp(r.fingerprint) === v.fingerprint, JSON.stringify(r));
        check(`reply ${v.name} encode`, ow.encodeReplyCode({ ufrag: v.ufrag, pwd: v.pwd, fingerprint: ow.fingerprintFromSdp(v.fingerprint) }) === v.text, 'encode');
      }
    }
    return { passed, failures };
  },

  // Dials a token; with probe, opens `data`, echoes one message and closes. With bridge, opens
  // `data` and reports what arrives on it as `data` events on this operation (text, or base64
  // for binary), after it has ended; `send` writes to it (`oneway dial --stack browser`).
  async dial(emit, state, { token, probe = false, timeoutMs, keep = false, bridge = false }) {
    const t0 = performance.now();
    const conn = await ow.dial(token, {
      onevent: emit, timeoutMs,
      onreply: code => { state.extra.reply = code; },
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
  async 'accept-reply'(emit, state, { listen, code }) {
    const l = ops.get(listen)?.extra.listener;
    if (!l || !l.acceptReply) throw new ow.OnewayError('no-listener', `${listen} is not a reply listener`);
    await l.acceptReply(code);
    return null;
  },

  // Adds an audio track from the (fake) microphone and renegotiates in band.
  async 'add-audio'(emit, state, { conn }) {
    const c = connOf(conn);
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    await c.addTrack(stream.getAudioTracks()[0], stream);
    return { transceivers: c.pc.getTransceivers().length };
  },

  // Resolves when the connection receives a remote track that carries packets.
  async 'wait-track'(emit, state, { conn }) {
    const c = connOf(conn);
    const track = await new Promise(resolve => {
      const have = c.pc.getReceivers().find(r => r.track && r.track.kind === 'audio' && c.pc.getTransceivers().some(t => t.receiver === r && t.currentDirection && t.currentDirection.includes('recv')));
      if (have) resolve(have.track);
      c.ontrack = e => resolve(e.track);
    });
    for (let i = 0; i < 200; i++) {
      const stats = await c.pc.getStats();
      let packets = 0;
      stats.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'audio') packets += s.packetsReceived || 0; });
      if (packets > 0) return { kind: track.kind, packets };
      await new Promise(r => setTimeout(r, 25));
    }
    throw new ow.OnewayError('no-media', 'the audio track carried no packets in 5 s');
  },

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
