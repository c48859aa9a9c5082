#!/bin/sh
# The one-shot release step (compose's `migrate` service, the Kubernetes Job): run it once per
# release, before the new gateway version serves. Safe to run again: every step is idempotent.
set -eu
cd "$(dirname "$0")/.."
# Generates GATEWAY_VAR_DIR/secret_key only when neither SECRET_KEY nor SECRET_KEY_FILE is set.
python -m gateway_project.bootstrap
python manage.py migrate --noinput
python manage.py ensure_admin
if [ -n "${GATEWAY_CONFIG:-}" ]; then
    python manage.py gateway import "$GATEWAY_CONFIG"
fi
