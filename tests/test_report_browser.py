"""The audit report in headless Chromium (network blocked): every section renders, nothing leaves the page,
injected names stay text, and it prints to a sane PDF. Skipped with a message where Chromium is missing."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from scrutiny.cli import main

from _audit_helpers import tabular_files

INJECTIONS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "a</style><b>x"]
CLASS_NAME = "</style><i>bad"
SECTIONS = ("performance", "local", "dmm_men", "training_data", "generalisation", "glassbox")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    files = tabular_files(folder, names=INJECTIONS + ["f3", "f4"], labels=[CLASS_NAME, "ok"])
    p = files["paths"]
    cfg = folder / "all.toml"
    cfg.write_text(p["config"].read_text().replace('"generalisation"]', '"generalisation", "glassbox"]')
                   + "[glassbox]\ncv = 2\ntime_limit = 1.0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["audit", "-m", str(p["model"]), "-d", str(p["test"]), "--train", str(p["train"]), "-c", str(cfg),
                     "--budget", "fast", "-o", str(folder / "out"), "-q"]) == 0
    return folder / "out" / "report.html"


def _artifact_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("SCRUTINY_ARTIFACTS", tmp_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_every_section_renders_offline(report, browser_page, tmp_path):
    page = browser_page(report)
    page.settle()
    for name in SECTIONS:
        found = page.query(f"#section-{name}")
        assert len(found) == 1, name
        status = page.query(f"#section-{name} [data-status]")
        assert status and status[0]["attributes"]["data-status"] == "ok", (name, status)
        assert page.eval(f"document.getElementById('section-{name}').getBoundingClientRect().height") > 50, name
    # every figure decoded (an undecodable data URI has naturalWidth 0)
    widths = page.eval("Array.from(document.images).map(i => i.naturalWidth)")
    assert widths and min(widths) > 0
    assert page.external_requests == []
    assert page.console_errors == [] and page.dialogs == []
    shot = page.screenshot(_artifact_dir(tmp_path) / "audit_report.png")
    assert shot.stat().st_size > 20_000


def test_injected_names_do_not_execute_or_break_the_layout(report, browser_page):
    page = browser_page(report)
    page.settle(500)  # anything an injected handler scheduled has had its chance to run
    assert page.dialogs == [] and page.console_errors == []
    assert page.query('img[src="x"]') == []
    assert page.eval("document.querySelectorAll('script').length") == 0
    text = page.eval("document.body.textContent")
    for s in INJECTIONS + [CLASS_NAME]:
        assert s in text  # shown as text, exactly as given
    # the one stylesheet still applies: headings keep their border, body its width limit
    assert page.eval("document.querySelectorAll('style').length") == 1
    assert page.eval("getComputedStyle(document.body).maxWidth") == "1100px"
    assert page.eval("getComputedStyle(document.querySelector('h2')).borderBottomStyle") == "solid"


def test_report_prints_to_a_sane_pdf(report, browser_page, tmp_path):
    from _cdp import pdf_page_count

    page = browser_page(report)
    pdf = page.print_pdf()
    assert pdf.startswith(b"%PDF")
    n = pdf_page_count(pdf)
    assert 2 <= n <= 40, n
    (_artifact_dir(tmp_path) / "audit_report.pdf").write_bytes(pdf)
