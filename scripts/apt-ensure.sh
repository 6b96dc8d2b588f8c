# Sourced by the ensure-*.sh scripts, after they define `packages` and `capable`:
#   ensure_packages "what cannot be done yet" "what still fails after installing"
# Exits 0 when `capable` holds; else installs `packages` with apt when this runs as root and checks
# again; otherwise says what to install and exits 1.
ensure_packages() {
  capable && exit 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "edgeq: installing ${packages[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    # `make test` runs three of these scripts: the package lists one of them fetched minutes ago
    # are fetched once, not three times
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -30 2>/dev/null)" ]; then
      apt-get update -qq >/dev/null
    fi
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    capable || { echo "edgeq: $2" >&2; exit 1; }
    exit 0
  fi
  echo "edgeq: $1; install: sudo apt-get install ${packages[*]}" >&2
  exit 1
}
