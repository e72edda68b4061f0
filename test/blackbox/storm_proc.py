"""storm_proc.py — start the real `storm` binary for the Python black-box tests,
and talk to it over raw TCP (HTTP/1.1 and hand-built WebSocket frames).

The binary is build/storm unless STORM_BIN names another (the ASan build:
STORM_BIN=build/asan/storm). StormProcess.stop() fails when the server died
early, did not exit 0 within 5 s of SIGTERM, or printed a sanitizer report.
Stdlib only (the websockets client is used by the tests themselves).
"""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STORM_BIN = os.path.join(ROOT, os.environ.get("STORM_BIN", "build/storm"))
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def show(b, limit=600):
    """Bounded printable rendering of raw bytes for assertion messages."""
    r = repr(b[:limit]) + ("…" if len(b) > limit else "")
    return f"{r} ({len(b)} bytes)"


def storm_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    # `serve` needs a session-token key (32+ bytes) unless --dev: a
    # throwaway one, through the environment as advised for secrets.
    if not env.get("STORM_JWT_SECRET"):
        env["STORM_JWT_SECRET"] = "blackbox-tests-only-not-a-secret-0123456789"
    return env


def mint_token(data_dir, user="bbuser"):
    """/ws needs an access token: `storm user create` then `storm token` on the
    server's data directory and key (the operator path, not the HTTP API)."""
    env = storm_env()
    c = subprocess.run([STORM_BIN, "user", "create", user, "--data", data_dir], input=b"blackbox-password-123\n",
                       capture_output=True, env=env, timeout=10)
    err = c.stderr.decode(errors="replace")
    assert c.returncode == 0 and not any(m in err for m in SANITIZER_MARKERS), f"storm user create: {c}"
    t = subprocess.run([STORM_BIN, "token", "--user", user, "--data", data_dir], capture_output=True, env=env,
                       timeout=10)
    token = t.stdout.decode().strip()
    err = t.stderr.decode(errors="replace")
    assert t.returncode == 0 and re.match(r"^[\w-]+\.[\w-]+\.[\w-]+$", token) and \
        not any(m in err for m in SANITIZER_MARKERS), f"storm token: {t}"
    return token


class StormProcess:
    def __init__(self, args=(), token=True):
        if not os.path.exists(STORM_BIN):
            raise RuntimeError(f"no binary at {STORM_BIN} (run make, or set STORM_BIN)")
        self.data_dir = tempfile.mkdtemp(prefix="storm-bb-py-")
        self.token = mint_token(self.data_dir) if token else None
        full = [STORM_BIN, "serve", "--port", "0", "--data", self.data_dir]
        if "--shutdown-timeout" not in args:
            full += ["--shutdown-timeout", "3s"]
        full += list(args)
        self.proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=storm_env())
        self._lines = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.stopping = False
        self.port = self._wait_listening(5.0)

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self._lock:
                self._lines.append(raw.decode("utf-8", "replace"))

    def stderr(self):
        with self._lock:
            return "".join(self._lines)

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stderr().splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    msg = json.loads(line).get("msg", "")
                except ValueError:
                    continue
                m = re.match(r"^listening on \S*:(\d+)$", msg)
                if m:
                    return int(m.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.proc.kill()
        raise RuntimeError(f"storm did not log 'listening on' within {timeout} s "
                           f"(exit {self.proc.poll()}); stderr:\n{self.stderr()}")

    def alive(self, timeout=1.5):
        """True when the server still answers GET /healthz on a fresh connection
        (a crash often lands just after the response that caused it)."""
        if self.proc.poll() is not None:
            return False
        try:
            c = RawConn(self.port, timeout=timeout)
            try:
                c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                return c.read_response(timeout)["status"] == 200
            finally:
                c.close()
        except (OSError, AssertionError):
            return False

    def terminate(self, wait=5.0):
        """SIGTERM, wait, SIGKILL. Returns (returncode, seconds, killed)."""
        self.stopping = True
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        killed = False
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            killed = True
        self._reader.join(2)
        if not self._reader.is_alive():
            self.proc.stderr.close()
        return self.proc.returncode, time.monotonic() - t0, killed

    def stop(self):
        """End-of-tests check; raises AssertionError listing what went wrong."""
        died_early = self.proc.poll() if not self.stopping else None
        rc, _, killed = self.terminate()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        err = self.stderr()
        problems = []
        if died_early is not None:
            problems.append(f"server exited before the end of the tests (returncode {died_early})")
        if any(m in err for m in SANITIZER_MARKERS):
            problems.append("sanitizer report in stderr")
        if died_early is None:
            if killed:
                problems.append("did not exit within 5 s of SIGTERM (SIGKILLed)")
            elif rc != 0:
                problems.append(f"exit after SIGTERM: returncode {rc}")
        if problems:
            raise AssertionError("; ".join(problems) + "\nstderr:\n" + err[-8000:])


# ----------------------------------------------------------------- HTTP


def http_get(port, path):
    """GET on a fresh keep-alive connection (http.client sends no
    Connection: close), closed by us. Returns (status, headers, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def metric(port, name):
    status, _, body = http_get(port, "/metrics")
    assert status == 200, body
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    raise AssertionError(f"no sample for {name} in /metrics:\n{body.decode()}")


# ------------------------------------------------------------ raw socket


class RawConn:
    """A TCP client that keeps what it received in self.buf; parse helpers
    consume from the front."""

    def __init__(self, port, rcvbuf=None, timeout=3.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connect, so the window is small from the start.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.all = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError from None
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
        self.buf += d
        self.all += d

    def _until(self, parse, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            r = parse()
            if r is not None:
                return r
            if self.eof:
                raise AssertionError(f"connection closed before {what}; got {show(self.all)}")
            try:
                self._fill(deadline)
            except TimeoutError:
                raise AssertionError(f"timeout after {timeout} s waiting for {what}; "
                                     f"unconsumed {show(self.buf)}") from None

    def read_response(self, timeout=3.0, head=False):
        def parse():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            m = re.match(r"^HTTP/\d\.\d (\d{3})", lines[0])
            assert m, f"bad status line in {show(self.buf)}"
            headers = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                headers[k.strip().lower()] = v.strip()
            status = int(m.group(1))
            n = 0 if head or status < 200 else int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + n:
                return None
            raw = self.buf[:end + 4 + n]
            body = self.buf[end + 4:end + 4 + n]
            self.buf = self.buf[end + 4 + n:]
            return {"status": status, "headers": headers, "body": body, "raw": raw}
        return self._until(parse, timeout, "an HTTP response")

    def read_frame(self, timeout=3.0):
        def parse():
            f = parse_frame(self.buf)
            if f is not None:
                self.buf = self.buf[f["size"]:]
            return f
        return self._until(parse, timeout, "a WebSocket frame")

    def read_until_close(self, timeout=3.0):
        """Frames until a close frame: returns (close_frame, frames_before)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no close frame within {timeout} s; frames {[summary(f) for f in seen]}")
            f = self.read_frame(left)
            if f["opcode"] == 0x8:
                return f, seen
            seen.append(f)

    def wait_eof(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except TimeoutError:
                return False
            except OSError:
                return True
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def handshake_request(version="13", omit_key=False, token=None):
    q = f"?access_token={token}" if token else ""
    return (f"GET /ws{q} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + ("" if omit_key else f"Sec-WebSocket-Key: {WS_KEY}\r\n")
            + f"Sec-WebSocket-Version: {version}\r\n\r\n")


def ws_connect_raw(srv, rcvbuf=None, read_hello=True):
    """Raw WebSocket to srv (a StormProcess: port and token): 101 checked,
    hello consumed. Returns (conn, hello)."""
    c = RawConn(srv.port, rcvbuf=rcvbuf)
    c.send(handshake_request(token=srv.token))
    r = c.read_response()
    assert r["status"] == 101, f"handshake not answered 101: {show(r['raw'])}"
    assert r["headers"].get("sec-websocket-accept") == ws_accept(WS_KEY), show(r["raw"])
    hello = None
    if read_hello:
        f = c.read_frame()
        assert f["opcode"] == 0x1, summary(f)
        hello = json.loads(f["payload"])
    return c, hello


def build_frame(payload=b"", opcode=0x1, fin=True, rsv=0, mask=True):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    if not n:
        return hdr + key
    # XOR as one big integer: fast enough that a flooding thread does not
    # hog the GIL and distort the round-trip times the tests measure.
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return hdr + key + masked


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def parse_frame(buf):
    """One server frame from the front of buf, or None if incomplete.
    Server frames must not be masked."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    assert not (b1 & 0x80), f"server sent a masked frame: {show(buf[:32])}"
    n = b1 & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack("!H", buf[2:4])[0]
        pos = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack("!Q", buf[2:10])[0]
        pos = 10
    if len(buf) < pos + n:
        return None
    f = {"fin": bool(b0 & 0x80), "rsv": (b0 >> 4) & 7, "opcode": b0 & 0xF,
         "payload": buf[pos:pos + n], "size": pos + n, "raw": buf[:pos + n]}
    if f["opcode"] == 0x8:
        f["code"] = struct.unpack("!H", f["payload"][:2])[0] if n >= 2 else None
        f["reason"] = f["payload"][2:]
    return f


def summary(f):
    s = {k: f[k] for k in ("fin", "rsv", "opcode")}
    s["len"] = len(f["payload"])
    if f["opcode"] == 0x8:
        s["code"], s["reason"] = f["code"], f["reason"]
    else:
        s["payload"] = f["payload"][:80]
    s["raw_hex"] = f["raw"][:48].hex()
    return s
