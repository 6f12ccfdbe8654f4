# Installs what building and testing pcapd need, and only what is missing.
# Sourced by test.sh and run.sh; meant for Debian 12 (apt), run as root or with sudo.

# Minimum Rust, from the workspace's rust-version.
RUST_MIN=1.85

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: need root to run: $*" >&2
        return 1
    fi
}

# ensure_packages PKG...: apt-get installs the packages that are not installed yet.
ensure_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "note: not a Debian system; make sure these are installed: $*" >&2
        return 0
    fi
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# rust_ok: cargo is on PATH and rustc is at least RUST_MIN.
rust_ok() {
    command -v cargo >/dev/null 2>&1 || return 1
    local v
    v=$(rustc --version 2>/dev/null | awk '{print $2}') || return 1
    [ "$(printf '%s\n%s\n' "$RUST_MIN" "${v%%-*}" | sort -V | head -n1)" = "$RUST_MIN" ]
}

# ensure_rust: a Rust toolchain of at least RUST_MIN must be on the machine (Debian 12's own
# rustc is too old); put ~/.cargo/bin on PATH if that is where it lives, and say so if not.
ensure_rust() {
    if [ -d "$HOME/.cargo/bin" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
        export PATH
    fi
    rust_ok && return 0
    echo "error: Rust $RUST_MIN or newer (rustc and cargo) is needed; install it with rustup" \
        "(https://rustup.rs) and run this again" >&2
    return 1
}
