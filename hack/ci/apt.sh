# Sourced by hack/ci/setup-*.sh (not run on its own: hack/test.sh runs only setup-*.sh).
#
#   apt_ensure PKG...   install, with one `apt-get update`, those of PKG that are not installed; leave the rest.
#                       Afterwards APT_INSTALLED holds the packages this call installed (empty when none).
#
# "Installed" is dpkg's own state (`db:Status-Status`), so a package removed with its configuration files left
# behind counts as missing. Runs as root on CI machines; nothing is installed when everything is there.
apt_ensure() {
    APT_INSTALLED=()
    local pkg
    for pkg in "$@"; do
        [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" == installed ]] || APT_INSTALLED+=("$pkg")
    done
    ((${#APT_INSTALLED[@]})) || return 0
    echo "installing: ${APT_INSTALLED[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${APT_INSTALLED[@]}"
}
