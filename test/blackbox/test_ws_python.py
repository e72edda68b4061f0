"""test_ws_python.py — /ws with a second independent client: Python's
`websockets` (Debian python3-websockets) plus hand-built frames over raw
sockets. Handshake, ops, fragmentation, ping/pong, idle timeout, close
codes, hostile input, and the slow-consumer policy with a tiny receive
buffer.

Run: /usr/bin/python3 -m unittest discover -s test/blackbox -p 'test_*.py' -v
(STORM_BIN=build/asan/storm for the sanitizer build).
"""
import asyncio
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))

import websockets  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from storm_proc import (  # noqa: E402
    RawConn, StormProcess, build_frame, close_payload, handshake_request, metric, show, summary,
    ws_connect_raw,
)

PING_OP = json.dumps({"op": "ping", "ref": 1})


class WsTestBase(unittest.IsolatedAsyncioTestCase):
    ARGS = ()
    srv = None

    @classmethod
    def setUpClass(cls):
        cls.crashes = []
        cls.srv = StormProcess(cls.ARGS)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        if cls.crashes:
            raise AssertionError(f"server crashed {len(cls.crashes)} time(s) in {cls.__name__}: {cls.crashes}")

    def tearDown(self):
        # The server must outlive every test; if not, this test is the culprit.
        # A fresh server is started so the remaining tests still say something.
        cls = type(self)
        if cls.srv.alive():
            return
        dead = cls.srv
        rc, _, _ = dead.terminate(wait=3.0)
        cls.crashes.append(f"{self.id()}: returncode {rc}")
        cls.srv = StormProcess(cls.ARGS)
        self.fail(f"server stopped answering during this test (returncode {rc}); "
                  f"a fresh server runs the next tests. stderr:\n{dead.stderr()[-6000:]}")

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.srv.port}/ws?access_token={self.srv.token}"

    async def connect(self, **kw):
        ws = await websockets.connect(self.url, **kw)
        hello = json.loads(await asyncio.wait_for(ws.recv(), 3))
        self.assertEqual(hello["op"], "hello", hello)
        return ws, hello

    async def request(self, ws, obj, timeout=3):
        await ws.send(json.dumps(obj, ensure_ascii=False))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if m.get("ref") == obj.get("ref"):
                return m

    async def assert_still_serving(self):
        ws, _ = await self.connect()
        try:
            self.assertEqual(await self.request(ws, {"op": "ping", "ref": "after"}), {"op": "pong", "ref": "after"})
        finally:
            await ws.close()


class WsPythonTest(WsTestBase):
    ARGS = ("--ws-max-message", "1024", "--ws-heartbeat", "1s", "--ws-idle-timeout", "3s")

    # ---------------------------------------------------------- sessions

    async def test_hello(self):
        a, ha = await self.connect()
        b, hb = await self.connect()
        try:
            for h in (ha, hb):
                self.assertRegex(h["session_id"], r"^[0-9a-f]{32}$")
                self.assertEqual(h["heartbeat_interval"], 1000)
            self.assertNotEqual(ha["session_id"], hb["session_id"])
        finally:
            await a.close()
            await b.close()

    async def test_ping_op(self):
        ws, _ = await self.connect()
        try:
            self.assertEqual(await self.request(ws, {"op": "ping", "ref": 1}), {"op": "pong", "ref": 1})
        finally:
            await ws.close()

    async def test_echo_unicode(self):
        ws, _ = await self.connect()
        try:
            data = {"x": [1, "é"], "y": "日本語 😀", "z": None}
            self.assertEqual(await self.request(ws, {"op": "echo", "data": data, "ref": "a"}),
                             {"op": "echo", "data": data, "ref": "a"})
        finally:
            await ws.close()

    async def test_unknown_op(self):
        ws, _ = await self.connect()
        try:
            r = await self.request(ws, {"op": "nope", "ref": [1, 2]})
            self.assertEqual(r["op"], "error", r)
            self.assertEqual(r["code"], "unknown_op", r)
            self.assertIsInstance(r["message"], str)
            self.assertEqual(r["ref"], [1, 2])
        finally:
            await ws.close()

    async def test_bad_json(self):
        ws, _ = await self.connect()
        try:
            await ws.send("{oops")
            r = json.loads(await asyncio.wait_for(ws.recv(), 3))
            self.assertEqual((r["op"], r["code"]), ("error", "bad_json"), r)
            self.assertEqual(await self.request(ws, {"op": "ping", "ref": 3}), {"op": "pong", "ref": 3})
        finally:
            await ws.close()

    async def test_binary_closes_1003(self):
        ws, _ = await self.connect()
        await ws.send(b"\x00\x01\x02")
        with self.assertRaises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        await ws.wait_closed()
        self.assertEqual(ws.close_code, 1003)

    async def test_fragmented_message(self):
        ws, _ = await self.connect()
        try:
            msg = json.dumps({"op": "echo", "data": "frag é", "ref": "f"}, ensure_ascii=False)
            await ws.send([msg[:5], msg[5:17], msg[17:]])  # websockets sends 3 frames
            r = json.loads(await asyncio.wait_for(ws.recv(), 3))
            self.assertEqual(r, {"op": "echo", "data": "frag é", "ref": "f"})
        finally:
            await ws.close()

    async def test_client_ping_gets_pong_with_same_payload(self):
        ws, _ = await self.connect()
        try:
            waiter = await ws.ping(b"py-ping-\x00\xff")
            # websockets resolves the waiter only for a pong with this payload.
            await asyncio.wait_for(waiter, 2)
        finally:
            await ws.close()

    async def test_client_close_1000_echoed(self):
        ws, _ = await self.connect()
        await ws.close(1000, "bye")
        self.assertEqual(ws.close_code, 1000)

    async def test_stays_open_while_answering_heartbeats(self):
        ws, _ = await self.connect()  # websockets answers pings itself
        try:
            await asyncio.sleep(4.0)  # longer than --ws-idle-timeout 3s
            self.assertEqual(await self.request(ws, {"op": "ping", "ref": 9}), {"op": "pong", "ref": 9})
        finally:
            await ws.close()

    # --------------------------------------------------- raw: heartbeat/idle

    def test_server_ping_then_idle_close_1001(self):
        c, _ = ws_connect_raw(self.srv)
        try:
            t0 = time.monotonic()
            f = c.read_frame(2.6)
            self.assertEqual(f["opcode"], 0x9, summary(f))
            close, before = c.read_until_close(5.0)
            dt = time.monotonic() - t0
            self.assertEqual(close["code"], 1001, summary(close))
            self.assertTrue(2.5 <= dt <= 5.5, f"idle close after {dt:.2f} s, expected ~3–5 s")
            self.assertTrue(all(x["opcode"] == 0x9 for x in before), [summary(x) for x in before])
        finally:
            c.close()

    # ------------------------------------------------------ raw: handshake

    async def test_handshake_without_token_401(self):
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
            await websockets.connect(f"ws://127.0.0.1:{self.srv.port}/ws")
        self.assertEqual(cm.exception.status_code, 401)
        await self.assert_still_serving()

    def test_handshake_without_key_400(self):
        c = RawConn(self.srv.port)
        try:
            c.send(handshake_request(omit_key=True, token=self.srv.token))
            r = c.read_response()
            self.assertEqual(r["status"], 400, show(r["raw"]))
            self.assertIsInstance(json.loads(r["body"])["error"]["code"], str)
        finally:
            c.close()

    def test_handshake_version_8_426(self):
        c = RawConn(self.srv.port)
        try:
            c.send(handshake_request(version="8", token=self.srv.token))
            r = c.read_response()
            self.assertEqual(r["status"], 426, show(r["raw"]))
            self.assertEqual(r["headers"].get("sec-websocket-version"), "13", show(r["raw"]))
            self.assertIsInstance(json.loads(r["body"])["error"]["code"], str)
        finally:
            c.close()

    # -------------------------------------------------- raw: protocol errors

    async def expect_close(self, frames, code):
        def run():
            c, _ = ws_connect_raw(self.srv)
            try:
                for f in frames:
                    c.send(f)
                close, before = c.read_until_close(3.0)
                self.assertEqual(close["code"], code,
                                 f"close frame {summary(close)}; frames before {[summary(x) for x in before]}")
                self.assertTrue(c.wait_eof(3.0), "TCP still open 3 s after the close frame")
            finally:
                c.close()
        await asyncio.to_thread(run)
        await self.assert_still_serving()

    async def test_unmasked_frame_1002(self):
        await self.expect_close([build_frame(PING_OP, mask=False)], 1002)

    async def test_rsv1_1002(self):
        await self.expect_close([build_frame(PING_OP, rsv=4)], 1002)

    async def test_reserved_opcode_3_1002(self):
        await self.expect_close([build_frame(b"x", opcode=0x3)], 1002)

    async def test_fragmented_ping_1002(self):
        await self.expect_close([build_frame(b"p", opcode=0x9, fin=False)], 1002)

    async def test_control_frame_126_bytes_1002(self):
        await self.expect_close([build_frame(b"a" * 126, opcode=0x9)], 1002)

    async def test_message_too_big_1009(self):
        await self.expect_close([build_frame(json.dumps({"op": "echo", "data": "y" * 1100}))], 1009)

    async def test_invalid_utf8_1007(self):
        await self.expect_close([build_frame(b"\xc3\x28")], 1007)

    async def test_close_code_1005_1002(self):
        await self.expect_close([build_frame(close_payload(1005), opcode=0x8)], 1002)

    async def test_close_code_999_1002(self):
        await self.expect_close([build_frame(close_payload(999), opcode=0x8)], 1002)

    async def test_close_one_byte_payload_1002(self):
        await self.expect_close([build_frame(b"\x03", opcode=0x8)], 1002)

    async def test_raw_fragmented_echo(self):
        def run():
            c, _ = ws_connect_raw(self.srv)
            try:
                msg = json.dumps({"op": "echo", "data": "é", "ref": "r"}, ensure_ascii=False).encode()
                cut = msg.index(b"\xc3") + 1  # split inside the two-byte character
                c.send(build_frame(msg[:cut], fin=False))
                c.send(build_frame(msg[cut:], opcode=0x0))
                f = c.read_frame()
                self.assertEqual(json.loads(f["payload"]), {"op": "echo", "data": "é", "ref": "r"}, summary(f))
            finally:
                c.close()
        await asyncio.to_thread(run)


class SlowConsumerTest(WsTestBase):
    ARGS = ("--ws-outbuf-limit", "65536")

    async def test_slow_consumer_closed_others_fast(self):
        port = self.srv.port
        before = await asyncio.to_thread(metric, port, "storm_ws_slow_consumer_closes_total")
        slow, _ = await asyncio.to_thread(ws_connect_raw, self.srv, 4096)
        data = "x" * (16 * 1024)
        state = {"sent": 0, "error": None}
        stop = threading.Event()

        def flood():
            # Never reads: the server's output to this socket piles up.
            slow.sock.settimeout(10)
            try:
                for i in range(200):
                    if stop.is_set():
                        break
                    slow.send(build_frame(json.dumps({"op": "echo", "data": data, "ref": i})))
                    state["sent"] = i + 1
            except OSError as e:  # reset/broken pipe once the server closes it
                state["error"] = repr(e)

        obs, _ = await self.connect()
        rtts = []
        flooder = asyncio.ensure_future(asyncio.to_thread(flood))
        try:
            closes = before
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                t = time.monotonic()
                self.assertEqual(await self.request(obs, {"op": "ping", "ref": len(rtts)}),
                                 {"op": "pong", "ref": len(rtts)})
                rtts.append(time.monotonic() - t)
                closes = await asyncio.to_thread(metric, port, "storm_ws_slow_consumer_closes_total")
                if closes > before and flooder.done() and len(rtts) >= 5:
                    break
                await asyncio.sleep(0.02)
            # Whatever the close's timing, it is exactly one slow-consumer close.
            self.assertEqual(closes, before + 1,
                             f"slow consumer not closed: sent {state['sent']} x 16 KiB, error {state['error']}")
            worst = max(rtts)
            self.assertLess(worst, 0.5, f"observer RTTs (s) during the flood: {[round(x, 3) for x in rtts]}")
            # The slow socket ends (close frame may be among the dropped bytes).
            self.assertTrue(await asyncio.to_thread(slow.wait_eof, 5.0), "slow consumer's TCP never closed")
        finally:
            stop.set()
            slow.close()
            await flooder
            await obs.close()


if __name__ == "__main__":
    unittest.main()
