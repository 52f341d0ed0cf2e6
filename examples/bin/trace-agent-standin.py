#!/usr/bin/env python3
"""A stand-in for Datadog's trace-agent, for the socket-activation example.

Takes its listening socket from the daemon the way trace-agent does: the fd number in
DD_APM_NET_RECEIVER_FD, else systemd's LISTEN_FDS (fd 3, checked against LISTEN_PID).
Answers every HTTP request with 200 and a small JSON body naming its pid, how it got
its socket and how many requests it served; reports READY=1 on NOTIFY_SOCKET if given.
"""

import json
import os
import socket
import sys


def inherited_socket() -> tuple[socket.socket, str]:
    fd_text = os.environ.get("DD_APM_NET_RECEIVER_FD")
    if fd_text:
        return socket.socket(fileno=int(fd_text)), "DD_APM_NET_RECEIVER_FD"
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and int(os.environ.get("LISTEN_FDS", "0")) >= 1:
        return socket.socket(fileno=3), "LISTEN_FDS"
    sys.exit("trace-agent-standin: no inherited socket (DD_APM_NET_RECEIVER_FD / LISTEN_FDS)")


def main() -> None:
    listener, how = inherited_socket()
    listener.setblocking(True)
    served = 0
    notify = os.environ.get("NOTIFY_SOCKET")
    if notify:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect("\0" + notify[1:] if notify.startswith("@") else notify)
            s.send(b"READY=1\nSTATUS=serving")
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            served += 1
            body = json.dumps({"pid": os.getpid(), "socket_from": how, "served": served}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() +
                         b"\r\nConnection: close\r\n\r\n" + body)


if __name__ == "__main__":
    main()
