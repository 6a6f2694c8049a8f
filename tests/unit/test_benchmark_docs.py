"""docs/benchmarks.md's tables are the benchmark scripts' results, rendered: none typed by
hand, none left behind when a benchmark reruns."""

import subprocess
import sys

from ..conftest import REPOSITORY


def test_docs_benchmarks_md_tables_are_the_results_files():
    checked = subprocess.run(
        [sys.executable, str(REPOSITORY / "benchmarks" / "report.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
