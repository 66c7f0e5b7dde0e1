# Sourced by the device-call scripts: accelsim from this checkout on the device image's python3,
# with the wheels it lacks there (pydantic and its dependencies, carried in .whl/).
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD/src || exit 1
log() { echo "== $(date -u +%T) $*"; }
