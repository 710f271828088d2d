#!/usr/bin/env python3
"""Capture complete (non-trickle) data-channel offers from Chromium and Firefox.

Standard library only. Chromium is driven through chromedriver's W3C WebDriver HTTP API,
Firefox through its built-in Marionette protocol (Debian has no geckodriver). Run it inside
the network namespace that capture_browsers.sh creates. Usage:

    capture_browsers.py OUTDIR
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import http.server
import threading


def serve_page():
    """Serves an empty page on http://127.0.0.1 (a secure context, which getUserMedia needs)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>oneway capture</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


PAGE = None

# Create a data channel, offer, wait for complete gathering (bounded), return the SDP.
# With audio=true, first call getUserMedia (fake device), so Chromium exposes raw host IPs.
SCRIPT = """
const [audio, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  if (audio) {
    const s = await navigator.mediaDevices.getUserMedia({audio: true});
    s.getTracks().forEach(t => t.stop());
  }
  const pc = new RTCPeerConnection({iceServers: []});
  pc.createDataChannel('oneway', {negotiated: true, id: 0});
  await pc.setLocalDescription(await pc.createOffer());
  const t0 = Date.now();
  while (pc.iceGatheringState !== 'complete' && Date.now() - t0 < 10000) {
    await new Promise(r => setTimeout(r, 50));
  }
  done({sdp: pc.localDescription.sdp, complete: pc.iceGatheringState === 'complete'});
})().catch(e => done({error: String(e)}));
"""

# Whether local SDP munging of ufrag/pwd is still accepted (field notes §2).
MUNGE = """
const done = arguments[arguments.length - 1];
(async () => {
  const pc = new RTCPeerConnection({iceServers: []});
  pc.createDataChannel('x');
  const offer = await pc.createOffer();
  const sdp = offer.sdp.replace(/a=ice-ufrag:.*/g, 'a=ice-ufrag:MuNg')
                       .replace(/a=ice-pwd:.*/g, 'a=ice-pwd:MungedPassword0123456789');
  try { await pc.setLocalDescription({type: 'offer', sdp}); done('accepted'); }
  catch (e) { done('rejected: ' + e.name + ': ' + e.message); }
})();
"""


def wd(method, url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=20):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listening on {port} after {deadline}s")


def chromium(audio):
    port = free_port()
    profile = tempfile.mkdtemp(prefix="oneway-chromium-")
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"]
        if audio:
            args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                                                 "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}}
        session = wd("POST", f"{base}/session", caps)["value"]["sessionId"]
        try:
            wd("POST", f"{base}/session/{session}/timeouts", {"script": 20000})
            wd("POST", f"{base}/session/{session}/url", {"url": PAGE})
            result = wd("POST", f"{base}/session/{session}/execute/async", {"script": SCRIPT, "args": [audio]})["value"]
            munge = wd("POST", f"{base}/session/{session}/execute/async", {"script": MUNGE, "args": []})["value"]
            return result, munge
        finally:
            wd("DELETE", f"{base}/session/{session}")
    finally:
        driver.terminate()
        driver.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


class Marionette:
    """Firefox's Marionette protocol: `<length>:<json>` frames over TCP."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.next_id = 0
        self.read()  # hello: {"applicationType": "gecko", "marionetteProtocol": 3}

    def read(self):
        while b":" not in self.buf:
            self.buf += self.sock.recv(65536)
        length, rest = self.buf.split(b":", 1)
        length = int(length)
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buf = rest[length:]
        return json.loads(rest[:length])

    def call(self, name, params):
        self.next_id += 1
        body = json.dumps([0, self.next_id, name, params]).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body)
        while True:
            msg = self.read()
            if msg[0] == 1 and msg[1] == self.next_id:
                if msg[2]:
                    raise RuntimeError(f"{name}: {msg[2]}")
                return msg[3]


def firefox(obfuscate):
    port = free_port()
    profile = tempfile.mkdtemp(prefix="oneway-firefox-")
    prefs = {
        "marionette.port": port,
        "media.peerconnection.ice.obfuscate_host_addresses": obfuscate,
        "browser.shell.checkDefaultBrowser": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.enabled": False,
        "app.update.enabled": False,
        "network.captive-portal-service.enabled": False,
        "network.connectivity-service.enabled": False,
    }
    with open(os.path.join(profile, "user.js"), "w") as f:
        for k, v in prefs.items():
            f.write(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n")
    browser = subprocess.Popen(["firefox-esr", "--headless", "--marionette", "--no-remote", "--profile", profile],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 40)
        m = Marionette(port)
        m.call("WebDriver:NewSession", {"capabilities": {}})
        m.call("WebDriver:SetTimeouts", {"script": 20000})
        m.call("WebDriver:Navigate", {"url": PAGE})
        result = m.call("WebDriver:ExecuteAsyncScript", {"script": SCRIPT, "args": [False]})["value"]
        munge = m.call("WebDriver:ExecuteAsyncScript", {"script": MUNGE, "args": []})["value"]
        return result, munge
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)


def save(outdir, name, result):
    if "error" in result:
        raise RuntimeError(f"{name}: {result['error']}")
    if not result["complete"]:
        raise RuntimeError(f"{name}: ICE gathering did not complete in 10 s")
    with open(os.path.join(outdir, name), "w", newline="") as f:
        f.write(result["sdp"])
    print(f"wrote {name} ({len(result['sdp'])} bytes)", file=sys.stderr)


def main():
    global PAGE
    PAGE = serve_page()
    outdir = sys.argv[1]
    report = {}
    result, munge = chromium(audio=False)
    save(outdir, "chromium-datachannel-mdns.sdp", result)
    report["chromium local ufrag/pwd munging"] = munge
    result, _ = chromium(audio=True)
    save(outdir, "chromium-datachannel-ip.sdp", result)
    result, munge = firefox(obfuscate=True)
    save(outdir, "firefox-datachannel.sdp", result)
    report["firefox local ufrag/pwd munging"] = munge
    result, _ = firefox(obfuscate=False)
    save(outdir, "firefox-datachannel-ip.sdp", result)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
