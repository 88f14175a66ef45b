#!/usr/bin/env bash
# Installs what building and testing eni-agent needs, idempotently: Debian packages (buildah,
# containerd, runc and the CNI plugins among them, for the image and the real node), the pinned
# Python tools of the test stack, a check that Go is there to build the Kubernetes tools, etcd and helm
# (tests/env/build-binaries.sh pins their versions), and the static HTTP(S)-only libcurl the agent
# links (scripts/lean-curl.sh, cached under $HOME/.cache). Safe to run again; it only installs what
# is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every package is named: they install with --no-install-recommends, so nothing arrives as a
# recommendation (clang recommends the compiler runtime that the fuzz stage links, for one).
# tests/packaging/check_setup_packages.py checks that each tool the scripts, tests and benchmarks
# use comes from one of these or their dependencies; add a package there and here together.
DEB_PACKAGES=(
  # build: compilers, generators, the libraries the agent and its tests link
  build-essential cmake ninja-build pkg-config git ccache
  libnl-3-dev libnl-route-3-dev libcurl4-openssl-dev libnghttp2-dev libjsoncpp-dev libsystemd-dev
  libpugixml-dev prometheus-cpp-dev libcivetweb-dev libexpected-dev libyaml-cpp-dev libssl-dev
  zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev
  # scripts/lean-curl.sh: apt-get source, dpkg-source; HTTPS to the archive
  dpkg-dev ca-certificates
  # the format check and the fuzz stage: clang links libclang_rt.fuzzer/asan/ubsan from
  # libclang-rt-14-dev, which clang only recommends; the clang-tidy stage (clang-tidy 19: 14
  # cannot parse C++20 lambdas that capture structured bindings; it brings clang++-19)
  clang libclang-rt-14-dev clang-format clang-tidy-19
  # the test stack and the benchmarks (python3), systemd-analyze (packaging.systemd_*), file and
  # dpkg-shlibdeps (cpack's DEB generator, packaging.deb), ip (bench/run's network namespaces)
  python3 python3-pip systemd file iproute2
  # bench/run's callgrind figure (valgrind --tool=callgrind, callgrind_control)
  valgrind
  # the image (scripts/image.sh: buildah, vfs storage) and the real one-node cluster of the
  # realcluster label (containerd 1.6 with its ctr, runc, the CNI plugins in /usr/lib/cni)
  buildah containerd runc containernetworking-plugins
  # the systemd label (tests/systemd): a Debian root made by debootstrap, booted by systemd-nspawn
  debootstrap systemd-container
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python tools of the test stack, at pinned versions.
if ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
want = {}
for line in open("tests/env/requirements.txt"):
    line = line.split("#")[0].strip()
    if line:
        name, version = line.split("==")
        want[name.split("[")[0]] = version
sys.exit(0 if all(m.version(n) == v for n, v in want.items()) else 1)
PY
then
  echo "setup: installing pinned Python tools (tests/env/requirements.txt)" >&2
  python3 -m pip install --quiet --disable-pip-version-check -r tests/env/requirements.txt ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r tests/env/requirements.txt
fi
command -v moto_server >/dev/null || { echo "setup: moto_server is not on PATH after installing moto[server]" >&2; exit 1; }

# Go builds the test stack's kube-apiserver and etcd from their official modules.
if ! command -v go >/dev/null; then
  echo "setup: Go is required to build kube-apiserver and etcd (Go >= 1.24); install it and rerun" >&2
  exit 1
fi

# The static, HTTP(S)-only libcurl the agent links (built once, cached under $HOME/.cache).
bash scripts/lean-curl.sh >/dev/null
