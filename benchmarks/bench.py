"""Run the benchmark suite: ``python benchmarks/bench.py --help`` (same as ``mollifier bench``)."""

from mollifier._bench import main

if __name__ == "__main__":
    main()
