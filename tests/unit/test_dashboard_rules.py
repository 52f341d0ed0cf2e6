"""The web listener's pure decisions: access, origins, API routes, CPU rates, redaction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_procmgr import errors
from trio_procmgr.daemon import web, webapi, webstreams
from trio_procmgr.daemon.livestats import cpu_rates


@pytest.mark.parametrize("kind, token, offered, verdict", [
    ("static", None, None, web.ALLOW),
    ("static", "t", None, web.ALLOW),
    ("read", None, None, web.ALLOW),
    ("read", None, "anything", web.ALLOW),
    ("mutate", None, None, web.READ_ONLY),
    ("mutate", None, "anything", web.READ_ONLY),
    ("read", "t", None, web.UNAUTHENTICATED),
    ("read", "t", "wrong", web.UNAUTHENTICATED),
    ("read", "t", "t", web.ALLOW),
    ("mutate", "t", None, web.UNAUTHENTICATED),
    ("mutate", "t", "t", web.ALLOW),
])
def test_access_verdict_follows_the_listener_rules(kind, token, offered, verdict):
    assert web.access_verdict(kind, token, offered) == verdict


def test_only_the_page_and_its_assets_are_static_and_only_api_posts_mutate():
    assert web.request_kind("GET", "/") == "static"
    assert web.request_kind("GET", "/assets/app.js") == "static"
    assert web.request_kind("GET", "/assets/../metrics") == "read"
    assert web.request_kind("GET", "/metrics") == "read"
    assert web.request_kind("GET", "/api/processes/x") == "read"
    assert web.request_kind("POST", "/api/processes/x/stop") == "mutate"
    assert web.request_kind("DELETE", "/api/processes/x") == "mutate"


def test_offered_token_prefers_the_bearer_header():
    assert web.offered_token({"authorization": "Bearer abc"}, {"token": ["q"]}) == "abc"
    assert web.offered_token({"authorization": "bearer  abc "}, {}) == "abc"
    assert web.offered_token({}, {"token": ["q"]}) == "q"
    assert web.offered_token({"authorization": "Basic eA=="}, {}) is None


@pytest.mark.parametrize("headers, read_only, allowed", [
    ({"host": "127.0.0.1:9100"}, True, True),
    ({"host": "localhost:9100", "origin": "http://localhost:9100"}, True, True),
    ({"host": "[::1]:9100"}, True, True),
    ({"host": "127.0.0.1:9100", "origin": "http://evil.example"}, True, False),
    ({"host": "127.0.0.1:9100", "origin": "http://127.0.0.1:9101"}, False, False),
    ({"host": "evil.example:9100", "origin": "http://evil.example:9100"}, True, False),
    ({"host": "box.example:9100", "origin": "http://box.example:9100"}, False, True),
])
def test_origin_rules_refuse_other_sites_and_rebinding(headers, read_only, allowed):
    assert web.origin_allowed(headers, read_only=read_only) is allowed


def test_host_name_strips_the_port():
    assert web.host_name("[::1]:80") == "::1"
    assert web.host_name("a.example:8080") == "a.example"
    assert web.host_name("a.example") == "a.example"


@pytest.mark.parametrize("method, path, route", [
    ("GET", "/api/processes", webapi.ApiRoute("list")),
    ("GET", "/api/processes/", webapi.ApiRoute("list")),
    ("GET", "/api/processes/web%40two", webapi.ApiRoute("describe", "web@two")),
    ("POST", "/api/processes/web/stop", webapi.ApiRoute("action", "web", "stop")),
    ("POST", "/api/processes/web/resume", webapi.ApiRoute("action", "web", "resume")),
])
def test_api_routes(method, path, route):
    assert webapi.parse_route(method, path) == route


@pytest.mark.parametrize("method, path, status", [
    ("POST", "/api/processes", 405),
    ("GET", "/api/processes/web/stop", 405),
    ("POST", "/api/processes/web/delete", 404),
    ("POST", "/api/processes//stop", 400),
    ("GET", "/api/processesX", 404),
])
def test_bad_api_routes_say_what_was_wrong(method, path, status):
    with pytest.raises(webapi.RouteError) as exc:
        webapi.parse_route(method, path)
    assert exc.value.status == status
    assert exc.value.body["error"]["message"]


def test_every_client_error_code_has_a_4xx_status():
    for code in ("PROCESS_NOT_FOUND", "NOT_RUNNING", "ALREADY_RUNNING", "INVALID_STATE",
                 "INVALID_ARGUMENT", "UNAUTHENTICATED", "PERMISSION_DENIED"):
        assert code in errors.ERROR_CODES
        assert 400 <= webapi.STATUS_BY_CODE[code] < 500


def test_redact_hides_env_values_without_touching_the_record():
    record = {"name": "a", "spec": {"env": {"KEY": "secret"}, "command": "x"}}
    shown = webapi.redact(record)
    assert shown["spec"]["env"] == {"KEY": webapi.REDACTED}
    assert record["spec"]["env"] == {"KEY": "secret"}


def test_instance_of_a_template_or_replica_name():
    assert webapi.instance_of("web@3") == "3"
    assert webapi.instance_of("web") is None


def test_cpu_rates_need_two_samples_of_the_same_run():
    first, kept = cpu_rates({}, {("a", 10): (1.0, 0.5, 100), ("b", 11): (None, None, None)},
                            now=100.0)
    assert first == {"a": None, "b": None}
    assert kept == {("a", 10): (100.0, 1.5)}
    second, kept = cpu_rates(kept, {("a", 10): (1.5, 1.0, 100)}, now=102.0)
    assert second == {"a": 50.0}  # 1 CPU second over 2 s
    restarted, _ = cpu_rates(kept, {("a", 12): (0.1, 0.0, 100)}, now=104.0)
    assert restarted == {"a": None}  # a new PID starts a new window


@given(st.text(max_size=200))
def test_token_from_message_never_raises(text):
    token = webstreams.token_from_message(text)
    assert token is None or isinstance(token, str)


def test_token_from_message_reads_only_the_token_field():
    assert webstreams.token_from_message('{"token": "abc"}') == "abc"
    assert webstreams.token_from_message('{"token": 5}') is None
    assert webstreams.token_from_message('["token"]') is None


def test_query_bounds():
    assert web.queue_size({"max_queue": ["0"]}) == 1
    assert web.queue_size({"max_queue": ["10000000"]}) == web.MAX_QUEUE
    assert web.queue_size({"max_queue": ["x"]}) == web.DEFAULT_QUEUE
    assert webstreams.log_lines_wanted({"lines": ["-3"]}) == 0
    assert webstreams.log_lines_wanted({"lines": ["99999"]}) == webstreams.MAX_LOG_LINES
    assert webstreams.log_lines_wanted({}) == webstreams.DEFAULT_LOG_LINES
