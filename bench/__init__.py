"""The benchmark harness of issue 6: ``bench/run.sh [--smoke]`` (see ``bench/README.md``)."""
