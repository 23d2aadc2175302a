#!/usr/bin/env python3
"""tcpproxy.py - a small TCP proxy for the fault tests (tests/integration/test_faults.sh).

    tcpproxy.py LISTEN_PORT TARGET_PORT [--rate BYTES_PER_SECOND] [--lifetime SECONDS]

Listens on 127.0.0.1:LISTEN_PORT and forwards every connection to
127.0.0.1:TARGET_PORT, both ways, bytes unchanged (TLS passes through).
--rate slows the server-to-client direction of each connection down, so that
a copy through the proxy lasts long enough to be interrupted. The test
freezes the path with SIGSTOP: the kernel still accepts new connections into
the listen backlog and buffers what arrives, but nothing is forwarded or
answered any more (a hung middlebox or peer), until SIGCONT. The proxy exits
by itself after --lifetime seconds (default 900), so a test that dies cannot
leave it running. Loopback only.
"""
import selectors
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    rate = 0
    lifetime = 900.0
    if "--rate" in args:
        i = args.index("--rate")
        rate = int(args[i + 1])
        del args[i : i + 2]
    if "--lifetime" in args:
        i = args.index("--lifetime")
        lifetime = float(args[i + 1])
        del args[i : i + 2]
    listen_port, target_port = int(args[0]), int(args[1])
    deadline = time.monotonic() + lifetime

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", listen_port))
    lsock.listen(128)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    peer = {}  # socket -> the socket it forwards to
    budget = {}  # server-side socket -> (bytes allowed, at)

    def close_pair(s):
        for x in (s, peer.get(s)):
            if x is None:
                continue
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()
            peer.pop(x, None)
            budget.pop(x, None)

    print("listening", flush=True)
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            if s is lsock:
                try:
                    client, _ = lsock.accept()
                except BlockingIOError:
                    continue
                server = socket.create_connection(("127.0.0.1", target_port))
                client.setblocking(False)
                server.setblocking(False)
                peer[client], peer[server] = server, client
                sel.register(client, selectors.EVENT_READ, "client")
                sel.register(server, selectors.EVENT_READ, "server")
                continue
            if s not in peer:
                continue
            want = 65536
            if rate and key.data == "server":
                allowed, at = budget.get(s, (0.0, time.monotonic()))
                now = time.monotonic()
                allowed = min(allowed + (now - at) * rate, rate / 4)
                if allowed < 1024:
                    budget[s] = (allowed, now)
                    time.sleep(0.01)
                    continue
                want = int(min(want, allowed))
                budget[s] = (allowed, now)
            try:
                data = s.recv(want)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                close_pair(s)
                continue
            if rate and key.data == "server":
                allowed, at = budget[s]
                budget[s] = (allowed - len(data), at)
            try:
                peer[s].setblocking(True)
                peer[s].sendall(data)
                peer[s].setblocking(False)
            except OSError:
                close_pair(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
