#!/usr/bin/env bash
# Builds the container image the DaemonSet runs, offline: no container engine, no registry, no base
# image. The root is distroless-style and holds only
#   /usr/bin/eni-agent          the stripped Release binary (static HTTP(S)-only libcurl linked in)
#   its shared libraries        exactly those `ldd` names, taken from the Debian packages that own
#                               them here (apt-get download of the archive's version + dpkg -x)
#   /etc/ssl/certs/ca-certificates.crt   the CA bundle from Debian's ca-certificates package
#   /etc/passwd, /etc/group     root and nonroot (65532), the user --run-as-user drops to
# and is committed with buildah (vfs storage under the build directory) and written as an OCI
# archive. The name and tag come from the CMake project version (BUILD/image-release/image.env).
#
#   scripts/image.sh [--tag TAG]... [--binary BIN]
#                                        build; prints the archive's path on stdout. --binary
#                                        takes BIN (stripped here) instead of a Release build of
#                                        its own: the realcluster tests pass the binary the test
#                                        build made and tested, which saves CI a second compile
#   scripts/image.sh packages BINARY     the Debian packages that provide BINARY's libraries, one a
#                                        line (daemonset/Containerfile names the same; checked by
#                                        packaging.image_packages)
#   scripts/image.sh rootfs BINARY DIR DEB...   assemble the root in DIR from BINARY and the .debs
#                                        (daemonset/Containerfile runs this too: the same layout)
#
# BUILD_DIR (default build/) holds image-release/ (the Release build) and image/ (debs, root,
# buildah storage, eni-agent-<tag>.oci.tar). Extra --tag values name the same image again (the
# real-cluster test rolls the DaemonSet to a second tag).
set -euo pipefail

ARCH_TRIPLET=$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)

# The libraries BINARY loads at run time (the dynamic loader included), as real paths.
libraries() {
  ldd "$1" | awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]*ld-linux/ {print $1}' | sort -u
}

# The package that owns PATH; merged /usr means dpkg may know it by either spelling.
owner() {
  local p=$1 alt
  alt=$([[ $p == /usr/* ]] && echo "${p#/usr}" || echo "/usr$p")
  for q in "$p" "$alt" "$(readlink -f "$p")"; do
    dpkg-query -S "$q" 2>/dev/null | grep -v '^diversion' | head -1 | cut -d: -f1 && return 0
  done
  echo "image: no Debian package owns $p; the image cannot carry it" >&2
  return 1
}

cmd_packages() {
  local lib
  { for lib in $(libraries "$1"); do owner "$lib"; done; echo ca-certificates; } | sort -u
}

# cmd_rootfs BINARY DIR DEB...: the root, from the binary and the packages' files only.
cmd_rootfs() {
  local binary=$1 root=$2; shift 2
  local stage; stage=$(mktemp -d)
  local deb lib name found
  for deb in "$@"; do dpkg-deb -x "$deb" "$stage"; done
  rm -rf "$root"
  mkdir -p "$root/usr/bin" "$root/usr/lib/$ARCH_TRIPLET" "$root/usr/lib64" "$root/etc/ssl/certs"
  # Debian 12's layout: /lib, /lib64 and /bin are links into /usr.
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  ln -s usr/bin "$root/bin"
  install -m 0755 "$binary" "$root/usr/bin/eni-agent"
  for lib in $(libraries "$binary"); do
    name=$(basename "$lib")
    found=""
    for cand in "$stage$lib" "$stage/usr${lib#/usr}" "$stage${lib#/usr}" \
      "$stage/lib/$ARCH_TRIPLET/$name" "$stage/usr/lib/$ARCH_TRIPLET/$name"; do
      [[ -e $cand ]] && { found=$cand; break; }
    done
    if [[ -z $found ]]; then
      echo "image: $lib (needed by $binary) is in none of the packages given" >&2
      rm -rf "$stage"; return 1
    fi
    # The file itself under its soname (symlinks inside the package are resolved in the stage).
    local dest="$root/usr/lib/$ARCH_TRIPLET/$name"
    [[ $lib == */lib64/* ]] && dest="$root/usr/lib64/$name"
    cp -L "$found" "$dest"
    # The loader is exec'd by the kernel (it needs the execute bit); libraries are only mapped.
    if [[ $name == ld-linux* ]]; then chmod 0755 "$dest"; else chmod 0644 "$dest"; fi
  done
  # The program interpreter the binary names must be there, or exec fails with ENOENT.
  local interp; interp=$(ldd "$binary" | awk '/^[[:space:]]*\/[^ ]*ld-linux/ {print $1}')
  [[ -n $interp && -e $root/usr${interp#/usr} ]] ||
    { echo "image: the dynamic loader ($interp) is missing from the root" >&2; rm -rf "$stage"; return 1; }
  # The bundle update-ca-certificates makes by default: every certificate the package ships.
  find "$stage/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat \
    > "$root/etc/ssl/certs/ca-certificates.crt"
  [[ -s $root/etc/ssl/certs/ca-certificates.crt ]] || { echo "image: no CA certificates" >&2; return 1; }
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    > "$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
  chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$stage"
}

# The Release binary, built like scripts/test.sh builds (the lean static libcurl), then stripped.
release_binary() {
  local build=$1 curl_prefix
  curl_prefix=$(bash scripts/lean-curl.sh)
  # Without -Werror: GCC 12 at -O3 warns falsely inside std::string (-Wrestrict, GCC bug 105329);
  # the RelWithDebInfo build of scripts/test.sh holds the code to -Werror.
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DENI_CURL_PREFIX="$curl_prefix" \
    -DENI_AGENT_WERROR=OFF -DENI_AGENT_BUILD_TESTS=OFF -DENI_AGENT_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build" -j "$(nproc)" --target eni-agent >"$build/build.log" 2>&1 ||
    { grep -B2 -A8 'error' "$build/build.log" | tail -60 >&2; echo "image: the Release build failed ($build/build.log)" >&2; exit 1; }
}

cmd_build() {
  local tags=() binary=""
  while (($#)); do
    case $1 in
      --tag) tags+=("$2"); shift 2 ;;
      --binary) binary=$(readlink -f "$2"); shift 2 ;;
      *) echo "image: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
  done
  local build=${BUILD_DIR:-$PWD/build}
  local rel=$build/image-release out=$build/image env=$build/image.env
  if [[ -z $binary ]]; then
    release_binary "$rel"
    binary=$rel/agent/eni-agent env=$rel/image.env
  fi
  [[ -x $binary && -f $env ]] ||
    { echo "image: $binary or $env is missing (configure and build $build first)" >&2; exit 1; }
  # ENI_IMAGE_NAME, ENI_IMAGE_TAG: written by CMake from the project version.
  # shellcheck disable=SC1090
  source "$env"
  local ref="$ENI_IMAGE_NAME:$ENI_IMAGE_TAG"
  mkdir -p "$out/debs"
  strip -o "$out/eni-agent" "$binary"

  local pkgs=() debs=() p version file
  mapfile -t pkgs < <(cmd_packages "$out/eni-agent")
  for p in "${pkgs[@]}"; do
    # The archive's candidate: the installed version may be older and gone from the archive; the
    # sonames, and so the ABI the binary was linked against, stay within a Debian release.
    version=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
    file=$(ls "$out/debs/${p}_"*.deb 2>/dev/null | grep -F "_${version//:/%3a}_" | head -1 || true)
    if [[ -z $file ]]; then
      (cd "$out/debs" && apt-get download -qq "$p=$version" 2>&1 | grep -v unsandboxed >&2 || true)
      file=$(ls "$out/debs/${p}_"*.deb 2>/dev/null | grep -F "_${version//:/%3a}_" | head -1 || true)
      [[ -n $file ]] || { echo "image: apt-get download $p=$version failed" >&2; exit 1; }
    fi
    debs+=("$file")
  done
  cmd_rootfs "$out/eni-agent" "$out/rootfs" "${debs[@]}"

  local bh=(buildah --storage-driver vfs --root "$out/storage" --runroot "$out/run")
  local c; c=$("${bh[@]}" from scratch)
  "${bh[@]}" copy "$c" "$out/rootfs/" / >/dev/null
  "${bh[@]}" config --entrypoint '["/usr/bin/eni-agent"]' --cmd '' --user 0:0 \
    --label "org.opencontainers.image.title=eni-agent" \
    --label "org.opencontainers.image.version=$ENI_IMAGE_TAG" "$c"
  "${bh[@]}" commit -q --rm "$c" "$ref" >/dev/null
  local archive="$out/eni-agent-$ENI_IMAGE_TAG.oci.tar"
  rm -f "$archive"
  local names=("$ref") t
  for t in "${tags[@]}"; do
    "${bh[@]}" tag "$ref" "$ENI_IMAGE_NAME:$t"
    names+=("$ENI_IMAGE_NAME:$t")
  done
  # One archive per name: `ctr images import` takes the name from the archive's index.
  for ref in "${names[@]}"; do
    local a="$out/eni-agent-${ref##*:}.oci.tar"
    rm -f "$a"
    "${bh[@]}" push -q "$ref" "oci-archive:$a:$ref" >/dev/null
  done
  "${bh[@]}" rmi -a -f >/dev/null 2>&1 || true

  local root_bytes archive_bytes
  root_bytes=$(du -sb "$out/rootfs" | cut -f1)
  archive_bytes=$(stat -c %s "$archive")
  {
    echo "image: $ENI_IMAGE_NAME:$ENI_IMAGE_TAG ($(IFS=,; echo "${names[*]##*:}"))"
    echo "image: root $root_bytes bytes uncompressed ($((root_bytes / 1048576)) MiB);" \
      "archive $archive_bytes bytes ($((archive_bytes / 1048576)) MiB)"
    echo "image: packages ${pkgs[*]}"
  } | tee "$out/image-size.txt" >&2
  echo "$archive"
}

case ${1:-} in
  packages) shift; cmd_packages "$@" ;;
  rootfs) shift; cmd_rootfs "$@" ;;
  *) cd "$(dirname "$0")/.." && cmd_build "$@" ;;
esac
