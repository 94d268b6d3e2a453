"""What snakemake loads while it builds the DAG: rules/common.smk's dualclip imports must not
bring in cv2, pandas or torch, and the planning modules no numpy (issue 12: every
``snakemake`` call, dry runs included, pays for them)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# imported while the DAG is built, numpy only inside their functions
NUMPY_FREE = ["dualclip.workflow", "dualclip.plan", "dualclip.preflight", "dualclip.registry", "dualclip.filter",
              "dualclip.train.methods", "dualclip.eval.manifold", "dualclip.eval.benchmarks.stage",
              "dualclip.eval.benchmarks.registry"]
# get_backend (common.smk, the pre-flight check) imports a stage package to list its backends:
# listing the inpaint ones must not load cv2
LIST_INPAINT_BACKENDS = "from dualclip.registry import backends\nassert list(backends('inpaint')) == ['opencv', 'sd']"


def loaded_after(statements: list[str], modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``statements``."""
    code = "\n".join([*statements, "import sys", f"print(sorted(name for name in {modules!r} if name in sys.modules))"])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout)


def test_the_dag_build_imports_load_no_cv2_pandas_or_torch():
    lines = [line for line in (REPO / "rules" / "common.smk").read_text().splitlines() if line.startswith("from dualclip")]
    assert len(lines) >= 3, f"rules/common.smk: found only {lines}"
    assert loaded_after([*lines, LIST_INPAINT_BACKENDS], ("cv2", "pandas", "torch")) == []


def test_the_planning_modules_load_no_numpy():
    assert loaded_after([f"import {name}" for name in NUMPY_FREE] + [LIST_INPAINT_BACKENDS], ("numpy",)) == []
