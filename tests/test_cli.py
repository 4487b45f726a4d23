import json
import subprocess
import sys


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "mollifier", *args], capture_output=True, text=True, timeout=600
    )


def test_check_prints_a_table_and_exits_zero():
    out = run("check", "--op", "relu", "--op", "floor", "--kernel", "logistic", "--quick")
    assert out.returncode == 0, out.stderr
    assert "| relu | logistic |" in out.stdout and "| floor | logistic |" in out.stdout
    assert "2 passed, 0 failed" in out.stdout
    assert "[  2/2]" in out.stderr  # progress


def test_check_json():
    out = run("check", "--op", "clip", "--kernel", "cauchy", "--quick", "--format", "json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["op"] == "clip" and row["passed"] and row["max_error"] < 1e-12


def test_bad_arguments():
    out = run("check", "--op", "sqrt")
    assert out.returncode == 2 and "unknown op" in out.stderr and "relu" in out.stderr
    out = run("check", "--kernel", "gauss")
    assert out.returncode == 2 and "gaussian" in out.stderr
    out = run()
    assert out.returncode == 2
    assert run("--help").returncode == 0


def test_failures_give_a_nonzero_exit(monkeypatch):
    from mollifier import _check, cli

    monkeypatch.setattr(_check, "TOLERANCE", -1.0)
    assert cli.main(["check", "--op", "step", "--kernel", "uniform", "--quick"]) == 1


def test_benchmark_script_runs():
    import pathlib

    script = pathlib.Path(__file__).parent.parent / "benchmarks" / "bench.py"
    out = subprocess.run(
        [sys.executable, str(script), "--size", "4096", "--rows", "16", "--repeat", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "| relu (logistic) | F.softplus |" in out.stdout
    assert "| seed floor (M=5, N=10) |" in out.stdout
    via_cli = run("bench", "--size", "2048", "--rows", "8", "--repeat", "1")
    assert via_cli.returncode == 0, via_cli.stderr
    assert "| logsumexp | torch.logsumexp |" in via_cli.stdout
    table = run("bench", "--piecewise", "--size", "512", "--kernel", "laplace", "--repeat", "1")
    assert table.returncode == 0, table.stderr
    assert "| relu (laplace) | torch.exp |" in table.stdout
    assert "| floor (laplace, w=0.3) | F.softplus |" in table.stdout
    assert "| torch.special.erfc |" in table.stdout  # the primitives each miss is counted in


def _one_line_refusal(out, *words):
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_bad_plot_outputs_exit_2_with_one_line(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    cases = [
        (tmp_path / "missing_dir" / "a.png", "does not exist"),
        (tmp_path / "file.txt" / "a.png", "is not a directory"),
        (tmp_path / "a.xyz", "unknown image format .xyz"),
        (tmp_path / "noextension", "unknown image format (no extension)"),
    ]
    for path, message in cases:
        _one_line_refusal(run("plot", "relu", "-o", str(path)), "mollifier plot:", message)
        assert not path.exists()
    _one_line_refusal(
        run("plot", "relu", "--width", "inf", "-o", str(tmp_path / "a.png")), "widths"
    )
    _one_line_refusal(
        run("plot", "relu", "--kernel", "cauchy", "-o", str(tmp_path / "a.png")), "cauchy"
    )
    _one_line_refusal(run("plot", "relu", "--match", "x", "-o", str(tmp_path / "a.png")), "--match")


def test_plot_into_an_existing_directory(tmp_path):
    out = run("plot", "relu", "--kernel", "gaussian", "-o", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "relu-gaussian.png").is_file()
    assert out.stdout.strip() == str(tmp_path / "relu-gaussian.png")
    assert not (tmp_path.parent / f"{tmp_path.name}.png").exists()
    out = run("plot", "step", "--compare", "-o", str(tmp_path))
    assert out.returncode == 0 and (tmp_path / "step-compare.png").is_file()
    out = run("plot", "relu", "-o", str(tmp_path / "r.svg"))
    assert out.returncode == 0 and (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")


def test_bad_gallery_arguments_create_nothing(tmp_path):
    existing = tmp_path / "existing_file"
    existing.write_text("x")
    _one_line_refusal(run("gallery", "-o", str(existing)), "mollifier gallery:", "not a directory")
    target = tmp_path / "new"
    _one_line_refusal(run("gallery", "-o", str(target), "--op", "sqrt"), "op must be one of")
    _one_line_refusal(run("gallery", "-o", str(target), "--kernel", "gauss"), "kernel")
    _one_line_refusal(
        run("gallery", "-o", str(target), "--op", "relu", "--kernel", "cauchy"), "admits"
    )
    assert not target.exists()


def test_bad_bench_sizes_exit_2():
    for value in ("-5", "0", "x"):
        _one_line_refusal(run("bench", "--size", value), "--size", "positive integer")
    _one_line_refusal(run("bench", "--repeat", "0"), "--repeat")


def test_check_of_an_inadmissible_pair_says_so():
    out = run("check", "--op", "relu", "--kernel", "cauchy", "--quick")
    _one_line_refusal(out, "nothing to check", "relu x cauchy", "diverges")
    assert out.stdout == ""
    out = run("check", "--op", "relu", "--op", "clip", "--kernel", "cauchy", "--quick")
    assert out.returncode == 0, out.stderr
    assert "skipping relu x cauchy" in out.stderr and "| clip | cauchy |" in out.stdout


def test_argparse_errors_are_one_line():
    _one_line_refusal(run("check", "--format", "xml"), "--format")
    _one_line_refusal(run("plot", "relu"), "-o/--output")


def test_the_package_is_typed():
    import pathlib

    import mollifier

    assert (pathlib.Path(mollifier.__file__).parent / "py.typed").is_file()
    text = (pathlib.Path(__file__).parent.parent / "pyproject.toml").read_text()
    # hatchling ships every file of the package directory: py.typed goes into the wheel
    assert 'packages = ["src/mollifier"]' in text and "exclude" not in text
