# Sourced by the scripts that install their own Debian packages.

# install_missing_packages NAME "COMMAND PACKAGE"...
# Installs with apt-get each PACKAGE whose COMMAND is found neither on the
# PATH nor in /usr/sbin (which some shells leave off the PATH).
# A COMMAND that starts with / is a file that must exist. Prints what it
# installs with NAME as the prefix, and fails when a package is missing
# and this is not root.
install_missing_packages() {
  local name="$1" missing=() entry command_name package
  shift
  for entry in "$@"; do
    read -r command_name package <<<"$entry"
    if [[ "$command_name" == /* ]]; then
      [ -e "$command_name" ] || missing+=("$package")
    elif ! command -v "$command_name" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$command_name" ]; then
      missing+=("$package")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return
  fi

  if [ "$(id -u)" -ne 0 ]; then
    echo "$name: missing packages: ${missing[*]}. Run this script as root, or install them with apt-get." >&2
    exit 1
  fi
  echo "$name: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "$name: installed ${missing[*]}"
}
