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
