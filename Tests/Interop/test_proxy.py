"""Listeners behind a load balancer: the PROXY protocol header (v1 and v2, as
HAProxy's send-proxy and send-proxy-v2 write it) names the client, which then
decides trust, limits and the trace; only smtp.proxyFrom may send one."""
import socket
import ssl
import struct
import time

import pytest

from conftest import RawClient, greet

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(family, block, command=0x21):
    return SIGNATURE + bytes([command, family]) + struct.pack(">H", len(block)) + block


def v2_tcp4(source, port):
    return v2(0x11, socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + struct.pack(">HH", port, 25))


def v2_tcp6(source, port):
    return v2(0x21, socket.inet_pton(socket.AF_INET6, source) + socket.inet_pton(socket.AF_INET6, "::1") + struct.pack(">HH", port, 25))


@pytest.fixture
def proxied(make_server):
    # The balancer (127.0.0.1) is not trusted to relay; the clients behind it in 203.0.113.0/24 and 2001:db8::/32 are.
    return make_server(trustedNetworks=["203.0.113.0/24", "2001:db8::/32"], proxyListen=["127.0.0.1:0"],
                       tlsProxyListen=["127.0.0.1:0"], proxyFrom=["127.0.0.1/32"], proxyTimeoutSeconds=2)


def send_one(client, recipient="b@example.org"):
    """MAIL, RCPT and DATA after the greeting: the RCPT reply, and the message's reply if RCPT passed."""
    greet(client)
    assert client.command("MAIL FROM:<a@example.com>")[0] == 250
    code, text = client.command(f"RCPT TO:<{recipient}>")
    if code != 250:
        return code, text
    assert client.command("DATA")[0] == 354
    client.send(b"Subject: proxied\r\n\r\nbody\r\n.\r\n")
    return client.reply()


def stored_raw(server):
    (message,) = server.queue()
    return server.raw_message(message["id"])


def test_version_one_names_the_client_for_trust_and_trace(proxied):
    client = RawClient(proxied.proxy_port)
    client.send(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n")
    code, text = send_one(client)
    assert code == 250, text
    raw = stored_raw(proxied)
    assert b"203.0.113.7" in raw, raw[:400]
    # Behind the same balancer, a client outside the trusted networks may not relay: trust is the client's.
    client = RawClient(proxied.proxy_port)
    client.send(b"PROXY TCP4 198.51.100.9 127.0.0.1 40001 25\r\n")
    code, text = send_one(client)
    assert code == 554 and "5.7.1" in text, text
    # Nor may the balancer itself, connecting directly.
    client = RawClient(proxied.smtp_port)
    code, text = send_one(client)
    assert code == 554 and "5.7.1" in text, text


def test_version_two_with_the_session_in_the_same_packet(proxied):
    client = RawClient(proxied.proxy_port)
    client.send(v2_tcp6("2001:db8::5", 40002) + b"EHLO pipelined.test\r\n")
    assert client.reply()[0] == 220
    assert client.reply()[0] == 250, "the bytes after the header reach the session"
    assert client.command("MAIL FROM:<a@example.com>")[0] == 250
    assert client.command("RCPT TO:<b@example.org>")[0] == 250
    assert client.command("DATA")[0] == 354
    client.send(b"Subject: v2\r\n\r\nbody\r\n.\r\n")
    assert client.reply()[0] == 250
    assert b"2001:db8::5" in stored_raw(proxied)


def test_local_and_unknown_serve_the_balancer_as_itself(proxied):
    for header in [v2(0x00, b"", command=0x20), b"PROXY UNKNOWN\r\n"]:
        client = RawClient(proxied.proxy_port)
        client.send(header)
        code, text = send_one(client)
        assert code == 554 and "5.7.1" in text, "a health check is the balancer's own, untrusted connection"
        client.close()


def test_a_health_check_is_never_trusted(make_server):
    # Even with the balancer's own address among the trusted networks, a connection that names no client is not.
    server = make_server(trustedNetworks=["127.0.0.0/8"], proxyListen=["127.0.0.1:0"], proxyFrom=["127.0.0.1/32"])
    client = RawClient(server.proxy_port)
    client.send(v2(0x00, b"", command=0x20))
    code, text = send_one(client)
    assert code == 554 and "5.7.1" in text, text
    client = RawClient(server.proxy_port)
    client.send(b"PROXY TCP4 127.0.0.9 127.0.0.1 40010 25\r\n")
    code, text = send_one(client)
    assert code == 250, "a named client in the trusted networks relays"


def test_only_the_balancer_may_send_a_header(proxied):
    client = RawClient(proxied.proxy_port, source=("127.0.0.2", 0))
    client.send(b"PROXY TCP4 203.0.113.7 127.0.0.1 40003 25\r\n")
    assert client.expect_closed() and client.buffer == b"", "closed unanswered"
    client = RawClient(proxied.proxy_port)
    client.send(v2_tcp4("203.0.113.7", 40004))
    assert client.reply()[0] == 220


@pytest.mark.parametrize("first", [b"EHLO x\r\n", b"PROXY TCP4 203.0.113.7\r\n", b"PROXY TCP4 203.0.113.7 127.0.0.1 1 25\n",
                                   SIGNATURE + b"\x21\x11\xff\xff", b"PROXY " + b"1" * 200, b""],
                         ids=["smtp", "fields", "bare-lf", "v2-64k", "long-v1", "silent"])
def test_a_bad_or_missing_header_closes_and_the_server_answers_on(proxied, first):
    client = RawClient(proxied.proxy_port)
    client.send(first)
    began = time.time()
    assert client.expect_closed(timeout=15) and client.buffer == b"", client.buffer
    if first == b"":
        assert time.time() - began >= 1.5, "closed only after smtp.proxyTimeoutSeconds"
    client = RawClient(proxied.proxy_port)
    client.send(b"PROXY TCP4 203.0.113.7 127.0.0.1 40005 25\r\n")
    assert client.reply()[0] == 220


def test_the_client_limit_counts_clients_not_the_balancer(make_server):
    server = make_server(proxyListen=["127.0.0.1:0"], proxyFrom=["127.0.0.0/8"], maxConnectionsPerClient=1)
    first = RawClient(server.proxy_port)
    first.send(b"PROXY TCP4 203.0.113.7 127.0.0.1 40006 25\r\n")
    assert first.reply()[0] == 220
    second = RawClient(server.proxy_port)
    second.send(b"PROXY TCP4 203.0.113.7 127.0.0.1 40007 25\r\n")
    code, text = second.reply()
    assert code == 421 and "4.7.0" in text
    other = RawClient(server.proxy_port)
    other.send(b"PROXY TCP4 203.0.113.8 127.0.0.1 40008 25\r\n")
    assert other.reply()[0] == 220
    with pytest.raises(RuntimeError, match="smtp.proxyFrom"):
        make_server(proxyListen=["127.0.0.1:0"])


def test_implicit_tls_after_the_header(proxied):
    sock = socket.create_connection(("127.0.0.1", proxied.proxy_tls_port), timeout=10)
    sock.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40009 465\r\n")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(sock, server_hostname="mx.test") as tls:
        assert tls.recv(1024).startswith(b"220 ")
