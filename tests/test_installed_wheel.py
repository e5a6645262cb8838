"""The package as docs/operations.md installs it: a wheel, in a fresh venv, away from the source.

Every other test imports the checkout (an editable install), where a template that the
wheel leaves out is still on disk: the desk once answered 500 on /review/ for everyone who
followed the documented `pip install /opt/aggregator/src`, with every test green. Here the
wheel is built from a copy of the checkout (its tracked files and new untracked ones, as a
clone would hold them, so no build/ directory of an earlier build can add files), its file
list is compared with `git ls-files aggregator`, and it is installed into a new venv in a
temporary directory. The build is isolated, as pip's install from a folder is, so it
takes setuptools from the package index as [build-system] says (as `make install` does).
Only the package comes from the wheel: its dependencies are the dev venv's, seen through a
.pth line (a site directory added that way has its own .pth files ignored, so the dev
venv's editable hook to the checkout never runs), which keeps the install fast and
offline. The installed `aggregator` program then polls the local newsletters,
serves the desk, and an editor logs in with Chromium, approves a draft and finds it in
the published feed.

The end-to-end part needs /usr/bin/chromium (tests/browser.py says how it is driven):
skipped without it, failed instead when AGGREGATOR_TEST_STRICT=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
import httpx
import lxml.html
import pytest
from conftest import _wait_until_healthy, stop
from newsroom import MUSK_TITLE, PASSWORD, config_text, free_port, serve_newsletters
from servers import LibreTranslateServer, UpstreamServer

REPO = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_SECONDS = 90
COMMAND_TIMEOUT_SECONDS = 60
MUSK_SLUG = "/does-elon-musk-want-to-buy-openai/"


def _git(*args: str) -> list[str] | None:
    """NUL-separated output of a git command in the checkout; None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, timeout=60, check=False
        )
    except FileNotFoundError:
        return None
    if done.returncode != 0:
        return None
    return [name for name in done.stdout.decode().split("\0") if name]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    tracked: frozenset[str]  # files of the package that git tracks
    untracked: frozenset[str]  # new files not yet tracked (nor ignored)

    @property
    def program(self) -> Path:
        return self.venv / "bin" / "aggregator"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _copy_source(destination: Path) -> tuple[frozenset[str], frozenset[str]]:
    tracked = _git("ls-files", "-z", "--cached")
    untracked = _git("ls-files", "-z", "--others", "--exclude-standard")
    if tracked is None or untracked is None:
        pytest.skip("not a git checkout: the files a clone would hold are unknown")
    for name in [*tracked, *untracked]:
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working copy is not copied
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)

    def package(names: list[str]) -> frozenset[str]:
        return frozenset(n for n in names if n.startswith("aggregator/") and (REPO / n).is_file())

    return package(tracked), package(untracked)


def _run(command: list[str | Path], *, cwd: Path, timeout: float, **kwargs: Any) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"`{' '.join(map(str, command))}` exited {done.returncode}\n"
            f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
        )
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    assert not work.resolve().is_relative_to(REPO), "the venv must live outside the checkout"
    source = work / "src"
    tracked, untracked = _copy_source(source)
    # Build isolation, as `pip install /opt/aggregator/src` does: the [build-system] of
    # pyproject.toml is what builds, not whatever setuptools the dev venv has.
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work / "dist", source],
        cwd=work,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    [wheel] = (work / "dist").glob("aggregator-*.whl")

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work, timeout=60)
    fresh = venv / "bin" / "python"
    site = _run(
        [fresh, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=work,
        timeout=60,
    ).strip()
    dev_dirs = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(site) / "dev-venv-dependencies.pth").write_text(
        "".join(f"{path}\n" for path in dev_dirs), encoding="utf-8"
    )
    _run(
        [sys.executable, "-m", "pip", "--python", fresh, "install", "--no-deps", "--quiet", wheel],
        cwd=work,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    return Installed(wheel, venv, tracked, untracked)


def _clean_environment() -> dict[str, str]:
    # Nothing may lead the installed program back to the checkout.
    hidden = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["PYTHONNOUSERSITE"] = "1"
    return env


# ---------------------------------------------------------------- the wheel's contents


def test_the_wheel_holds_every_tracked_file_of_the_package(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        packaged = {n for n in archive.namelist() if n.startswith("aggregator/")}
    missing = installed.tracked - packaged
    assert not missing, f"tracked files left out of {installed.wheel.name}: {sorted(missing)}"
    # New files not yet tracked may be packaged; nothing else may appear.
    unexpected = packaged - installed.tracked - installed.untracked
    assert not unexpected, f"files in the wheel that the checkout lacks: {sorted(unexpected)}"
    assert "aggregator/templates/review/queue.html" in packaged  # the file once left out


def test_the_installed_program_imports_the_installed_package(
    installed: Installed, tmp_path: Path
) -> None:
    shown = _run(
        [installed.python, "-c", "import json, sys, aggregator; "
         "print(json.dumps([aggregator.__file__, sys.path]))"],
        cwd=tmp_path, timeout=COMMAND_TIMEOUT_SECONDS, env=_clean_environment(),
    )  # fmt: skip
    where, path = json.loads(shown)
    assert Path(where).is_relative_to(installed.venv)
    assert not any(Path(p).resolve() == REPO for p in path if p)


# ---------------------------------------------------------------- the documented path


@dataclass
class Site:
    folder: Path
    config: Path
    base_url: str
    program: Path

    def cli(self, *args: str) -> str:
        return _run(
            [self.program, "--config", self.config, *args],
            cwd=self.folder,
            timeout=COMMAND_TIMEOUT_SECONDS,
            env=_clean_environment(),
        )

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args))


@pytest.fixture
def site(installed: Installed, tmp_path: Path) -> Iterator[Site]:
    """A config.toml for the installed program: the newsletters and LibreTranslate of
    tests/newsroom.py on 127.0.0.1, the review password in a file."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "review-password").write_text(PASSWORD + "\n", encoding="utf-8")
    port = free_port()
    with UpstreamServer() as upstream, LibreTranslateServer() as libretranslate:
        serve_newsletters(upstream)
        config = folder / "config.toml"
        extra = '[review]\npassword_file = "review-password"\n'
        config.write_text(
            config_text(folder / "aggregator.db", upstream, libretranslate.url("/"), port, extra),
            encoding="utf-8",
        )
        yield Site(folder, config, f"http://127.0.0.1:{port}", installed.program)


@contextmanager
def _served(site: Site) -> Iterator[str]:
    """`aggregator serve` from the venv, until it answers /healthz; yields its base URL."""
    log_path = site.folder / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(site.program), "--config", str(site.config), "serve"],
            cwd=site.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_clean_environment(),
        )
        try:
            _wait_until_healthy(process, site.base_url, log_path)
            yield site.base_url
        finally:
            stop(process)


def test_installed_wheel_polls_an_editor_approves_in_chromium_and_the_feed_has_it(
    browser: Any,
    site: Site,
) -> None:
    site.cli("db", "upgrade")
    # One newsletter is enough here (each command pays for starting Python afresh).
    site.cli("poll", "--feed", "The Torment Nexus")
    drafts = site.cli_json("drafts", "list", "--json")
    [musk] = [d for d in drafts if d["original_url"].endswith(MUSK_SLUG)]
    assert musk["title"] and musk["title"] != MUSK_TITLE  # translated

    # The desk, from the installed templates and static files.
    with _served(site) as base_url:
        context = browser.new_context(base_url=base_url, locale="fr-FR")
        # Images of the original pages point elsewhere: only the aggregator is reached.
        context.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(base_url) else route.abort()
            ),
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        answers: list[str] = []
        page.on("response", lambda r: answers.append(f"{r.status} {r.url}"))
        first = page.goto("/review/")  # the login form, with its stylesheet and script
        assert first is not None and first.status == 401
        page.fill("input[name=name]", "Camille")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/review/")
        page.click(f"a[href='/review/drafts/{musk['id']}']")
        page.wait_for_url(f"**/review/drafts/{musk['id']}")
        page.click("form[data-key=a] button")
        page.wait_for_url("**done=approved")
        failures = [a for a in answers if not a.startswith(("2", "3"))]
        assert failures == [f"401 {base_url}/review/"]
        assert f"200 {base_url}/static/review.css" in answers
        assert f"200 {base_url}/static/review.js" in answers

        feed = httpx.get(f"{base_url}/feeds/published.atom", trust_env=False)
        article = httpx.get(f"{base_url}/articles/{musk['id']}", trust_env=False)

    assert feed.status_code == 200
    parsed = feedparser.parse(feed.content)
    assert not parsed.bozo, parsed.bozo_exception
    [entry] = parsed.entries
    assert entry.title == musk["title"]
    assert entry.content[0].language == "fr"
    assert "relue par Camille" in entry.content[0].value
    assert article.status_code == 200
    assert lxml.html.fromstring(article.text).findtext(".//h1") == musk["title"]
