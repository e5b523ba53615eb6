"""The review site in a real browser: headless Chromium (Debian's chromium, installed by
.ci/browser-setup.sh) opens the index and a CoNN page from file://, the DOM after the page's
scripts ran is checked for the program, the graph and a heatmap, and a screenshot is written.
In CI (CI=true) a missing Chromium fails the test; on a laptop without it the test is skipped."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from autoconn.review.site import build_site
from tests.conftest import FIXTURE_LIBRARY, IN_CI

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if IN_CI:
        pytest.fail("Chromium is missing in CI: .ci/browser-setup.sh should have installed Debian's chromium")
    pytest.skip("no Chromium on this machine (apt-get install chromium chromium-driver)")


def browse(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(FIXTURE_LIBRARY, tmp_path_factory.mktemp("site")).parent


def test_conn_page_in_chromium(site: Path, tmp_path: Path):
    page = (site / "conns" / "reverse.html").resolve()
    dom = browse(tmp_path, page.as_uri() + "#example=2", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    program = html[html.index('id="program"'):html.index('id="provenance"')]
    assert "rasp.Aggregate(flip, rasp.tokens)" in re.sub(r"<[^>]+>", "", program), "program missing"
    assert re.search(r'<svg[^>]*class="rasp-graph"', html) and 'data-node="reverse_' in html, "graph missing"
    assert re.search(r'<svg[^>]*class="heatmap"', html) and 'class="cell"' in html, "heatmap missing"
    # the page's script ran: the example chosen in the URL is the one shown
    shown = re.findall(r'<section class="example( shown)?" data-example="(\d)"', html)
    assert ("", "0") in shown and (" shown", "2") in shown, shown
    shot = tmp_path / "reverse.png"
    result = browse(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1400,2200")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a real rendering, not a blank page


def test_index_filters_in_chromium(site: Path, tmp_path: Path):
    index = (site / "index.html").resolve()
    dom = browse(tmp_path, index.as_uri() + "#name=rev", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    rows = re.findall(r'<tr data-name="([^"]+)" data-kind="[^"]+"( style="display: none;")?>', dom.stdout)
    visible = {name for name, hidden in rows if not hidden}
    assert visible == {"reverse"}, rows
    assert "1 shown" in dom.stdout


@pytest.mark.parametrize("name,tokens", [("reverse", ["e", "a", "d", "d", "b", "c", "a"]), ("sort", [3, 1, 4, 1, 5, 2, 0, 2]),
                                         ("parity", [1, 0, 1, 1, 0, 1])])
def test_typed_input_runs_in_the_page_like_the_runtime(site: Path, tmp_path: Path, name: str, tokens: list):
    """The page's own forward pass (any input the reader types) gives the runtime's output."""
    from autoconn.conn.artifact import Library

    expected = Library(FIXTURE_LIBRARY).get(name).runtime().run([tokens])[0]
    page = (site / "conns" / f"{name}.html").resolve()
    dom = browse(tmp_path, page.as_uri() + "#input=" + "%20".join(str(t) for t in tokens), "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    custom = dom.stdout[dom.stdout.index('id="custom-result"'):]
    custom = custom[:custom.index("</section>")]
    assert re.findall(r'class="model-output">([^<]*)', custom) == [" ".join(str(v) for v in expected)]
    assert '<svg' in custom and 'class="heatmap"' in custom
