#!/usr/bin/env bash
# Runs every test of eni-agent on this machine: installs what is missing, builds with -Werror,
# builds (or reuses from $HOME/.cache) the test stack, then runs the unit, integration and netns
# labels through ctest, checks formatting, and smoke-runs the fuzzers when clang is present.
# netns tests need root; CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD_DIR:-$ROOT/build}
JOBS=$(nproc)

bash scripts/setup.sh

echo "== format check" >&2
files=$(git ls-files '*.cpp' '*.h' 2>/dev/null || find agent netlink ec2 tests bench -name '*.cpp' -o -name '*.h')
clang-format --dry-run --Werror $files

echo "== build" >&2
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DENI_AGENT_WERROR=ON -DENI_AGENT_BUILD_TESTS=ON -DENI_AGENT_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS"

echo "== test-stack binaries (cached under \$HOME/.cache/eni-agent)" >&2
bash tests/env/build-binaries.sh >/dev/null

# The stack is always torn down, whatever happens to ctest.
trap 'python3 tests/env/stack.py down --dir "$BUILD/test-stack" >/dev/null 2>&1 || true' EXIT

echo "== ctest: unit, integration, netns" >&2
status=0
(cd "$BUILD" && ctest -L 'unit|integration|netns' -j "$JOBS" --output-on-failure --timeout 600) || status=$?
# Show that the kube tests talked to the real kube-apiserver.
grep -h "kube-apiserver /version" "$BUILD/Testing/Temporary/LastTest.log" || true

if command -v clang++ >/dev/null; then
  echo "== fuzzers (clang, libFuzzer), bounded" >&2
  CC=clang CXX=clang++ cmake -S . -B "$BUILD-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DENI_AGENT_BUILD_TESTS=OFF >/dev/null
  # Each fuzzer sits beside its parser, with its corpus in fuzz_corpus/<name>/.
  fuzzers=(agent/kube:watch_decoder ec2:ec2_xml ec2:imds_list)
  targets=()
  for f in "${fuzzers[@]}"; do targets+=("fuzz_${f#*:}"); done
  cmake --build "$BUILD-fuzz" -j "$JOBS" --target "${targets[@]}"
  for f in "${fuzzers[@]}"; do
    dir=${f%%:*} name=${f#*:}
    corpus=$(mktemp -d)
    cp "$dir/fuzz_corpus/$name"/* "$corpus/"
    log="$BUILD-fuzz/fuzz_$name.log"
    if "$BUILD-fuzz/$dir/fuzz_$name" -max_total_time="${FUZZ_SECONDS:-15}" "$corpus" >"$log" 2>&1; then
      echo "fuzz_$name: $(tail -1 "$log")"
    else
      tail -40 "$log"
      echo "fuzz_$name: FAILED (see $log)"
      status=1
    fi
    rm -rf "$corpus"
  done
fi
exit $status
