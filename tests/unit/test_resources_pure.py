"""Pure parts of the resources feature: enforcement report, prlimit wrapper, /proc parsers, stats."""

from __future__ import annotations

import ipaddress
import resource
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_procmgr.engine.resources import (
    enforcement_report, group_of, not_enforced, prlimit_argv, uncontrolled_report,
)
from trio_procmgr.engine.stats import cpu_percent, summarize
from trio_procmgr.platform import procfs
from trio_procmgr.platform.procfs import ProcSample, SocketEntry
from trio_procmgr.spec import GroupSpec, Quantities, ResourcesSpec

AS = resource.RLIMIT_AS
NPROC = resource.RLIMIT_NPROC


def cg_entry(value, enforced=True, mechanism="cgroup-v1 memory.limit_in_bytes", **extra):
    return {"value": value, "enforced": enforced, "mechanism": mechanism, **extra}


def test_cgroup_enforced_limits_are_keyed_by_config_field_with_service_scope():
    report = enforcement_report({"memory.max": cg_entry(100), "cpu.weight": cg_entry(0.5)},
                                [], child_uid=0, via="none")
    assert report == {
        "limits.memory": {"value": 100, "enforced": True, "scope": "service",
                          "mechanism": "cgroup-v1 memory.limit_in_bytes"},
        "requests.cpu": {"value": 0.5, "enforced": True, "scope": "service",
                         "mechanism": "cgroup-v1 memory.limit_in_bytes"},
    }
    assert not_enforced(report) == []


def test_memory_without_controller_is_enforced_per_process_by_rlimit_as_with_a_warning():
    report = enforcement_report({"memory.max": cg_entry(100, False, "rlimit ...")},
                                [(AS, 100, 100)], child_uid=1000, via="set by prlimit(1) before exec")
    row = report["limits.memory"]
    assert row["enforced"] is True and row["scope"] == "process"
    assert row["mechanism"] == "rlimit RLIMIT_AS (set by prlimit(1) before exec)"
    assert "not the service's memory" in row["warning"]


@pytest.mark.parametrize("uid,enforced", [(0, False), (1000, True)])
def test_pids_fallback_is_per_user_and_useless_for_root(uid, enforced):
    report = enforcement_report({"pids.max": cg_entry(20, False)}, [(NPROC, 20, 20)],
                                child_uid=uid, via="v")
    row = report["limits.pids"]
    assert row["enforced"] is enforced and row["scope"] == "user"
    assert ("ignored for root" in row["warning"]) is (uid == 0)


def test_cpu_without_controller_is_reported_not_enforced():
    report = enforcement_report(uncontrolled_report(
        ResourcesSpec(Quantities(cpu=0.5), Quantities(cpu=2))), [], child_uid=0, via="none")
    assert not_enforced(report) == ["limits.cpu", "requests.cpu"]
    assert report["limits.cpu"]["mechanism"] == "none"
    assert "no cpu controller" in report["limits.cpu"]["warning"]


def test_a_refused_write_is_not_enforced_and_says_why():
    entry = cg_entry(1, False, "cgroup-v1 memory.limit_in_bytes",
                     error="memory.limit_in_bytes: Device or resource busy")
    row = enforcement_report({"memory.max": entry}, [], child_uid=0, via="none")["limits.memory"]
    assert row["enforced"] is False and "Device or resource busy" in row["warning"]


def test_group_limits_never_fall_back_to_rlimits():
    row = enforcement_report({"memory.max": cg_entry(1, False)}, [(AS, 1, 1)], child_uid=0,
                             via="v", scope="group")["limits.memory"]
    assert row["enforced"] is False and row["scope"] == "group"
    assert "group limit needs a cgroup controller" in row["warning"]


def test_uncontrolled_report_lists_only_set_limits():
    assert uncontrolled_report(None) == {}
    assert set(uncontrolled_report(ResourcesSpec(limits=Quantities(pids=3)))) == {"pids.max"}


def test_prlimit_wrapper_sets_soft_and_hard_then_ends_options():
    assert prlimit_argv([(AS, 10, 10), (NPROC, 5, 6)], "/usr/bin/prlimit") == [
        "/usr/bin/prlimit", "--as=10:10", "--nproc=5:6", "--"]


def test_group_of_finds_the_owning_group():
    groups = {"a": GroupSpec("a", members=("x",)), "b": GroupSpec("b", members=("y", "z"))}
    assert group_of(groups, "z").name == "b"
    assert group_of(groups, "nobody") is None


def test_stat_parsing_survives_hostile_command_names():
    fields = ["S"] + ["0"] * 50
    fields[11], fields[12], fields[17] = "250", "50", "7"
    text = "123 (evil ) (name) " + " ".join(fields)
    assert procfs.parse_stat(text, ticks=100) == (7, 2.5, 0.5)


def test_statm_io_and_fd_links():
    assert procfs.parse_statm("100 25 3 1 0 20 0", page_size=4096) == 25 * 4096
    io = "rchar: 1\nwchar: 2\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n"
    assert procfs.parse_io(io) == (4096, 8192)
    assert procfs.socket_inode("socket:[4242]") == 4242
    assert procfs.socket_inode("pipe:[4242]") is None
    assert procfs.socket_inode("/dev/null") is None


HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def net_line(local: str, remote: str, st: str, inode: int) -> str:
    return f"   0: {local} {remote} {st} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0 100 0 0 10 0\n"


def test_net_table_keeps_only_wanted_inodes_and_decodes_addresses():
    text = HEADER + net_line("0100007F:1F90", "00000000:0000", "0A", 11) \
        + net_line("0100007F:1F91", "0100007F:A732", "01", 12)
    assert procfs.parse_net_table(text, "tcp", {11}) == {
        11: SocketEntry("tcp", "127.0.0.1:8080", "0.0.0.0:0", "LISTEN")}
    udp = HEADER + net_line("0100007F:0035", "00000000:0000", "07", 13)
    assert procfs.parse_net_table(udp, "udp", {13})[13].state == "LISTEN"


@given(st.integers(0, 2**128 - 1), st.integers(0, 65535))
def test_ipv6_addresses_round_trip_the_kernel_word_order(value, port):
    raw = value.to_bytes(16, "big")
    kernel = struct.pack("<4I", *struct.unpack(">4I", raw)).hex().upper()
    text = HEADER + net_line(f"{kernel}:{port:04X}", "0" * 32 + ":0000", "0A", 1)
    entry = procfs.parse_net_table(text, "tcp6", {1})[1]
    host, _, got_port = entry.local.rpartition(":")
    assert ipaddress.IPv6Address(host.strip("[]")) == ipaddress.IPv6Address(raw)
    assert int(got_port) == port


@given(st.integers(0, 2**32 - 1), st.integers(0, 65535))
def test_ipv4_addresses_round_trip(value, port):
    raw = value.to_bytes(4, "big")
    kernel = raw[::-1].hex().upper()
    text = HEADER + net_line(f"{kernel}:{port:04X}", "00000000:0000", "0A", 1)
    assert procfs.parse_net_table(text, "tcp", {1})[1].local == \
        f"{socket.inet_ntoa(raw)}:{port}"


def sample(pid, **kw):
    return ProcSample(pid, **kw)


def test_summarize_prefers_cgroup_counters_and_subtracts_the_spawn_baseline():
    counters = {"memory_current": 500, "memory_limit": 1000, "cpu_user_seconds": 12.0,
                "cpu_system_seconds": 3.0, "pids_current": 9, "pids_limit": 20, "oom_kills": 1}
    procs = [sample(1, rss=100, threads=4, open_fds=5, read_bytes=1, write_bytes=2),
             sample(2, rss=50, threads=1, open_fds=3)]
    socks = {7: (2, SocketEntry("udp", "127.0.0.1:53", "0.0.0.0:0", "LISTEN")),
             8: (1, SocketEntry("tcp", "127.0.0.1:80", "0.0.0.0:0", "LISTEN"))}
    out = summarize(counters, procs, socks, running=True, baseline_cpu=(10.0, 1.0), cpu_limit=2)
    assert out["memory_current"] == 500 and out["memory_rss"] == 150
    assert out["memory_percent"] == 50.0
    assert (out["cpu_user_seconds"], out["cpu_system_seconds"]) == (2.0, 2.0)
    assert out["pids_current"] == 9 and out["threads"] == 5 and out["processes"] == 2
    assert out["open_fds"] == 8 and out["io_read_bytes"] == 1 and out["io_write_bytes"] == 2
    assert out["tcp_sockets"] == 1 and out["udp_sockets"] == 1
    assert [s["proto"] for s in out["sockets"]] == ["tcp", "udp"]
    assert out["sources"] == {"memory": "cgroup", "cpu": "cgroup", "pids": "cgroup"}


def test_summarize_without_cgroup_sums_processes():
    procs = [sample(1, rss=100, threads=2, cpu_user=1.5, cpu_system=0.5),
             sample(2, rss=50, threads=1, cpu_user=0.5)]
    out = summarize({}, procs, {}, running=True)
    assert out["memory_current"] == 150 and out["memory_limit"] is None
    assert out["memory_percent"] is None
    assert out["cpu_user_seconds"] == 2.0 and out["cpu_system_seconds"] == 0.5
    assert out["pids_current"] == 3
    assert out["sources"]["memory"] == "procfs"


@given(st.floats(0, 1e6), st.floats(0, 1e3), st.floats(0, 1e6), st.floats(0.001, 1e3))
def test_cpu_percent_is_never_negative_and_none_without_elapsed_time(cpu, used, since, elapsed):
    got = cpu_percent(cpu + used, cpu, since + elapsed, since)
    if since + elapsed > since:
        assert got is not None and got >= 0
    assert cpu_percent(cpu, cpu + used, since, since) is None
    later = cpu_percent(cpu, cpu + used, since + elapsed, since)
    assert later is None or later == 0.0
