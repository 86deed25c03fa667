"""``fastrapi-compat run``'s flags against uvicorn 0.55's own list (issue 22): every option of
``uvicorn --help`` is either taken, with uvicorn's default, or refused with one line
``Error: --X is not supported by fastrapi-compat: why`` (a flag a later uvicorn adds shows up
here as a failure, not as argparse's "unrecognized arguments"). The options' effects are tested
on the wire in ``tests/differential/test_server_flags.py`` and ``tests/reliability/``."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path

import click
import pytest
import uvicorn

from fastrapi_compat.errors import StartupError
from fastrapi_compat.serve.environment import loop_factory
from fastrapi_compat.serve.server import Config
from fastrapi_compat.tools.cli import build_parser, main
from fastrapi_compat.tools.run_flags import ACCEPTED_VALUES, NOT_SUPPORTED, config_from


def uvicorn_options() -> list[click.Option]:
    options = [param for param in uvicorn.main.params if isinstance(param, click.Option)]
    assert len(options) > 40, "uvicorn's option list not found"
    return options


def run_options() -> dict[str, argparse.Action]:
    """Our ``run`` parser's actions by option string."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = subparsers.choices["run"]
    return {option: action for action in run._actions for option in action.option_strings}


#: A value uvicorn would take for each valued option, and one a test may pass to ours.
SAMPLES = {
    "--host": "0.0.0.0",
    "--port": "8001",
    "--uds": "/tmp/x.sock",
    "--fd": "3",
    "--workers": "2",
    "--reload-dir": "src",
    "--reload-include": "*.toml",
    "--reload-exclude": "tests",
    "--reload-delay": "1.5",
    "--loop": "asyncio",
    "--ws-max-size": "1000",
    "--ws-max-queue": "4",
    "--ws-ping-interval": "1.5",
    "--ws-ping-timeout": "2.5",
    "--lifespan": "on",
    "--log-level": "debug",
    "--forwarded-allow-ips": "10.0.0.0/8",
    "--root-path": "/api",
    "--limit-concurrency": "10",
    "--backlog": "100",
    "--limit-max-requests": "10",
    "--limit-max-requests-jitter": "3",
    "--timeout-keep-alive": "7",
    "--timeout-graceful-shutdown": "3",
    "--header": "X-Frame-Options:DENY",
    "--app-dir": "src",
    "--h11-max-incomplete-event-size": "20000",
    "--ws-per-message-deflate": "false",
    "--ssl-keyfile": "key.pem",
    "--ssl-certfile": "cert.pem",
    "--ssl-keyfile-password": "secret",
    "--ssl-version": "2",
    "--ssl-cert-reqs": "2",
    "--ssl-ca-certs": "ca.pem",
    "--ssl-ciphers": "ECDHE+AESGCM",
}
#: uvicorn's values our parser refuses, per flag taking only some of uvicorn's values.
REFUSED_VALUES = {
    "--http": "zttp",
    "--ws": "websockets",
    "--interface": "wsgi",
}
#: Defaults that differ from uvicorn's, and why (the README's flags table says the same).
DIFFERENT_DEFAULTS = {
    "timeout_graceful_shutdown": 30.0,  # uvicorn waits without limit; the engine cancels after 30 s
    "app_dir": ".",  # uvicorn's "" is the current directory too
}


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("option", [o for p in uvicorn_options() for o in (*p.opts, *p.secondary_opts)])
def test_each_uvicorn_flag_is_taken_or_refused_in_one_line(
    option: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ours = run_options()
    assert option in ours, f"uvicorn's {option} is neither implemented nor refused"
    if option in NOT_SUPPORTED:
        param = next(p for p in uvicorn_options() if option in p.opts)
        value = [] if param.is_flag else ["x"]
        line = one_error_line(capsys, ["run", "m:app", option, *value])
        assert line.startswith(f"Error: {option} is not supported by fastrapi-compat: "), line
        assert line.endswith("."), line
        return
    if option in ACCEPTED_VALUES:
        refused = REFUSED_VALUES[option]
        line = one_error_line(capsys, ["run", "m:app", option, refused])
        assert line.startswith(f"Error: {option} {refused} is not supported by fastrapi-compat: "), line
        for value in ACCEPTED_VALUES[option][0][:2]:
            build_parser().parse_args(["run", "m:app", option, value])
        return
    if option == "--version":
        assert main(["run", "--version"]) == 0
        assert capsys.readouterr().out.startswith("fastrapi-compat ")
        return
    if option in ("--env-file", "--log-config"):
        path = tmp_path / ("x.env" if option == "--env-file" else "log.json")
        path.write_text("")
        value = [str(path)]
    else:
        param = next(p for p in uvicorn_options() if option in (*p.opts, *p.secondary_opts))
        value = [] if param.is_flag else [SAMPLES[option]]
    args = build_parser().parse_args(["run", "m:app", option, *value])
    default = build_parser().parse_args(["run", "m:app"])
    assert vars(args) != vars(default) or option in ("--access-log", "--proxy-headers", "--server-header",
                                                      "--date-header"), option  # fmt: skip


def test_defaults_are_uvicorns() -> None:
    ours = vars(build_parser().parse_args(["run", "m:app"]))
    compared = 0
    for param in uvicorn_options():
        name = param.name
        if name not in ours or param.opts[0] in NOT_SUPPORTED:
            continue
        expected = DIFFERENT_DEFAULTS.get(name, param.default)
        if name == "ssl_ciphers" and expected == "TLSv1":  # uvicorn < 0.55; 0.55's None is ours (both taken)
            expected = None
        if repr(expected) == "Sentinel.UNSET":  # click's "not given" (a repeatable option, a flag)
            expected = [] if getattr(param, "multiple", False) else False if getattr(param, "is_flag", False) else None
        assert ours[name] == expected, (name, ours[name], expected)
        compared += 1
    assert compared >= 30


def test_header_flag_as_uvicorn_parses_it(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["run", "m:app", "--header", "X-A: b", "--header", "x-b:c:d"])
    assert args.headers == [("X-A", " b"), ("x-b", "c:d")]
    line = one_error_line(capsys, ["run", "m:app", "--header", "no-colon"])
    assert "Expected 'Name:Value' format, got 'no-colon'." in line
    line = one_error_line(capsys, ["run", "m:app", "--header", ":value"])
    assert "Expected 'Name:Value' format" in line


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--uds", "/tmp/a.sock", "--fd", "3"], "--uds and --fd"),
        (["--h11-max-incomplete-event-size", "9000", "--limit-request-headers", "9000"], "same limit"),
        (["--env-file", "/nonexistent/.env"], "does not exist"),
        (["--log-config", "/nonexistent/log.json"], "does not exist"),
        (["--loop", "nosuchmodule:factory"], "--loop factory"),
        (["--loop", "zuvloop"], "--loop zuvloop needs zuvloop"),
        (["--loop", "nonsense"], "invalid --loop"),
        (["--header", "bad name:x"], "invalid header name"),
        (["--limit-request-body", "-1"], "--limit-request-body"),
        (["--timeout-request-header", "0"], "--timeout-request-header"),
    ],
)
def test_bad_values_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    if "zuvloop" in argv and importlib.util.find_spec("zuvloop") is not None:
        pytest.skip("zuvloop is installed here: the case is a loop that is not")
    line = one_error_line(capsys, ["run", "m:app", *argv])
    assert fragment in line, line


def test_web_concurrency_is_the_default_worker_count(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "zero")
    assert "invalid $WEB_CONCURRENCY 'zero'" in one_error_line(capsys, ["run", "m:app"])


def test_default_headers_as_uvicorn_encodes_them() -> None:
    assert Config().default_headers() == [(b"server", b"uvicorn")]
    assert Config(server_header=False).default_headers() == []
    given = Config(headers=(("X-A", " b"), ("Server", "mine")))
    assert given.default_headers() == [(b"x-a", b" b"), (b"server", b"mine")]
    assert Config(headers=(("X-A", "b"),)).default_headers() == [(b"server", b"uvicorn"), (b"x-a", b"b")]
    with pytest.raises(StartupError):
        Config(headers=(("x", "a\r\nb"),))


def test_h11_buffer_size_is_the_head_limit() -> None:
    assert Config(h11_max_incomplete_event_size=20000).head_limit() == 20000
    assert Config(h11_max_incomplete_event_size=100).head_limit() == 8192
    assert Config(limit_request_headers=9000).head_limit() == 9000
    assert Config().head_limit() is None


def test_http_values(capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("auto", "h11", "httptools", "h2"):
        args = build_parser().parse_args(["run", "m:app", "--http", value])
        assert config_from(args).http == value
    with pytest.raises(StartupError, match="HTTP/2"):
        Config(http="zttp")
    assert config_from(build_parser().parse_args(["run", "m:app", "--http2"])).http == "auto"
    line = one_error_line(capsys, ["run", "m:app", "--http2", "--http", "h11"])
    assert "--http2 asks for HTTP/2, which --http h11 does not serve" in line


def test_ssl_flags_reach_the_config_and_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastrapi_compat.tools.run_flags import PASSWORD_ENV, worker_argv

    argv = ["run", "m:app", "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem", "--ssl-keyfile-password", "pw",
            "--ssl-ca-certs", "ca.pem", "--ssl-cert-reqs", "1"]  # fmt: skip
    args = build_parser().parse_args(argv)
    config = config_from(args)
    assert (config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password) == ("c.pem", "k.pem", "pw")
    assert (config.ssl_ca_certs, config.ssl_cert_reqs, config.ssl_version, config.ssl_ciphers) == (
        "ca.pem",
        1,
        17,
        None,
    )
    worker = worker_argv(args)
    assert "pw" not in worker  # the password goes through the environment
    worker_args = build_parser().parse_args(worker[3:])
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    assert config_from(worker_args) == config
    assert PASSWORD_ENV not in os.environ  # taken out of the worker's (and its app's) environment


def test_loop_factories() -> None:
    import asyncio

    assert loop_factory("asyncio") is asyncio.new_event_loop
    factory = loop_factory("asyncio:new_event_loop")
    loop = factory()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("auto") is uvloop.new_event_loop


def test_help_lists_the_flags_it_takes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--uds", "--fd", "--env-file", "--log-config", "--use-colors", "--server-header", "--header",
                 "--limit-request-body", "--timeout-request-header", "--h11-max-incomplete-event-size"):  # fmt: skip
        assert flag in out, flag
    assert "--http2" in out
    assert "--reset-contextvars" not in out  # refused flags are not advertised
    assert "--reload-exclude" in out


def test_missing_python_dotenv_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / "x.env"
    env_file.write_text("A=1\n")
    monkeypatch.setitem(sys.modules, "dotenv", None)  # import dotenv now raises ImportError
    line = one_error_line(capsys, ["run", "m:app", "--env-file", str(env_file), "--log-level", "critical"])
    assert line == "Error: --env-file needs python-dotenv: pip install python-dotenv (or 'fastrapi-compat[standard]')."


def test_missing_pyyaml_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "log.yaml"
    config.write_text("version: 1\n")
    monkeypatch.setitem(sys.modules, "yaml", None)
    line = one_error_line(capsys, ["run", "m:app", "--log-config", str(config)])
    assert "is YAML, which needs PyYAML: pip install pyyaml" in line


def test_a_log_config_that_cannot_be_applied_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "log.json"
    config.write_text('{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}')
    line = one_error_line(capsys, ["run", "m:app", "--log-config", str(config)])
    assert line.startswith(f"Error: cannot apply --log-config '{config}': ValueError: "), line


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    """``main(["run", ...])`` configures logging in this process: put uvicorn's and the engine's
    loggers back as they were."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "fastrapi_compat")
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
                    logging.getLogger(name).propagate, logging.getLogger(name).disabled) for name in names}  # fmt: skip
    yield None
    for name, (handlers, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled
