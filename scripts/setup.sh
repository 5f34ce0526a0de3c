#!/usr/bin/env bash
# Sourced by scripts/bench.sh and scripts/test.sh: makes sure a Vulkan driver and a Rust
# toolchain are there. On a machine without a GPU, the Vulkan driver is Mesa's software
# rasteriser (lavapipe), which wgpu finds as a Vulkan adapter of type Cpu.

have_vulkan_driver() {
    # The loader (libvulkan.so.1) and at least one installable client driver (ICD) manifest.
    # Not `grep -q`: it exits at the first match, ldconfig then dies of SIGPIPE, and under
    # the callers' `set -o pipefail` the pipeline fails now and then although the loader is
    # there (seen: "installed, but still no Vulkan driver found").
    ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null || return 1
    compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null \
        || compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null \
        || [ -n "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]
}

# apt_install WHO PACKAGE...: installs Debian packages (as root, or through sudo), updating
# the package lists once if the first try fails; exits with a message naming them if it can't.
apt_install() {
    local who="$1" sudo=""
    shift
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "$who: need root or sudo to apt-get install $*" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q "$@" >/dev/null \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "$@" >/dev/null; } \
        || { echo "$who: could not install $*" >&2; exit 1; }
}

if ! have_vulkan_driver; then
    echo "setup: no Vulkan driver found; installing Mesa's (mesa-vulkan-drivers libvulkan1)" >&2
    apt_install setup mesa-vulkan-drivers libvulkan1
    have_vulkan_driver || { echo "setup: installed, but still no Vulkan driver found" >&2; exit 1; }
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust from https://rustup.rs (curl https://sh.rustup.rs -sSf | sh)" >&2
    exit 1
fi

# Mesa's loader probes Wayland and complains on stderr when XDG_RUNTIME_DIR is unset.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
fi
