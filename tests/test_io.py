"""dualclip.io: the one JSON reader and the atomic writers built on atomic_write."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dualclip.io import atomic_write, copy_file, print_report, read_json, write_bytes, write_json
from helpers import REPO


def test_read_json_names_the_file_what_it_is_and_the_fix(tmp_path):
    write_json(tmp_path / "ok.json", {"a": [1, np.int64(2), np.float32(0.5)]})
    assert read_json(tmp_path / "ok.json") == {"a": [1, 2, 0.5]}
    with pytest.raises(FileNotFoundError, match=r"^shard manifest .*gone\.json not found; delete it to rerun$"):
        read_json(tmp_path / "gone.json", "shard manifest", "delete it to rerun")
    (tmp_path / "page.json").write_text("<html>quota exceeded</html>")
    with pytest.raises(ValueError, match=r"^JSON file .*page\.json is not valid JSON \(.*\); the file is probably "
                                         r"truncated or corrupted: write or download it again$"):
        read_json(tmp_path / "page.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"binary\.json is not valid JSON"):
        read_json(tmp_path / "binary.json")


def test_write_json_layouts(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": 2})
    write_json(tmp_path / "b.json", {"b": 1, "a": 2}, indent=2, sort_keys=True)
    assert (tmp_path / "a.json").read_text() == '{\n "b": 1,\n "a": 2\n}\n'
    assert (tmp_path / "b.json").read_text() == json.dumps({"a": 2, "b": 1}, indent=2) + "\n"


def test_copy_file_and_write_bytes_are_atomic(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 5000)  # more than one copy chunk
    copy_file(source, tmp_path / "sub" / "copy.bin")
    assert (tmp_path / "sub" / "copy.bin").read_bytes() == source.read_bytes()
    write_bytes(tmp_path / "old.bin", b"old")

    def failing(handle):
        handle.write(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(tmp_path / "old.bin", failing)
    assert (tmp_path / "old.bin").read_bytes() == b"old"  # the old file, whole
    assert sorted(path.name for path in tmp_path.iterdir()) == ["old.bin", "source.bin", "sub"]  # no temporary left
    with pytest.raises(FileNotFoundError):
        copy_file(tmp_path / "missing.bin", tmp_path / "never.bin")
    assert not (tmp_path / "never.bin").exists()


def test_the_dag_build_modules_do_not_load_numpy():
    # dualclip.workflow and dualclip.preflight run at every snakemake invocation and read JSON
    # through dualclip.io: numpy and PIL load only where images are handled
    code = ("import sys, dualclip.workflow, dualclip.preflight, dualclip.io;"
            "print(sorted({'numpy', 'PIL', 'torch'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.strip() == "[]"


def test_print_report_prints_and_appends_each_section_when_given_a_file(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    results.write_text("# earlier\n")
    print_report("## run 1\n", results)
    print_report("## run 2\n", results)
    print_report("## not kept\n", None)
    assert results.read_text() == "# earlier\n## run 1\n## run 2\n"
    assert capsys.readouterr().out == "## run 1\n\n## run 2\n\n## not kept\n\n"
