#!/usr/bin/env bash
# One-command setup for the virtual-environment route (see README "Install").
#   bash scripts/setup.sh                     # ROS 2 Kilted in .venv/ (the default)
#   ROS_DISTRO=jazzy bash scripts/setup.sh    # ROS 2 Jazzy in .venv-jazzy/
# Creates the venv in the repository root, installs the pinned dependencies and the ROS 2 wheels,
# builds the messages into the venv prefix and installs this package editable. Safe to re-run:
# each step is skipped when a stamp file keyed on its inputs says it is done.
# NL_TRACKER_ROS_DISTRO (over ROS_DISTRO) picks the distribution, NL_TRACKER_VENV the venv path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DISTRO="${NL_TRACKER_ROS_DISTRO:-${ROS_DISTRO:-kilted}}"
case "$DISTRO" in
  kilted) REQ_ROS="$ROOT/requirements-ros.txt"; DEFAULT_VENV="$ROOT/.venv" ;;
  jazzy) REQ_ROS="$ROOT/requirements-ros-jazzy.txt"; DEFAULT_VENV="$ROOT/.venv-jazzy" ;;
  *) echo "setup.sh: ROS 2 '$DISTRO' has no PyPI wheels here: kilted (default) or jazzy" \
       "(unset ROS_DISTRO, or set NL_TRACKER_ROS_DISTRO)" >&2; exit 1 ;;
esac
VENV="${NL_TRACKER_VENV:-$DEFAULT_VENV}"
PY="$VENV/bin/python"
STAMPS="$VENV/.nl_tracker_stamps"
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '[setup] %s\n' "$*"; }

# Stamp helpers: a step is done when its stamp holds the hash of its inputs.
key_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
is_done() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark_done() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }

pick_python() {
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

# 1. System packages (only when missing, only as root; Debian 12 names).
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
BASE_PY="$(pick_python || true)"
if [ -z "$BASE_PY" ]; then
  need+=(python3 python3-venv python3-dev)
else
  "$BASE_PY" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  "$BASE_PY" -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || need+=(python3-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup.sh: missing system packages: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
  BASE_PY="$(pick_python)" || { echo "setup.sh: Python 3.11 not found" >&2; exit 1; }
fi

# 2. Virtual environment.
if [ ! -x "$PY" ]; then
  log "creating $VENV with $BASE_PY"
  "$BASE_PY" -m venv "$VENV"
fi
# Keep git out of it wherever it lives (.gitignore names .venv/ only).
[ -f "$VENV/.gitignore" ] || printf '*\n' > "$VENV/.gitignore"
PIP=("$PY" -m pip install -q)

# 3. Python dependencies (the lead's requirements.txt) and the ROS 2 wheels (ours).
k="$(key_of "$ROOT/requirements.txt")"
if ! is_done requirements "$k"; then
  log "installing requirements.txt (torch takes a minute)"
  "${PIP[@]}" -r "$ROOT/requirements.txt"
  # Its metadata pulls in opencv-python, which clashes with the headless build.
  "${PIP[@]}" --no-deps deep-sort-realtime==1.3.2
  mark_done requirements "$k"
fi
k="$(key_of "$REQ_ROS")"
if ! is_done ros "$k"; then
  log "installing ROS 2 $DISTRO wheels ($(basename "$REQ_ROS"))"
  "${PIP[@]}" -r "$REQ_ROS"
  mark_done ros "$k"
fi

# 4. The wheels' exported CMake files name the wheel builder's Python; point them at ours.
"$PY" - <<'PYEOF'
import pathlib, sys, sysconfig
import numpy
share = pathlib.Path(sys.prefix) / 'share'
old_inc = '/opt/python/cp311-cp311/include/python3.11'
old_np = '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include'
n = 0
for f in share.glob('*/cmake/*.cmake'):
    text = f.read_text()
    if '/opt/python/cp311-cp311' not in text:
        continue
    text = text.replace(old_np, numpy.get_include()).replace(old_inc,
                                                            sysconfig.get_paths()['include'])
    f.write_text(text)
    n += 1
if n:
    print(f'[setup] patched {n} exported CMake files')
PYEOF

# 5. Environment for every venv Python: ament index + Fast DDS transport (only if unset).
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cat > "$SITE/nl_tracker_ros_env.pth" <<'PTHEOF'
import os, sys; p = os.environ.get('AMENT_PREFIX_PATH', ''); os.environ['AMENT_PREFIX_PATH'] = p if sys.prefix in p.split(os.pathsep) else os.pathsep.join(x for x in (sys.prefix, p) if x); os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')
PTHEOF
if ! grep -q nl_tracker_ros "$VENV/bin/activate"; then
  cat >> "$VENV/bin/activate" <<ACTEOF
# nl_tracker_ros: ament index and Fast DDS transport for shells (python gets them from a .pth)
case ":\${AMENT_PREFIX_PATH:-}:" in *":$VENV:"*) ;; *)
  export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}" ;; esac
export FASTDDS_BUILTIN_TRANSPORTS="\${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}"
ACTEOF
fi

# 6. Messages, share/ (launch, config), the ament index entry and lib/nl_tracker_ros/tracker_node
#    (for ros2 run / ros2 launch): plain cmake into the venv prefix (the core itself is
#    pip-installed below).
k="$(key_of "$ROOT"/msg/*.msg "$ROOT/CMakeLists.txt" "$ROOT/package.xml" \
  "$ROOT/nl_tracker_ros/__init__.py" "$REQ_ROS" "$ROOT"/launch/* "$ROOT"/config/*)"
if ! is_done msgs "$k" || [ ! -d "$SITE/nl_tracker_ros/msg" ] ||
   [ ! -x "$VENV/lib/nl_tracker_ros/tracker_node" ]; then
  log "building messages (cmake, ~30 s)"
  BUILD="$VENV/build/nl_tracker_ros"
  rm -rf "$BUILD"; mkdir -p "$VENV/build"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" \
    -DPython3_EXECUTABLE="$PY" -DNL_TRACKER_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=Release > "$BUILD.log" 2>&1 &&
  cmake --build "$BUILD" -j "$(nproc)" >> "$BUILD.log" 2>&1 &&
  cmake --install "$BUILD" >> "$BUILD.log" 2>&1 ||
    { tail -40 "$BUILD.log" >&2; echo "setup.sh: message build failed (log: $BUILD.log)" >&2
      exit 1; }
  # ament_python_install_package leaves an egg-info that pip would take for this project
  # (and "uninstall" by deleting the generated messages); pip's own metadata is the one to keep.
  rm -rf "$SITE"/nl_tracker_ros-*.egg-info
  mark_done msgs "$k"
fi

# 7. This package, editable (console scripts nl-tracker and tracker_node).
k="$(key_of "$ROOT/setup.py" "$ROOT/setup.cfg")"
if ! is_done package "$k" || [ ! -x "$VENV/bin/nl-tracker" ]; then
  log "pip install -e . --no-deps"
  "${PIP[@]}" --no-deps -e "$ROOT"
  mark_done package "$k"
fi

"$PY" -c 'import nl_tracker_ros.msg, rclpy' ||
  { echo "setup.sh: nl_tracker_ros.msg or rclpy does not import" >&2; exit 1; }
log "done ($DISTRO): $VENV/bin/nl-tracker, $VENV/bin/tracker_node"
