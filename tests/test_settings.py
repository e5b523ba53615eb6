"""autoconn.settings: the one place the user's environment is read, at call time, checked, with
the API key never shown. The README's "Settings" table and the code's list are held together."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from autoconn import settings
from autoconn.endpoint import ChatEndpoint, EndpointConfig, EndpointError
from autoconn.inducers.llm import LLMInducer, LLMSettings
from autoconn.settings import VARIABLES, Secret, SettingsError, load
from tests.conftest import REPO

KEY = "sk-do-not-print-4f9c2e"
READS_ENV = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[|environ\.get\(")
# read by faults.py, and by the test suite
TEST_HOOKS = ("AUTOCONN_KILL_AT", "AUTOCONN_KILL_ONCE", "AUTOCONN_NO_EXCHANGE", "AUTOCONN_FULL_BENCH")


def clean_env(**values: str) -> dict[str, str]:
    return dict(values)


def test_defaults_when_nothing_is_set():
    chosen = load(clean_env())
    assert chosen.model is None and chosen.base_url is None and chosen.api_key is None
    assert (chosen.llm_timeout, chosen.llm_retries, chosen.llm_samples, chosen.llm_max_tokens,
            chosen.llm_fewshot) == (120.0, 4, 4, 4096, 3)
    assert chosen.llm_temperature is None and chosen.sandbox_image == "autoconn-sandbox:latest"


def test_every_variable_is_read_and_parsed():
    chosen = load(clean_env(AUTOCONN_MODEL="m", OPENAI_BASE_URL="http://localhost:8000/v1/", OPENAI_API_KEY=KEY,
                            AUTOCONN_LLM_TIMEOUT="7.5", AUTOCONN_LLM_RETRIES="0", AUTOCONN_LLM_SAMPLES="6",
                            AUTOCONN_LLM_TEMPERATURE="0.3", AUTOCONN_LLM_MAX_TOKENS="99", AUTOCONN_LLM_FEWSHOT="0",
                            AUTOCONN_SANDBOX_IMAGE="mine:1", AUTOCONN_CACHE_DIR="/tmp/c"))
    assert chosen.model == "m" and chosen.base_url == "http://localhost:8000/v1" and chosen.api_key == Secret(KEY)
    assert (chosen.llm_timeout, chosen.llm_retries, chosen.llm_samples, chosen.llm_temperature) == (7.5, 0, 6, 0.3)
    assert (chosen.llm_max_tokens, chosen.llm_fewshot, chosen.sandbox_image,
            chosen.cache_dir) == (99, 0, "mine:1", Path("/tmp/c"))


def test_an_empty_variable_counts_as_unset():
    assert load(clean_env(AUTOCONN_LLM_TIMEOUT="", AUTOCONN_MODEL=" ")) == load(clean_env())


@pytest.mark.parametrize(("name", "raw", "says"), [
    ("AUTOCONN_LLM_TIMEOUT", "abc", "is not a number: write one like 120"),
    ("AUTOCONN_LLM_TIMEOUT", "0", "must be more than 0"),
    ("AUTOCONN_LLM_TIMEOUT", "inf", "is not a finite number"),
    ("AUTOCONN_LLM_RETRIES", "2.5", "is not a whole number: write one like 4"),
    ("AUTOCONN_LLM_SAMPLES", "17", "must be from 1 to 16"),
    ("AUTOCONN_LLM_TEMPERATURE", "3", "at most 2"),
    ("AUTOCONN_LLM_MAX_TOKENS", "0", "must be at least 1"),
    ("AUTOCONN_LLM_FEWSHOT", "-1", "must be from 0 to 20"),
    ("OPENAI_BASE_URL", "localhost:8000/v1", "is not an http(s) URL"),
    ("AUTOCONN_SANDBOX_IMAGE", "my image", "is not a Docker image name"),
])
def test_a_bad_value_names_its_variable_and_what_to_write(name: str, raw: str, says: str):
    with pytest.raises(SettingsError) as caught:
        load(clean_env(**{name: raw}))
    assert str(caught.value).startswith(f"{name}={raw!r}") and says in str(caught.value)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        load(clean_env(AUTOCONN_LLM_SAMPLES="x", AUTOCONN_LLM_RETRIES="y"))
    assert "AUTOCONN_LLM_SAMPLES" in str(caught.value) and "AUTOCONN_LLM_RETRIES" in str(caught.value)


def test_flags_win_over_the_environment_and_are_checked_by_the_same_rules():
    chosen = load(clean_env(AUTOCONN_MODEL="env-model", AUTOCONN_LLM_SAMPLES="6")).with_flags(
        model="flag-model", llm_samples=None)
    assert chosen.model == "flag-model" and chosen.llm_samples == 6  # None: the flag was not given
    with pytest.raises(SettingsError, match=r"--base-url='ftp://x' is not an http\(s\) URL"):
        chosen.with_flags(base_url="ftp://x")


def test_the_cache_dir_follows_xdg_unless_set(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(settings.os, "geteuid", lambda: 1000)
    assert load(clean_env(XDG_CACHE_HOME="/x/cache")).cache_dir == Path("/x/cache/autoconn")
    assert load(clean_env()).cache_dir == Path.home() / ".cache" / "autoconn"
    assert load(clean_env(XDG_CACHE_HOME="/x/cache", AUTOCONN_CACHE_DIR="/y")).cache_dir == Path("/y")


def test_settings_are_read_at_call_time_not_import_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from autoconn.inducers import llm_configured
    from autoconn.sandbox.docker_backend import image_name
    from autoconn.sandbox.process import cache_root

    monkeypatch.delenv("AUTOCONN_MODEL", raising=False)
    assert not llm_configured()
    monkeypatch.setenv("AUTOCONN_SANDBOX_IMAGE", "later:2")
    monkeypatch.setenv("AUTOCONN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("AUTOCONN_MODEL", "now-set")
    assert image_name() == "later:2" and cache_root() == tmp_path and llm_configured()


def test_only_the_settings_module_reads_the_environment():
    """Besides the crash tests' fault hooks, no module reads a variable of its own."""
    readers = [str(path.relative_to(REPO)) for path in (REPO / "autoconn").rglob("*.py")
               if READS_ENV.search(path.read_text(encoding="utf-8"))]
    assert sorted(readers) == ["autoconn/faults.py", "autoconn/settings.py"]


def test_every_setting_and_test_hook_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| `")}
    for variable in VARIABLES:
        row = rows.get(f"`{variable.name}`" + (f" / `{variable.flag}`" if variable.flag else ""))
        assert row is not None, f"{variable.name} has no row in the README's Settings table"
        assert variable.default in row, f"{variable.name}: the README does not give its default {variable.default!r}"
    documented = set(re.findall(r"`((?:AUTOCONN|OPENAI)_[A-Z_]+)[`=]", section))
    in_code = {v.name for v in VARIABLES} | set(TEST_HOOKS)
    assert documented == in_code
    hooks = set(re.findall(r"environ\.get\(\"(AUTOCONN_[A-Z_]+)\"",
                           (REPO / "autoconn" / "faults.py").read_text(encoding="utf-8")))
    assert hooks and hooks <= set(TEST_HOOKS)


def test_the_key_is_in_no_repr_str_or_json_of_any_settings_object():
    chosen = load(clean_env(AUTOCONN_MODEL="m", OPENAI_API_KEY=KEY))
    config = EndpointConfig.from_settings(chosen)
    endpoint = ChatEndpoint(config)
    endpoint.client()  # the openai client, made with the key, is part of the endpoint now
    inducer = LLMInducer(endpoint, LLMSettings.from_settings(chosen))
    assert config.api_key.reveal() == KEY  # the key is there, for the client
    for thing in (chosen, chosen.api_key, config, endpoint, inducer, inducer.settings):
        for shown in (repr(thing), str(thing), f"{thing}"):
            assert KEY not in shown, type(thing).__name__
    for data in (asdict(chosen), asdict(config)):
        assert KEY not in json.dumps(data, default=str)


def test_an_endpoint_not_configured_says_what_to_set():
    with pytest.raises(EndpointError, match="set AUTOCONN_MODEL"):
        EndpointConfig.from_settings(load(clean_env()))
    with pytest.raises(EndpointError, match="OPENAI_API_KEY is not set"):
        EndpointConfig.from_settings(load(clean_env(AUTOCONN_MODEL="m")))
    local = EndpointConfig.from_settings(load(clean_env(AUTOCONN_MODEL="m", OPENAI_BASE_URL="http://127.0.0.1:9/v1")))
    assert local.api_key.reveal() == "not-needed"


@pytest.mark.parametrize("command", [["sandbox", "status"], ["induce", "x.jsonl", "--inducer", "llm"]])
def test_a_bad_setting_through_the_cli_is_one_line_and_exit_2(tmp_path: Path, command: list[str]):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTOCONN_"))}
    environment |= {"AUTOCONN_MODEL": "m", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "AUTOCONN_LLM_TIMEOUT": "soon"}
    (tmp_path / "x.jsonl").write_text("".join(json.dumps({"input": list(w), "output": len(w)}) + "\n"
                                              for w in ["a", "ab", "abc", "b", "ba", "bab", "aa", "bb", "aab", "abab"]))
    result = subprocess.run([sys.executable, "-m", "autoconn.cli", *command], check=False, cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "AUTOCONN_LLM_TIMEOUT='soon' is not a number" in result.stderr and "Traceback" not in result.stderr
