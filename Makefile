# Developer shortcuts. The test suite is scripts/test-all.sh; this file only adds the
# benchmark (docs/performance.md).

CARGO ?= cargo
# Extra arguments for the benchmark, e.g. make bench BENCH_ARGS="--quick"
BENCH_ARGS ?=

.PHONY: bench
bench:
	$(CARGO) build --release -p pam_totp -p pam_totp_redis -p pam_totp_etcd -p totp-enroll -p totp-state -p pam-bench
	@# The same module with symbols kept, for the per-crate size breakdown the bench prints.
	$(CARGO) build --profile profiling -p pam_totp
	@if [ "$$(id -u)" -eq 0 ]; then \
		./target/release/pam-bench $(BENCH_ARGS); \
	else \
		echo "pam-bench needs root (private mount namespace, GA's user=root secret file): running it with sudo"; \
		sudo ./target/release/pam-bench $(BENCH_ARGS); \
	fi
