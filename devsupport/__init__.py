"""Development support shared by the tests and the benchmarks (real servers on loopback ports); not part of the installed gateway."""
