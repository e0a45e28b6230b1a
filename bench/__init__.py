"""Benchmarks: a generic INDI BLOB client (client.py) and a runner (run.py) that drives our
daemon and the C++ reference stack (indiserver + indi_simulator_ccd) with the same client and
prints them side by side. `make bench` runs it; see bench/README.md."""
