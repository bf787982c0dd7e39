#!/usr/bin/env python3
"""linkem.py: a user-space link emulator for deploy/sim/sim.sh.

Used when the kernel has no netem qdisc (sch_netem). It creates two TAP
devices, HOSTSIDE and BRIDGESIDE, and copies Ethernet frames between them:
frames leaving the host (HOSTSIDE -> BRIDGESIDE) get the configured delay,
jitter, loss and rate, as `tc qdisc add dev eth0 root netem ...` would on the
host's own interface; frames towards the host pass unchanged. sim.sh moves
HOSTSIDE into the host's network namespace and enslaves BRIDGESIDE to the
bridge. The TAP devices disappear when this process exits.

    linkem.py HOSTSIDE BRIDGESIDE CONTROL.json READY_FILE

CONTROL.json holds {"delay_ms": D, "jitter_ms": J, "loss_pct": L,
"rate_kbit": R} (missing or 0 = off) and is re-read on SIGHUP.
"""
import collections
import fcntl
import json
import os
import random
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
QUEUE_LIMIT = 10000  # frames, like netem's limit


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


class Shape:
    def __init__(self, path):
        self.path = path
        self.delay = self.jitter = self.loss = self.rate = 0.0
        self.reload = True

    def load(self):
        self.reload = False
        try:
            with open(self.path) as f:
                c = json.load(f)
        except (OSError, ValueError):
            c = {}
        self.delay = float(c.get("delay_ms") or 0) / 1e3
        self.jitter = float(c.get("jitter_ms") or 0) / 1e3
        self.loss = float(c.get("loss_pct") or 0) / 100.0
        self.rate = float(c.get("rate_kbit") or 0) * 1e3 / 8.0  # bytes per second


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    host_name, bridge_name, control, ready = sys.argv[1:]
    shape = Shape(control)
    signal.signal(signal.SIGHUP, lambda *_: setattr(shape, "reload", True))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host = open_tap(host_name)
    bridge = open_tap(bridge_name)
    with open(ready, "w") as f:
        f.write(f"{os.getpid()}\n")

    queue = collections.deque()  # (due, frame), due non-decreasing: FIFO like a wire
    last_due = 0.0
    serial_end = 0.0
    while True:
        if shape.reload:
            shape.load()
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, frame = queue.popleft()
            try:
                os.write(bridge, frame)
            except OSError:
                pass  # link down (cut): the frame is lost
        timeout = max(0.0, queue[0][0] - now) if queue else 1.0
        try:
            readable, _, _ = select.select([host, bridge], [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        if bridge in readable:
            for _ in range(256):
                try:
                    frame = os.read(bridge, 65536)
                except (BlockingIOError, OSError):
                    break
                try:
                    os.write(host, frame)
                except OSError:
                    pass
        if host in readable:
            for _ in range(256):
                try:
                    frame = os.read(host, 65536)
                except (BlockingIOError, OSError):
                    break
                if shape.loss and random.random() < shape.loss:
                    continue
                if len(queue) >= QUEUE_LIMIT:
                    continue
                start = now
                if shape.rate:
                    start = max(now, serial_end) + len(frame) / shape.rate
                    serial_end = start
                due = start + shape.delay
                if shape.jitter:
                    due += random.uniform(-shape.jitter, shape.jitter)
                due = max(due, last_due, now)
                last_due = due
                if due <= now and not queue:
                    try:
                        os.write(bridge, frame)
                    except OSError:
                        pass
                else:
                    queue.append((due, frame))


if __name__ == "__main__":
    main()
