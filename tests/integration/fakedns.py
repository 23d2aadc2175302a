#!/usr/bin/env python3
"""fakedns.py PORT TTL [SECONDS] - a DNS server on 127.0.0.1:PORT (UDP) for tests.

Every A query is answered with 127.0.0.1 and the given TTL; any other type gets an
empty answer. It stops by itself after SECONDS (default 300). Loopback only.
"""
import socket
import struct
import sys
import time


def answer(query: bytes, ttl: int) -> bytes:
    qid, _flags, qdcount = struct.unpack("!HHH", query[:6])
    # the question: labels up to the zero byte, then type and class
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    end += 1
    qtype, _qclass = struct.unpack("!HH", query[end:end + 4])
    question = query[12:end + 4]
    ancount = 1 if qtype == 1 and qdcount == 1 else 0
    head = struct.pack("!HHHHHH", qid, 0x8180, 1, ancount, 0, 0)
    out = head + question
    if ancount:
        # a pointer to the name in the question, A, IN, TTL, 4 bytes, 127.0.0.1
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + bytes([127, 0, 0, 1])
    return out


def main() -> None:
    port, ttl = int(sys.argv[1]), int(sys.argv[2])
    lifetime = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0
    deadline = time.monotonic() + lifetime
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.5)
    print("ready", flush=True)
    while time.monotonic() < deadline:
        try:
            data, peer = sock.recvfrom(512)
        except socket.timeout:
            continue
        try:
            sock.sendto(answer(data, ttl), peer)
        except (IndexError, struct.error):
            pass


if __name__ == "__main__":
    main()
