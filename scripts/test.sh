#!/usr/bin/env bash
# Runs every test of eni-agent on this machine: installs what is missing, checks formatting, builds
# with -Werror, runs clang-tidy on the product's sources (scripts/clang_tidy.py; any finding fails
# the run), builds (or reuses from $HOME/.cache) the test stack, then runs the unit, integration and
# netns labels through ctest, the fault drills (label faults), the .deb under systemd as PID 1
# (label systemd, in a Debian root cached under $HOME/.cache), builds the container image
# (scripts/image.sh) and runs it on a real one-node cluster (label realcluster), the unit tests
# again under AddressSanitizer + UndefinedBehaviorSanitizer, and the libFuzzer targets when clang
# is present (FUZZ_SECONDS each, 60 by default). netns tests need root; CI runs as root.
# Each stage's wall time is printed at the end (and kept in $BUILD/ci-timings.txt), with the cold
# build time of each test-stack tool built in this run and the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD_DIR:-$ROOT/build}
JOBS=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
# ccache (when installed) shares objects between runs and clones: paths relative to the checkout,
# and the build directory left out of the hash.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

timings=()
stage_start=$SECONDS
stage_name=""
stage() {
  if [ -n "$stage_name" ]; then timings+=("$(printf '%-28s %5ds' "$stage_name" $((SECONDS - stage_start)))"); fi
  stage_name=$1
  stage_start=$SECONDS
  [ -n "$1" ] && echo "== $1" >&2
  return 0
}
report() {
  stage ""
  mkdir -p "$BUILD"
  { printf '%s\n' "${timings[@]}"; printf '%-28s %5ds\n' total "$SECONDS"
    cat "$BUILD/image/image-size.txt" 2>/dev/null | grep ' root ' || true; } | tee "$BUILD/ci-timings.txt" >&2
}

# The stack is always torn down, whatever happens to ctest; the timings are always printed.
trap 'for s in test-stack real-stack; do python3 tests/env/stack.py down --dir "$BUILD/$s" >/dev/null 2>&1 || true; done
      report' EXIT

stage setup
bash scripts/setup.sh

stage "format check"
files=$(git ls-files '*.cpp' '*.h' 2>/dev/null || find agent netlink ec2 tests bench -name '*.cpp' -o -name '*.h')
clang-format --dry-run --Werror $files

stage build
# The static HTTP(S)-only libcurl (built by setup, cached under $HOME/.cache).
CURL_PREFIX=$(bash scripts/lean-curl.sh)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENI_CURL_PREFIX="$CURL_PREFIX" \
  -DENI_AGENT_WERROR=ON -DENI_AGENT_BUILD_TESTS=ON -DENI_AGENT_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS"

status=0
# After the build: it reads the build's compile_commands.json and generated headers. No function
# over 60 lines and no bugprone or performance finding (.clang-tidy).
stage clang-tidy
python3 scripts/clang_tidy.py "$BUILD" -j "$JOBS" || status=$?

stage "test-stack binaries"
times=${ENI_AGENT_CACHE:-$HOME/.cache/eni-agent}/test-stack/build-times.txt
before=$(cat "$times" 2>/dev/null | wc -l)
bash tests/env/build-binaries.sh >/dev/null
# Each tool built cold in this run, with its time (a warm run builds none).
while read -r tool took _; do
  timings+=("$(printf '  cold build: %-40s %6s' "$tool" "$took")")
done < <(tail -n +$((before + 1)) "$times" 2>/dev/null)

stage "ctest unit+integration+netns"
(cd "$BUILD" && ctest -L 'unit|integration|netns' -j "$JOBS" --output-on-failure --timeout 600) || status=$?
# Show that the kube tests talked to the real kube-apiserver.
grep -h "kube-apiserver /version" "$BUILD/Testing/Temporary/LastTest.log" || true

# The fault drills get a stack of their own (stack.up runs again): a fresh moto and etcd.
stage "ctest faults"
(cd "$BUILD" && ctest -L faults --output-on-failure --timeout 900) || status=$?

# The .deb under systemd as PID 1, with a stack of its own too. The first run on a machine makes
# the Debian root it boots (debootstrap, cached under $HOME/.cache/eni-agent/systemd-root).
stage "ctest systemd"
(cd "$BUILD" && ctest -L systemd --output-on-failure --timeout 1800) || status=$?
grep -h "^debian root: \(cached\|made\)" "$BUILD/Testing/Temporary/LastTest.log" || true

# The real one-node cluster (a stack of its own, label realcluster): its fixture builds the image
# the DaemonSet runs (scripts/image.sh --binary: the binary built and tested above; buildah,
# offline) with a second tag for the rolling update; then the image under containerd, the
# kustomization and the Helm chart on the real kubelet.
stage "ctest realcluster"
(cd "$BUILD" && ctest -L realcluster --output-on-failure --timeout 2400) || status=$?

stage "asan+ubsan unit tests"
cmake -S . -B "$BUILD-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENI_AGENT_WERROR=ON -DENI_CURL_PREFIX="$CURL_PREFIX" \
  -DENI_AGENT_BUILD_TESTS=ON -DENI_AGENT_BUILD_BENCH=OFF -DENI_AGENT_SANITIZE="address;undefined" >/dev/null
cmake --build "$BUILD-asan" -j "$JOBS" --target eni_unit_tests
(cd "$BUILD-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest -L unit -j "$JOBS" --output-on-failure --timeout 600) || status=$?

if command -v clang++ >/dev/null; then
  stage "fuzzers (${FUZZ_SECONDS}s each)"
  # Everything is instrumented (fuzzer-no-link), not just the harness: libFuzzer is guided by the
  # coverage of the parsers themselves.
  CC=clang CXX=clang++ cmake -S . -B "$BUILD-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENI_CURL_PREFIX="$CURL_PREFIX" \
    -DENI_AGENT_BUILD_TESTS=OFF -DENI_AGENT_SANITIZE="address;undefined;fuzzer-no-link" >/dev/null
  # Each fuzzer sits beside its parser, with its corpus in fuzz_corpus/<name>/.
  fuzzers=(agent/kube:watch_decoder ec2:ec2_xml ec2:imds_list)
  targets=()
  for f in "${fuzzers[@]}"; do targets+=("fuzz_${f#*:}"); done
  cmake --build "$BUILD-fuzz" -j "$JOBS" --target "${targets[@]}"
  for f in "${fuzzers[@]}"; do
    dir=${f%%:*} name=${f#*:}
    # The checked-in corpus is the seed; what the run finds stays in a scratch copy (keep new
    # finds with: fuzz_<name> -merge=1 <dir>/fuzz_corpus/<name> <scratch>).
    corpus=$(mktemp -d)
    cp "$dir/fuzz_corpus/$name"/* "$corpus/"
    log="$BUILD-fuzz/fuzz_$name.log"
    if "$BUILD-fuzz/$dir/fuzz_$name" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
      -artifact_prefix="$BUILD-fuzz/crash-$name-" "$corpus" >"$log" 2>&1; then
      echo "fuzz_$name: $(grep -hE '^#[0-9]+' "$log" | tail -1)"
    else
      tail -40 "$log"
      echo "fuzz_$name: FAILED (see $log; the input is $BUILD-fuzz/crash-$name-*)"
      status=1
    fi
    rm -rf "$corpus"
  done
fi
exit $status
