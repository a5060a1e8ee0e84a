"""Raw-socket probes of the daemon's endpoint (HOST PORT given).

  http_probe.py hostile HOST PORT        oversized header, path traversal, other methods: clean errors
  http_probe.py idle HOST PORT SECONDS   200 idle connections and a slow reader held open for SECONDS,
                                         while /healthz must keep answering on fresh connections
"""
import json
import socket
import sys
import time


def exchange(host, port, request, timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    s.sendall(request)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return data


def status_line(data):
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def hostile(host, port):
    results = {}
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    results["oversized_header"] = status_line(exchange(host, port, big))
    many = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n"
    results["too_many_headers"] = status_line(exchange(host, port, many))
    for name, target in [("traversal", b"/../../../../etc/passwd"), ("encoded_traversal", b"/%2e%2e/%2e%2e/etc/passwd"),
                         ("absolute", b"/etc/passwd"), ("state_file", b"/status.json")]:
        data = exchange(host, port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        results[name] = status_line(data)
        results[name + "_leak"] = b"root:" in data
    for method in [b"POST", b"PUT", b"DELETE", b"PATCH"]:
        data = exchange(host, port, method + b" /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        results[method.decode()] = status_line(data)
    results["garbage"] = status_line(exchange(host, port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n"))
    results["after"] = status_line(exchange(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    print(json.dumps(results))


def idle(host, port, seconds):
    idle_sockets = [socket.create_connection((host, port), timeout=10) for _ in range(200)]
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    slow.connect((host, port))
    # Asks for the page over and over and never reads an answer.
    for _ in range(50):
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answered, failed = 0, 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            data = exchange(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
            if status_line(data).startswith("HTTP/1.1 200"):
                answered += 1
            else:
                failed += 1
        except OSError:
            failed += 1
        time.sleep(0.5)
    print(json.dumps({"healthz_ok": answered, "healthz_failed": failed, "idle": len(idle_sockets)}))
    for s in idle_sockets:
        s.close()
    slow.close()


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "hostile":
        hostile(host, port)
    else:
        idle(host, port, float(sys.argv[4]))
