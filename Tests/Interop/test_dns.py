"""Hikyaku's stub resolver against a real DNS server (dnsmasq on loopback)."""
import json
import os
import subprocess
import tempfile

import pytest

from conftest import BINARY, dnsmasq, free_udp_port

LONG_TXT = ",".join(["x" * 200] * 4)  # over 512 octets: UDP reply truncated, TCP retry


@pytest.fixture(scope="module")
def dns_server():
    with dnsmasq("--mx-host=example.test,mx1.example.test,10", "--mx-host=example.test,mx2.example.test,20",
                 "--host-record=mx1.example.test,127.0.0.2", "--host-record=mx2.example.test,127.0.0.3,::1",
                 "--txt-record=example.test,v=spf1 ip4:127.0.0.0/8 -all",
                 "--cname=www.example.test,mx1.example.test",
                 "--mx-host=nullmx.test,.,0",
                 "--host-record=xn--r8jz45g.test,127.0.0.4",
                 f"--txt-record=long.test,{LONG_TXT}", local_ttl=300) as port:
        yield port


def query(port, name, rtype, check=True, timeout_ms=None):
    env = dict(os.environ)
    if timeout_ms:
        env["HIKYAKU_DNS_TIMEOUT_MILLISECONDS"] = str(timeout_ms)
    with tempfile.TemporaryDirectory() as data:
        result = subprocess.run([BINARY, "dns", "query", name, rtype, "--server", f"127.0.0.1:{port}", "--json",
                                 "--data-dir", data], capture_output=True, text=True, timeout=60, env=env)
    output = json.loads(result.stdout) if result.stdout.strip() else None
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result.returncode, output


def test_mx_records_in_preference_order_data(dns_server):
    _, answer = query(dns_server, "example.test", "MX")
    assert sorted(r["data"] for r in answer["records"]) == ["10 mx1.example.test", "20 mx2.example.test"]
    assert all(r["ttl"] == 300 for r in answer["records"])


def test_a_aaaa_and_txt(dns_server):
    assert [r["data"] for r in query(dns_server, "mx2.example.test", "A")[1]["records"]] == ["127.0.0.3"]
    assert [r["data"] for r in query(dns_server, "mx2.example.test", "AAAA")[1]["records"]] == ["::1"]
    assert [r["data"] for r in query(dns_server, "example.test", "TXT")[1]["records"]] == ["v=spf1 ip4:127.0.0.0/8 -all"]


def test_cname_is_followed(dns_server):
    _, answer = query(dns_server, "www.example.test", "A")
    assert answer["canonicalName"] == "mx1.example.test"
    assert [r["data"] for r in answer["records"]] == ["127.0.0.2"]


def test_null_mx(dns_server):
    _, answer = query(dns_server, "nullmx.test", "MX")
    assert [r["data"] for r in answer["records"]] == ["0 ."]


def test_idn_is_queried_as_a_label(dns_server):
    _, answer = query(dns_server, "例え.test", "A")
    assert answer["canonicalName"] == "xn--r8jz45g.test"
    assert [r["data"] for r in answer["records"]] == ["127.0.0.4"]


def test_truncated_reply_falls_back_to_tcp(dns_server):
    _, answer = query(dns_server, "long.test", "TXT")
    assert answer["records"][0]["data"] == LONG_TXT.replace(",", "")


def test_nxdomain_is_permanent(dns_server):
    code, output = query(dns_server, "nothing.test", "MX", check=False)
    assert code == 1
    assert output["error"]["code"] == "nxdomain" and output["error"]["transient"] is False


def test_nodata_is_an_empty_answer(dns_server):
    _, answer = query(dns_server, "mx1.example.test", "MX")
    assert answer["records"] == []


def test_silent_server_is_a_transient_timeout():
    port = free_udp_port()  # nothing listens there
    code, output = query(port, "example.test", "MX", check=False, timeout_ms=200)
    assert code == 75
    assert output["error"]["code"] == "timeout" and output["error"]["transient"] is True
