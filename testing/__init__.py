"""What the tests (tests/, tests_ha/) and the benchmarks (bench/) share:
stand-in engines, the fake Messages API, spoken material. Not part of the
product: the installed package never imports it."""
