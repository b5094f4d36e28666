"""Fixtures that run the real `hikyaku` binary on loopback for interop tests.

Each server gets its own temporary data directory and ephemeral ports (the
server prints the ports it bound), and is stopped by PID at the end.
"""
import contextlib
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("HIKYAKU_BIN", str(ROOT / ".build" / "debug" / "hikyaku"))


class Server:
    def __init__(self, data_dir, config):
        self.data_dir = str(data_dir)
        self.config = config
        self.config_path = os.path.join(self.data_dir, "config.json")
        self.proc = None
        self.smtp_port = None
        self.tls_port = None
        self.proxy_port = None
        self.proxy_tls_port = None
        self.admin_port = None
        self.api_port = None
        self.stderr_path = os.path.join(self.data_dir, "server.log")

    def start(self, extra_env=None, wrapper=None):
        os.makedirs(self.data_dir, exist_ok=True)
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)
        env = dict(os.environ)
        env.update(extra_env or {})
        command = [BINARY, "serve", "--config", self.config_path, "--data-dir", self.data_dir]
        if wrapper:
            command = wrapper + command
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        deadline = time.time() + 60
        wanted = 2 if self.config.get("smtp", {}).get("tlsListen", ["x"]) else 1
        if self.config.get("admin", {}).get("listen", "x"):
            wanted += 1
        if self.config.get("api", {}).get("listen", "x"):
            wanted += 1
        if self.config.get("console", {}).get("listen"):
            wanted += 1
        wanted += len(self.config.get("smtp", {}).get("proxyListen", [])) + len(self.config.get("smtp", {}).get("tlsProxyListen", []))
        found = 0
        while found < wanted:
            if time.time() > deadline:
                raise RuntimeError("server did not start; log: " + self.log())
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("server exited; log: " + self.log())
            if line.startswith("hikyaku: listening api "):
                self.api_port = int(line.rsplit(":", 1)[1])
                found += 1
            elif line.startswith("hikyaku: listening console "):
                self.console_port = int(line.rsplit(":", 1)[1])
                found += 1
            elif line.startswith("hikyaku: listening admin "):
                self.admin_port = int(line.rsplit(":", 1)[1])
                found += 1
            elif line.startswith("hikyaku: listening smtp-proxy "):
                self.proxy_port = int(line.rsplit(":", 1)[1])
                found += 1
            elif line.startswith("hikyaku: listening smtp-tls-proxy "):
                self.proxy_tls_port = int(line.rsplit(":", 1)[1])
                found += 1
            elif line.startswith("hikyaku: listening smtp-tls "):
                self.tls_port = int(line.rsplit(":", 1)[1])
                found += 1
            elif line.startswith("hikyaku: listening smtp "):
                self.smtp_port = int(line.rsplit(":", 1)[1])
                found += 1
        return self

    def log(self):
        try:
            return open(self.stderr_path, errors="replace").read()[-4000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def cli(self, *args, check=True):
        result = subprocess.run([BINARY, *args, "--data-dir", self.data_dir], capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"hikyaku {' '.join(args)} failed: {result.stderr}")
        return result

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def raw_message(self, message_id):
        """The stored bytes of a queued message, exactly."""
        result = subprocess.run([BINARY, "queue", "show", message_id, "--raw", "--data-dir", self.data_dir],
                                capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def create_account(self, name="acme", domains=("acme.example",)):
        args = ["account", "create", name]
        for domain in domains:
            args += ["--domain", domain]
        created = self.cli_json(*args)
        return created["account"]["smtpUsername"], created["smtpPassword"]

    def queue(self):
        return self.cli_json("queue", "list")

    def api_key(self, account="acme", scope="admin"):
        """A new API key: (bearer token, AWS access key id, AWS secret)."""
        created = self.cli_json("apikey", "create", "--account", account, "--scope", scope)
        return created["token"], created["key"]["keyID"], created["secret"]

    @property
    def api_url(self):
        return f"http://127.0.0.1:{self.api_port}"

    def admin(self, path):
        """GET on the admin HTTP port: (status, body text)."""
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metric(self, name, **labels):
        """The value of one sample on /metrics, or None."""
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
        for line in self.admin("/metrics")[1].splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            if sample == wanted or (labels and sample.startswith(name + "{") and
                                    all(f'{k}="{v}"' in sample for k, v in labels.items())):
                return float(value)
        return None


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dnsmasq(records, local_ttl, directory):
    """Starts dnsmasq on a free port and waits until it answers; (proc, port).
    It binds the port for UDP and TCP, and a TCP port can be taken even when
    the UDP one was free: then it exits at once and another port is tried."""
    binary = "/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else "dnsmasq"
    for _ in range(5):
        port = free_udp_port()
        proc = subprocess.Popen([binary, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                                 f"--local-ttl={local_ttl}", f"--port={port}", "--listen-address=127.0.0.1",
                                 "--bind-interfaces", "--local=/test/", f"--pid-file={directory}/pid", "--user=root",
                                 *records], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while proc.poll() is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                # A query for the root's SOA: any answer means it is up.
                probe.settimeout(0.2)
                probe.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x01", ("127.0.0.1", port))
                try:
                    probe.recv(512)
                    return proc, port
                except socket.timeout:
                    if time.time() > deadline:
                        proc.terminate()
                        raise RuntimeError("dnsmasq did not answer")
        error = proc.stderr.read().decode()
        if "Address already in use" not in error:
            raise RuntimeError("dnsmasq exited: " + error)
    raise RuntimeError("dnsmasq found no free port")


@contextlib.contextmanager
def dnsmasq(*records, local_ttl=60):
    """A dnsmasq on a free loopback port answering for `.test` from `records`
    (dnsmasq options such as "--mx-host=a.test,mx.a.test,10"); yields the port.
    Names under .test that are not listed are NXDOMAIN."""
    with tempfile.TemporaryDirectory() as directory:
        proc, port = start_dnsmasq(records, local_ttl, directory)
        try:
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def base_config(**smtp):
    # Intake tests keep their mail queued; delivery tests turn delivery on.
    # Domains need not be verified in DNS to be used, and the server does not re-check them by itself
    # (test_dkim.py tests both defaults).
    config = {"hostname": "mx.test", "smtp": {"listen": ["127.0.0.1:0"], "tlsListen": ["127.0.0.1:0"]},
              "delivery": {"enabled": False}, "admin": {"listen": "127.0.0.1:0"}, "api": {"listen": "127.0.0.1:0"},
              "domains": {"requireVerified": False, "reverifySeconds": 0}}
    config["smtp"].update(smtp)
    return config


@pytest.fixture
def make_server():
    servers = []
    temporary = tempfile.TemporaryDirectory(prefix="hikyaku-interop-")

    def factory(start=True, **smtp):
        server = Server(os.path.join(temporary.name, f"server{len(servers)}"), base_config(**smtp))
        servers.append(server)
        return server.start() if start else server

    yield factory
    for server in servers:
        server.kill()
        if getattr(server, "stderr", None):
            server.stderr.close()
    temporary.cleanup()


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def trusted_server(make_server):
    return make_server(trustedNetworks=["127.0.0.0/8"])


class RawClient:
    """A socket client that sends exact bytes (swaks would fix line endings)."""

    def __init__(self, port, host="127.0.0.1", timeout=10, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout, source_address=source)
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """One whole (possibly multi-line) reply, as (code, text)."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed; got " + repr(self.buffer))
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] == b" ":
                return int(lines[0][:3]), "\n".join(lines)

    def command(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def expect_closed(self, timeout=10):
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True

    def begin_data(self, sender="a@example.com", recipient="b@example.org"):
        """Greeting, EHLO, MAIL, RCPT and DATA, without checking the replies."""
        self.reply()
        self.command("EHLO c")
        self.command(f"MAIL FROM:<{sender}>")
        self.command(f"RCPT TO:<{recipient}>")
        self.command("DATA")

    def starttls(self):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock, server_hostname="mx.test")
        self.buffer = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.fixture
def raw():
    clients = []

    def connect(port, **kwargs):
        client = RawClient(port, **kwargs)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def greet(client, name="client.test"):
    code, _ = client.reply()
    assert code == 220
    code, text = client.command(f"EHLO {name}")
    assert code == 250, text
    return text
