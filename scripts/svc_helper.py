#!/usr/bin/env python3
"""Small helpers for scripts/services.sh (stdlib only).

  svc_helper.py ports N
      Print N distinct free TCP ports on 127.0.0.1 (one per line). All sockets are
      held open until every port is chosen, so the ports are distinct.

  svc_helper.py kafka-meta HOST PORT [TOPIC [PARTITIONS]]
      One Kafka MetadataRequest v0 round trip (the protocol a 0.9 broker speaks).
      Exit 0 when the broker lists itself as HOST:PORT and, if TOPIC is given, the
      topic exists with PARTITIONS (default: any number >= 1) partitions that all
      have a leader and answer ListOffsets. Otherwise exit 1 with the reason on stderr.
"""
import socket
import struct
import sys


def free_ports(n):
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return buf


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def i16(self):
        v = struct.unpack_from(">h", self.data, self.pos)[0]
        self.pos += 2
        return v

    def i32(self):
        v = struct.unpack_from(">i", self.data, self.pos)[0]
        self.pos += 4
        return v

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        v = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return v


def kafka_metadata(host, port, topics, timeout=5.0):
    client_id = b"fed-services"
    body = struct.pack(">hhih", 3, 0, 42, len(client_id)) + client_id
    body += struct.pack(">i", len(topics))
    for t in topics:
        tb = t.encode("utf-8")
        body += struct.pack(">h", len(tb)) + tb
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        r = _Reader(_recv_exact(s, size))
    if r.i32() != 42:
        raise ValueError("bad correlation id")
    brokers = []
    for _ in range(r.i32()):
        node, h, p = r.i32(), r.string(), r.i32()
        brokers.append((node, h, p))
    topic_meta = {}
    for _ in range(r.i32()):
        err, name = r.i16(), r.string()
        parts = []
        for _ in range(r.i32()):
            perr, pid, leader = r.i16(), r.i32(), r.i32()
            for _ in range(r.i32()):  # replicas
                r.i32()
            for _ in range(r.i32()):  # isr
                r.i32()
            parts.append((pid, perr, leader))
        topic_meta[name] = (err, parts)
    return brokers, topic_meta


def kafka_list_offsets(host, port, topic, partitions, timeout=5.0):
    """ListOffsets v0 (latest) for each partition: {partition: error_code}.

    The broker answers it only once it really leads the partition (it checks its
    replica manager, not the metadata cache), so it closes the short window after
    topic creation in which metadata already names a leader but a produce with
    acks=0 would be dropped."""
    tb = topic.encode("utf-8")
    body = struct.pack(">hhih", 2, 0, 43, len(b"fed-services")) + b"fed-services"
    body += struct.pack(">ii", -1, 1) + struct.pack(">h", len(tb)) + tb
    body += struct.pack(">i", len(partitions))
    for p in partitions:
        body += struct.pack(">iqi", p, -1, 1)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        r = _Reader(_recv_exact(s, size))
    if r.i32() != 43:
        raise ValueError("bad correlation id")
    errors = {}
    for _ in range(r.i32()):
        r.string()
        for _ in range(r.i32()):
            pid, err = r.i32(), r.i16()
            for _ in range(r.i32()):
                r.pos += 8
            errors[pid] = err
    return errors


def kafka_meta_check(host, port, topic=None, partitions=None):
    # Asking for a named topic may auto-create it; ask for all topics instead.
    brokers, topics = kafka_metadata(host, port, [])
    if not any(h == host and p == port for _, h, p in brokers):
        print(f"broker not yet in metadata (brokers={brokers})", file=sys.stderr)
        return 1
    if topic is None:
        return 0
    if topic not in topics:
        print(f"topic {topic} not yet in metadata", file=sys.stderr)
        return 1
    err, parts = topics[topic]
    if err != 0:
        print(f"topic {topic} error code {err}", file=sys.stderr)
        return 1
    if partitions is not None and len(parts) != partitions:
        print(f"topic {topic} has {len(parts)} partitions, want {partitions}", file=sys.stderr)
        return 1
    if not parts or any(perr != 0 or leader < 0 for _, perr, leader in parts):
        print(f"topic {topic} partitions without leader: {parts}", file=sys.stderr)
        return 1
    errors = kafka_list_offsets(host, port, topic, [pid for pid, _, _ in parts])
    if len(errors) != len(parts) or any(e != 0 for e in errors.values()):
        print(f"topic {topic}: broker does not lead every partition yet: {errors}", file=sys.stderr)
        return 1
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "ports":
        print("\n".join(str(p) for p in free_ports(int(argv[1]))))
        return 0
    if len(argv) >= 3 and argv[0] == "kafka-meta":
        topic = argv[3] if len(argv) > 3 else None
        partitions = int(argv[4]) if len(argv) > 4 else None
        try:
            return kafka_meta_check(argv[1], int(argv[2]), topic, partitions)
        except (OSError, ValueError, struct.error) as e:
            print(f"metadata request failed: {e}", file=sys.stderr)
            return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
