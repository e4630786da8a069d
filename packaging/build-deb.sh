#!/usr/bin/env bash
# Build factory-edge-agent_<version>_<arch>.deb: the agent and its own virtual environment under
# /opt/factory-edge-agent (Debian's python3 underneath), edge-agent on the PATH, the config as a
# conffile, the systemd unit. Usage: packaging/build-deb.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${DEB_PYTHON:-/usr/bin/python3}
OUT=${1:-dist}
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=$(dpkg --print-architecture)
PREFIX=/opt/factory-edge-agent
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
VENV="$STAGE$PREFIX/venv"

"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-compile '.[sparkplug]'
# Sparkplug B schema: pysparkplug pins paho-mqtt<2 for a client the agent does not use
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-compile --no-deps 'pysparkplug==0.6.1'
"$VENV/bin/pip" uninstall --quiet --yes pip  # nothing installs into it on the gateway
# the venv was made in the staging dir: make its paths the installed ones
grep -rlI --null "$STAGE" "$VENV" | xargs -0 --no-run-if-empty sed -i "s|$STAGE||g"
find "$VENV" -name __pycache__ -prune -exec rm -rf {} +
# as dh_fixperms would: shared objects are not executables. (They are not stripped: wheels'
# auditwheel-patched libraries, numpy's OpenBLAS among them, stop loading when stripped.)
find "$VENV" -name '*.so*' -type f -exec chmod 0644 {} +

install -d "$STAGE/usr/bin"
ln -s "$PREFIX/venv/bin/edge-agent" "$STAGE/usr/bin/edge-agent"
install -D -m 0644 systemd/edge-agent.service "$STAGE/lib/systemd/system/edge-agent.service"
install -D -m 0644 packaging/agent.yaml "$STAGE/etc/edge-agent/agent.yaml"
install -d -m 0755 "$STAGE/etc/edge-agent/credentials"
# the OPC UA client certificate and key (edge-agent opcua certs create), trusted PLC certificates
install -d -m 0755 "$STAGE/etc/edge-agent/pki" "$STAGE/etc/edge-agent/pki/trusted"
install -D -m 0644 packaging/debian/copyright "$STAGE/usr/share/doc/factory-edge-agent/copyright"
gzip -9n -c packaging/debian/changelog > "$STAGE/usr/share/doc/factory-edge-agent/changelog.gz"
chmod 0644 "$STAGE/usr/share/doc/factory-edge-agent/changelog.gz"
install -D -m 0644 packaging/debian/lintian-overrides \
    "$STAGE/usr/share/lintian/overrides/factory-edge-agent"
# for the plant's Prometheus and Grafana: alert rules (agents and hub), the agents' dashboard
install -D -m 0644 packaging/prometheus/edge-alerts.yml \
    "$STAGE/usr/share/factory-edge-agent/prometheus/edge-alerts.yml"
install -D -m 0644 packaging/grafana/edge-agents.json \
    "$STAGE/usr/share/factory-edge-agent/grafana/edge-agents.json"
for profile in firmware-configs/*.yaml; do
    install -D -m 0644 "$profile" "$STAGE/usr/share/factory-edge-agent/profiles/$(basename "$profile")"
done

install -d "$STAGE/DEBIAN"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
    packaging/debian/control > "$STAGE/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$STAGE/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$STAGE/DEBIAN/$script"
done
mkdir -p "$OUT"
DEB="$OUT/factory-edge-agent_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zgzip -z6 --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
